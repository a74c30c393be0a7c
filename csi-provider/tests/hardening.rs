//! Hardening: traversal and duplicate file names, missing or wrong-audience
//! tokens, ACL denials, missing keys, the 4 MiB limit, a sealed or stopped
//! core, and logs that never show a token or a secret value.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly on any error

mod common;

use common::{Core, Pod, Provider, TokenReviewServer, NAMESPACE, POLICY, SERVICE_ACCOUNT};
use serde_json::json;
use tonic::Code;

struct Env {
    core: Core,
    reviewer: TokenReviewServer,
    provider: Provider,
    _dir: tempfile::TempDir,
}

const SECRET_VALUE: &str = "hardening-secret-value-5d2e";

async fn setup(extra: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(dir.path()).await;
    let reviewer = TokenReviewServer::start().await;
    core.kubernetes_auth(&reviewer, POLICY).await;
    core.put("team-a/app", json!({"password": SECRET_VALUE}))
        .await;
    core.put("team-b/app", json!({"password": "other-namespace"}))
        .await;
    let provider = Provider::start(dir.path(), &core.addr, extra).await;
    Env {
        core,
        reviewer,
        provider,
        _dir: dir,
    }
}

fn objects(file: &str) -> serde_json::Value {
    json!({ "objects": format!("- fileName: {file}\n  path: secret/data/team-a/app\n  key: password\n") })
}

#[tokio::test]
async fn bad_requests_get_the_right_codes_and_logs_hold_no_secret() {
    let env = setup(&[]).await;
    let pod = Pod::new(&env.reviewer, "web-1");
    let mut client = env.provider.client().await;
    let code = |r: Result<tonic::Response<_>, tonic::Status>| match r {
        Ok(_) => panic!("mount should have failed"),
        Err(status) => (status.code(), status.message().to_owned()),
    };

    // Traversal and absolute names never reach the core.
    for bad in [
        "../../etc/cron.d/x",
        "/etc/passwd",
        "a/../../b",
        "\"a\\u0000b\"",
        "./x",
    ] {
        let (c, msg) = code(client.mount(pod.request(objects(bad))).await);
        assert_eq!(c, Code::InvalidArgument, "{bad}: {msg}");
    }
    let dup = json!({"objects": "- {fileName: a, path: secret/data/team-a/app}\n- {fileName: a, path: secret/data/team-a/app, key: password}\n"});
    assert_eq!(
        code(client.mount(pod.request(dup)).await).0,
        Code::InvalidArgument
    );
    let (c, msg) = code(
        client
            .mount(pod.request(json!({"objects": "{not: [a list"})))
            .await,
    );
    assert_eq!(c, Code::InvalidArgument, "{msg}");

    // No token for the configured audience.
    let (c, msg) = code(
        client
            .mount(pod.request(json!({"audience": "vault", "objects": objects("a")["objects"]})))
            .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(msg.contains("vault"), "{msg}");

    // A token issued for another audience, sent as the `cairn` one: the
    // TokenReview refuses it and the core says 403.
    let mut wrong = pod.clone();
    wrong.tokens = vec![(
        "cairn".into(),
        env.reviewer.mint(
            NAMESPACE,
            SERVICE_ACCOUNT,
            &["https://kubernetes.default.svc"],
        ),
    )];
    let (c, msg) = code(client.mount(wrong.request(objects("a"))).await);
    assert_eq!(c, Code::PermissionDenied, "{msg}");

    // The ACL denies another namespace's secret.
    let other =
        json!({"objects": "- {fileName: a, path: secret/data/team-b/app, key: password}\n"});
    let (c, msg) = code(client.mount(pod.request(other)).await);
    assert_eq!(c, Code::PermissionDenied, "{msg}");

    // Missing key and missing path.
    let (c, _) = code(
        client
            .mount(pod.request(
                json!({"objects": "- {fileName: a, path: secret/data/team-a/app, key: nope}\n"}),
            ))
            .await,
    );
    assert_eq!(c, Code::NotFound);
    let (c, _) =
        code(
            client
                .mount(pod.request(
                    json!({"objects": "- {fileName: a, path: secret/data/team-a/missing}\n"}),
                ))
                .await,
        );
    assert_eq!(c, Code::NotFound);

    // A response over the driver's 4 MiB limit is refused clearly.
    let big = "x".repeat(3 * 1024 * 1024);
    env.core.put("team-a/big", json!({"blob": big})).await;
    let two = json!({"objects": "- {fileName: a, path: secret/data/team-a/big, key: blob}\n- {fileName: b, path: secret/data/team-a/big, key: blob}\n"});
    let (c, msg) = code(client.mount(pod.request(two)).await);
    assert_eq!(c, Code::ResourceExhausted, "{msg}");
    assert!(msg.contains("4194304"), "{msg}");

    // Then a good mount; the logs (trace level) hold no token or value.
    let ok = client
        .mount(pod.request(objects("app/password")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.files[0].contents, SECRET_VALUE.as_bytes());
    let logs = env.provider.logs();
    assert!(logs.contains("mounted"), "{logs}");
    assert!(logs.contains("mount failed"), "{logs}");
    for (_, token) in pod.tokens.iter().chain(wrong.tokens.iter()) {
        assert!(
            !logs.contains(token.as_str()),
            "a service-account token was logged"
        );
    }
    assert!(!logs.contains(SECRET_VALUE), "a secret value was logged");
    assert!(!has_core_token(&logs), "a core token was logged");
    assert!(!logs.contains(&env.core.root_token));
    let metrics = env.provider.metrics().await;
    assert!(
        metrics.contains("cairn_csi_mounts_total{code=\"invalid_argument\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_csi_mounts_total{code=\"permission_denied\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sealed_or_stopped_core_is_unavailable() {
    let mut env = setup(&["--request-timeout", "2s"]).await;
    let pod = Pod::new(&env.reviewer, "web-2");
    let mut client = env.provider.client().await;
    client.mount(pod.request(objects("a"))).await.unwrap();

    let (st, body) = env.core.call("PUT", "sys/seal", None).await;
    assert_eq!(st, 204, "{body}");
    // With a cached login (a poll) and with a fresh pod (a login).
    for p in [pod.clone(), Pod::new(&env.reviewer, "web-3")] {
        let status = client.mount(p.request(objects("a"))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    env.core.kill();
    let status = client.mount(pod.request(objects("a"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(env
        .provider
        .metrics()
        .await
        .contains("cairn_csi_mounts_total{code=\"unavailable\"} 3"));
}

#[tokio::test]
async fn sigterm_removes_the_sockets_even_with_a_connection_open() {
    let mut env = setup(&["--request-timeout", "1s"]).await;
    assert!(env.provider.socket(0).exists() && env.provider.socket(1).exists());
    // The driver holds its connection open.
    let mut client = env.provider.client().await;
    client
        .version(cairn_csi_provider::proto::VersionRequest::default())
        .await
        .unwrap();
    let status = env.provider.terminate().await;
    assert!(status.success(), "{status:?}: {}", env.provider.logs());
    assert!(!env.provider.socket(0).exists());
    assert!(!env.provider.socket(1).exists());
    drop(client);
    let _ = &env.core;
}

/// Whether `text` holds something shaped like a core token (`cairn.` and a
/// long random tail), as opposed to `cairn.sock`.
fn has_core_token(text: &str) -> bool {
    text.match_indices("cairn.").any(|(i, m)| {
        text[i + m.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .count()
            >= 16
    })
}
