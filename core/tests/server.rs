//! End-to-end tests of one `cairn server` process over HTTP: durability across
//! kill -9, the sealed state, bad input, TLS, the static seal, fail-closed audit,
//! and no secret in the logs.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::Server;
use serde_json::json;

const RAFT: &str = "storage \"raft\" {\n path = \"DIR/data\"\n node_id = \"n1\"\n}";

fn raft(dir: &std::path::Path) -> String {
    RAFT.replace("DIR", dir.to_str().unwrap())
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_come_back_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), "", &raft(dir.path())).await;
    let (keys, root) = s.init().await;
    s.unseal(&keys).await;
    s.mount_secret(&root).await;

    // Concurrent acknowledged writes, then SIGKILL without any shutdown.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = s.client.clone();
        let url = s.url(&format!("secret/data/app/k{i}"));
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("X-Vault-Token", root)
                .json(&json!({"data": {"value": format!("v{i}")}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.kill9();
    s.spawn().await;

    let (status, body) = s.call("GET", "secret/data/app/k0", Some(&root), None).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (503, Some("Vault is sealed"))
    );
    s.unseal(&keys).await;
    for i in 0..64 {
        let (status, body) = s
            .call("GET", &format!("secret/data/app/k{i}"), Some(&root), None)
            .await;
        assert_eq!(status, 200, "k{i}: {body}");
        assert_eq!(body["data"]["data"]["value"], format!("v{i}"));
    }
}

/// A data directory from before the segment-file Raft log (`raft-log.redb`)
/// is refused with a clear error rather than started with an empty log,
/// which would forget the node's vote.
#[test]
fn an_old_format_raft_log_is_refused_not_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/raft-log.redb"), b"old").unwrap();
    let config = dir.path().join("config.hcl");
    let port = common::free_port();
    std::fs::write(
        &config,
        format!(
            "listener \"tcp\" {{\n address = \"127.0.0.1:{port}\"\n tls_disable = true\n}}\n{}\n",
            raft(dir.path())
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["server", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("old redb format"), "{text}");
    assert!(
        !dir.path().join("data/raft-log").exists(),
        "no new log was started"
    );
}

#[tokio::test]
async fn a_sealed_node_answers_only_seal_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "", &raft(dir.path())).await;

    let (status, _) = s.call("GET", "sys/health", None, None).await;
    assert_eq!(status, 501, "uninitialised");
    let (status, _) = s.call("GET", "sys/health?uninitcode=200", None, None).await;
    assert_eq!(status, 200);
    let (keys, root) = s.init().await;
    let (status, body) = s.call("GET", "sys/health", None, None).await;
    assert_eq!((status, body["sealed"].as_bool()), (503, Some(true)));
    let (status, _) = s.call("GET", "sys/health?sealedcode=299", None, None).await;
    assert_eq!(status, 299);
    let (status, body) = s.call("GET", "sys/seal-status", None, None).await;
    assert_eq!(
        (status, body["t"].as_u64(), body["n"].as_u64()),
        (200, Some(3), Some(5))
    );

    for (method, path) in [
        ("GET", "secret/data/x"),
        ("POST", "secret/data/x"),
        ("LIST", "secret/metadata"),
        ("POST", "sys/mounts/kv"),
        ("GET", "sys/mounts"),
        ("GET", "sys/policies/acl/default"),
        ("GET", "auth/token/lookup-self"),
        ("POST", "auth/token/create"),
        ("GET", "sys/audit"),
        ("GET", "sys/key-status"),
        ("PUT", "sys/rotate"),
        ("GET", "sys/metrics"),
        ("GET", "nothing/here"),
    ] {
        let (status, body) = s.call(method, path, Some(&root), Some(json!({}))).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        assert_eq!(body["errors"][0], "Vault is sealed", "{method} {path}");
    }

    // Bad shares: clear errors, nothing unsealed.
    let (status, body) = s
        .call(
            "PUT",
            "sys/unseal",
            None,
            Some(json!({"key": "not a key!"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("not valid hex or base64"),
        "{body}"
    );
    let (status, body) = s
        .call("PUT", "sys/unseal", None, Some(json!({"key": "abcd"})))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0].as_str().unwrap().contains("wrong length"),
        "{body}"
    );
    let (status, _) = s
        .call("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})))
        .await;
    assert_eq!(status, 200);
    let (status, body) = s
        .call("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("already submitted"),
        "{body}"
    );
    // A share of another cluster with the right shape: refused at the threshold.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Server::start(other_dir.path(), "", "storage \"inmem\" {}").await;
    let (foreign, _) = other.init().await;
    s.call("PUT", "sys/unseal", None, Some(json!({"key": foreign[1]})))
        .await;
    let (status, body) = s
        .call("PUT", "sys/unseal", None, Some(json!({"key": foreign[2]})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("do not rebuild the root key"),
        "{body}"
    );
    let (_, body) = s.call("GET", "sys/seal-status", None, None).await;
    assert_eq!(
        (body["sealed"].as_bool(), body["progress"].as_u64()),
        (Some(true), Some(0))
    );
    let (status, body) = s
        .call("PUT", "sys/unseal", None, Some(json!({"reset": true})))
        .await;
    assert_eq!((status, body["progress"].as_u64()), (200, Some(0)));
    s.unseal(&keys).await;

    // Sealing by request needs sudo; root has it.
    let (status, _) = s.call("PUT", "sys/seal", Some(&root), None).await;
    assert_eq!(status, 204);
    let (status, _) = s.call("GET", "sys/mounts", Some(&root), None).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "max_request_size = 4096", &raft(dir.path())).await;
    let (keys, root) = s.init().await;
    s.unseal(&keys).await;
    s.mount_secret(&root).await;
    let (status, _) = s
        .call(
            "POST",
            "secret/data/keep",
            Some(&root),
            Some(json!({"data": {"a": "1"}})),
        )
        .await;
    assert_eq!(status, 200);

    // Malformed JSON.
    let r = s
        .client
        .post(s.url("secret/data/keep"))
        .header("X-Vault-Token", &root)
        .body("{\"data\": {\"a\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("failed to parse JSON"),
        "{body}"
    );

    // Oversized body.
    let big = "x".repeat(10_000);
    let (status, body) = s
        .call(
            "POST",
            "secret/data/keep",
            Some(&root),
            Some(json!({"data": {"a": big}})),
        )
        .await;
    assert_eq!(status, 413, "{body}");

    // Traversal and malformed paths.
    // Sent raw: HTTP clients normalise `..` away before it reaches the server.
    for path in [
        "secret/data/../../sys/mounts",
        "secret//data/keep",
        "secret/data/a%00b",
        "secret/data/%2e%2e/x",
    ] {
        let (status, _) = s.raw("GET", &format!("/v1/{path}"), &root, "").await;
        assert_eq!(status, 400, "{path}");
    }

    // Forged, revoked and expired tokens.
    let (status, _) = s
        .call("GET", "secret/data/keep", Some("cairn.forged"), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = s.call("GET", "secret/data/keep", None, None).await;
    assert_eq!(status, 403);
    let short = s.create_token(&root, json!({"ttl": "1s"})).await;
    let revoked = s.create_token(&root, json!({})).await;
    let (status, _) = s
        .call(
            "POST",
            "auth/token/revoke",
            Some(&root),
            Some(json!({"token": revoked})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call("GET", "auth/token/lookup-self", Some(&revoked), None)
        .await;
    assert_eq!(status, 403);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _) = s
        .call("GET", "auth/token/lookup-self", Some(&short), None)
        .await;
    assert_eq!(status, 403, "expired token refused");

    // CAS mismatch.
    let (status, body) = s
        .call(
            "POST",
            "secret/data/keep",
            Some(&root),
            Some(json!({"data": {"a": "2"}, "options": {"cas": 7}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("check-and-set"),
        "{body}"
    );

    // Policy with a syntax error.
    let (status, body) = s
        .call(
            "PUT",
            "sys/policies/acl/broken",
            Some(&root),
            Some(json!({"policy": "path \"x\" { capabilities = [\"read\""})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Unknown method.
    let (status, _) = s.call("BREW", "secret/data/keep", Some(&root), None).await;
    assert_eq!(status, 405);

    // Nothing was lost or changed.
    let (status, body) = s.call("GET", "secret/data/keep", Some(&root), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"], json!({"a": "1"}));
    assert_eq!(body["data"]["metadata"]["version"], 1);
}

#[tokio::test]
async fn acl_policies_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "", "storage \"inmem\" {}").await;
    let (keys, root) = s.init().await;
    s.unseal(&keys).await;
    s.mount_secret(&root).await;
    let policy = r#"
        path "secret/data/team-a/*" { capabilities = ["read", "list"] }
        path "secret/data/team-a/private" { capabilities = ["deny"] }
        path "secret/metadata/team-a/*" { capabilities = ["list"] }
    "#;
    let (status, _) = s
        .call(
            "PUT",
            "sys/policies/acl/team-a",
            Some(&root),
            Some(json!({"policy": policy})),
        )
        .await;
    assert_eq!(status, 204);
    for k in ["team-a/app", "team-a/private", "team-b/app"] {
        s.call(
            "POST",
            &format!("secret/data/{k}"),
            Some(&root),
            Some(json!({"data": {"v": "1"}})),
        )
        .await;
    }
    let t = s.create_token(&root, json!({"policies": ["team-a"]})).await;
    assert_eq!(
        s.call("GET", "secret/data/team-a/app", Some(&t), None)
            .await
            .0,
        200
    );
    assert_eq!(
        s.call("GET", "secret/data/team-a/private", Some(&t), None)
            .await
            .0,
        403
    );
    assert_eq!(
        s.call("GET", "secret/data/team-b/app", Some(&t), None)
            .await
            .0,
        403
    );
    assert_eq!(
        s.call(
            "POST",
            "secret/data/team-a/app",
            Some(&t),
            Some(json!({"data": {}}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.call("LIST", "secret/metadata/team-a", Some(&t), None)
            .await
            .0,
        200
    );
    assert_eq!(
        s.call("LIST", "secret/metadata/team-b", Some(&t), None)
            .await
            .0,
        403
    );
    assert_eq!(s.call("GET", "sys/mounts", Some(&t), None).await.0, 403);
    let (status, body) = s
        .call(
            "POST",
            "sys/capabilities-self",
            Some(&t),
            Some(json!({"paths": ["secret/data/team-a/x", "secret/data/team-a/private"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["secret/data/team-a/x"],
        json!(["list", "read"])
    );
    assert_eq!(body["data"]["secret/data/team-a/private"], json!(["deny"]));
    // The default policy lets a token look itself up.
    assert_eq!(
        s.call("GET", "auth/token/lookup-self", Some(&t), None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn tls_listener_serves_https_and_follows_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let listener = format!(
        "tls_cert_file = \"{}/cert.pem\"\n tls_key_file = \"{}/key.pem\"",
        dir.path().display(),
        dir.path().display()
    );
    let s = Server::start_with(
        dir.path(),
        &listener,
        "storage \"inmem\" {}",
        "https",
        client,
    )
    .await;
    let (status, _) = s.call("GET", "sys/health?uninitcode=200", None, None).await;
    assert_eq!(status, 200);
    // Plaintext to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/v1/sys/health", s.addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status().as_u16() == 400);

    // A renewed certificate (as cert-manager writes it) is served to new
    // connections within seconds, without a restart.
    let renewed =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let renewed_pem = renewed.cert.pem();
    std::fs::write(dir.path().join("key.pem"), renewed.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &renewed_pem).unwrap();
    let trusts_renewed = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(renewed_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{}/v1/sys/health?uninitcode=200", s.addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match trusts_renewed.get(&url).send().await {
            Ok(resp) => {
                assert_eq!(resp.status().as_u16(), 200);
                break;
            }
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the renewed certificate was not served: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    let trusts_old_only = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(
        trusts_old_only.get(&url).send().await.is_err(),
        "new connections still get the old certificate"
    );
}

#[tokio::test]
async fn static_seal_unseals_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seal.key"), hex::encode([42u8; 32])).unwrap();
    let body = format!(
        "{}\nseal \"static\" {{ key_file = \"{}/seal.key\" }}",
        raft(dir.path()),
        dir.path().display()
    );
    let mut s = Server::start(dir.path(), "", &body).await;
    let (status, init) = s.call("PUT", "sys/init", None, Some(json!({}))).await;
    assert_eq!(status, 200, "{init}");
    let root = init["root_token"].as_str().unwrap().to_owned();
    s.mount_secret(&root).await;
    s.call(
        "POST",
        "secret/data/a",
        Some(&root),
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    s.kill9();
    s.spawn().await;
    let (status, body) = s.call("GET", "secret/data/a", Some(&root), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["k"], "v");
}

#[tokio::test]
async fn audit_fails_closed_and_logs_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "", "storage \"inmem\" {}").await;
    let (keys, root) = s.init().await;
    s.unseal(&keys).await;
    s.mount_secret(&root).await;
    let secret = "s3cr3t-value-do-not-log";
    s.call(
        "POST",
        "secret/data/db",
        Some(&root),
        Some(json!({"data": {"password": secret}})),
    )
    .await;

    let audit_file = dir.path().join("audit.log");
    let (status, body) = s
        .call(
            "PUT",
            "sys/audit/file",
            Some(&root),
            Some(json!({"type": "file", "options": {"file_path": audit_file}})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = s.call("GET", "secret/data/db", Some(&root), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"]["password"], secret);
    let audit = std::fs::read_to_string(&audit_file).unwrap();
    assert!(audit.contains("hmac-sha256:"));
    assert!(
        !audit.contains(secret) && !audit.contains(&root),
        "audit log holds plaintext"
    );
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["audit", "verify"])
        .arg(&audit_file)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Replace the device by one that cannot write: every request fails, no secret leaves.
    s.call("DELETE", "sys/audit/file", Some(&root), None).await;
    // The enable itself takes effect, but its own response can no longer be
    // audited: the client is told 500, as for every request after it.
    let (status, body) = s
        .call(
            "PUT",
            "sys/audit/full",
            Some(&root),
            Some(json!({"type": "file", "options": {"file_path": "/dev/full"}})),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    let (status, _) = s.call("GET", "sys/mounts", Some(&root), None).await;
    assert_eq!(status, 500);
    let r = s
        .client
        .get(s.url("secret/data/db"))
        .header("X-Vault-Token", &root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let text = r.text().await.unwrap();
    assert!(!text.contains(secret), "{text}");

    let logs = s.logs();
    for needle in [secret, root.as_str(), keys[0].as_str(), keys[1].as_str()] {
        assert!(!logs.contains(needle), "server log contains a secret value");
    }
}
