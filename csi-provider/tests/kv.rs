//! KV objects through the real gRPC socket: files, encodings, modes,
//! versions that stay equal across polls and change only for the updated
//! object, the Version RPC on both socket directories, and a Vault-style
//! SecretProviderClass.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly on any error

mod common;

use base64::Engine as _;
use common::{connect, files, versions, Core, Pod, Provider, TokenReviewServer, POLICY};
use serde_json::{json, Value};

struct Env {
    core: Core,
    reviewer: TokenReviewServer,
    provider: Provider,
    _dir: tempfile::TempDir,
}

async fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(dir.path()).await;
    let reviewer = TokenReviewServer::start().await;
    core.kubernetes_auth(&reviewer, POLICY).await;
    core.put(
        "team-a/db",
        json!({"username": "app", "password": "kv-secret-pw-81f3", "port": 5432}),
    )
    .await;
    core.put(
        "team-a/tls",
        json!({"key_b64": base64::engine::general_purpose::STANDARD.encode(b"binary\x00key-c0ffee"), "key_hex": hex_of(b"hex-secret-9a")}),
    )
    .await;
    let provider = Provider::start(dir.path(), &core.addr, &[]).await;
    Env {
        core,
        reviewer,
        provider,
        _dir: dir,
    }
}

/// The provider's batch reads and single reads of the core so far.
async fn batch_and_single_reads(provider: &Provider) -> (f64, f64) {
    let batches = provider
        .counter("cairn_csi_core_requests_total{op=\"read_batch\"}")
        .await;
    let reads = provider
        .counter("cairn_csi_core_requests_total{op=\"read\"}")
        .await;
    (batches, reads)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const OBJECTS: &str = r#"
- fileName: db/password
  path: secret/data/team-a/db
  key: password
  mode: "0400"
- fileName: db/all.json
  path: secret/data/team-a/db
- fileName: port
  path: secret/data/team-a/db
  key: port
- fileName: tls.key
  path: secret/data/team-a/tls
  key: key_b64
  encoding: base64
- fileName: hex.bin
  path: secret/data/team-a/tls
  key: key_hex
  encoding: hex
"#;

#[tokio::test]
async fn kv_objects_become_files_with_stable_versions() {
    let env = setup().await;
    let pod = Pod::new(&env.reviewer, "web-0");
    let mut client = env.provider.client().await;

    let version = client
        .version(cairn_csi_provider::proto::VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "cairn-csi-provider");
    assert_eq!(version.version, "v1alpha1");
    assert_eq!(version.runtime_version.split('.').count(), 3, "semver");
    // The legacy directory serves too.
    let mut legacy = connect(&env.provider.socket(1)).await.unwrap();
    legacy
        .version(cairn_csi_provider::proto::VersionRequest::default())
        .await
        .unwrap();

    let first = client
        .mount(pod.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    assert!(first.error.is_none());
    let f = files(&first);
    assert_eq!(f["db/password"], (0o400, b"kv-secret-pw-81f3".to_vec()));
    assert_eq!(f["port"], (0o644, b"5432".to_vec()));
    assert_eq!(f["tls.key"].1, b"binary\x00key-c0ffee".to_vec());
    assert_eq!(f["hex.bin"].1, b"hex-secret-9a".to_vec());
    let whole: Value = serde_json::from_slice(&f["db/all.json"].1).unwrap();
    assert_eq!(
        whole,
        json!({"username": "app", "password": "kv-secret-pw-81f3", "port": 5432})
    );
    // Two distinct secrets: one batch request, no single reads.
    assert_eq!(batch_and_single_reads(&env.provider).await, (1.0, 0.0));
    let v1 = versions(&first);
    assert_eq!(v1.len(), 5);
    for v in v1.values() {
        assert!(!v.contains("kv-secret"), "a version shows the value: {v}");
    }

    // A rotation poll with nothing changed: same bytes, same versions.
    let mut poll = pod.request(json!({ "objects": OBJECTS }));
    poll.current_object_version = first.object_version.clone();
    let second = client.mount(poll).await.unwrap().into_inner();
    assert_eq!(files(&second), f);
    assert_eq!(versions(&second), v1);

    // Updating one secret changes the versions of its objects only.
    env.core
        .put(
            "team-a/tls",
            json!({"key_b64": "bmV3", "key_hex": hex_of(b"hex-secret-9a")}),
        )
        .await;
    let third = client
        .mount(pod.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    let v3 = versions(&third);
    assert_eq!(files(&third)["tls.key"].1, b"new".to_vec());
    assert_ne!(v3["tls.key"], v1["tls.key"]);
    assert_ne!(v3["hex.bin"], v1["hex.bin"], "same secret, new KV version");
    for id in ["db/password", "db/all.json", "port"] {
        assert_eq!(v3[id], v1[id], "{id} did not change");
    }

    // Versions of KV objects survive a provider restart (no spurious rotation).
    let mut provider = env.provider;
    provider.kill();
    provider.spawn().await;
    let mut client = provider.client().await;
    let after = client
        .mount(pod.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions(&after), v3);

    // Metrics: mounts by code and latency are exported.
    let metrics = provider.metrics().await;
    assert!(
        metrics.contains("cairn_csi_mounts_total{code=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_csi_mount_duration_seconds_count 1"),
        "{metrics}"
    );
    let health = reqwest::get(format!("http://{}/healthz", provider.http))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_core_refusing_batch_reads_is_read_one_secret_at_a_time() {
    let env = setup().await;
    // The pod's policies deny the batch endpoint (the default policy grants it).
    let denied = format!("{POLICY}\npath \"sys/cairn/read\" {{ capabilities = [\"deny\"] }}\n");
    env.core
        .root
        .write_policy("team-a-web", &denied)
        .await
        .unwrap();
    let pod = Pod::new(&env.reviewer, "web-1");
    let mut client = env.provider.client().await;
    let mounted = client
        .mount(pod.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        files(&mounted)["db/password"].1,
        b"kv-secret-pw-81f3".to_vec()
    );
    assert_eq!(files(&mounted).len(), 5);
    let batches = env
        .provider
        .counter("cairn_csi_core_requests_total{op=\"read_batch\"}")
        .await;
    let reads = env
        .provider
        .counter("cairn_csi_core_requests_total{op=\"read\"}")
        .await;
    assert_eq!(
        (batches, reads),
        (1.0, 2.0),
        "one refused batch, then one read per secret"
    );
}

#[tokio::test]
async fn vault_style_secret_provider_class_works_unchanged() {
    let env = setup().await;
    let pod = Pod::new(&env.reviewer, "legacy-0");
    let mut client = env.provider.client().await;
    // As written for the Vault CSI provider, only `provider:` changed.
    let parameters = json!({
        "roleName": "team-a.web",
        "vaultAddress": env.core.addr,
        "vaultKubernetesMountPath": "kubernetes",
        "objects": "- objectName: \"db-password\"\n  secretPath: \"secret/data/team-a/db\"\n  secretKey: \"password\"\n- objectName: \"db-user\"\n  secretPath: \"secret/data/team-a/db\"\n  secretKey: \"username\"\n  filePermission: 0o600\n",
    });
    let resp = client
        .mount(pod.request(parameters))
        .await
        .unwrap()
        .into_inner();
    let f = files(&resp);
    assert_eq!(f["db-password"], (0o644, b"kv-secret-pw-81f3".to_vec()));
    assert_eq!(f["db-user"], (0o600, b"app".to_vec()));
    assert_eq!(
        versions(&resp).keys().collect::<Vec<_>>(),
        vec!["db-password", "db-user"]
    );
    // Logged in with the named role: the core saw one login for it.
    assert!(!env.reviewer.reviews().is_empty());
    let _ = &env.core;
}
