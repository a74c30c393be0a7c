//! `POST sys/cairn/read`: several reads in one request, each one checked,
//! audited and answered as its own `GET` would be.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::Server;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    root: String,
    /// A token with `read` on `secret/data/app/*` (and the default policy).
    app: String,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "", "storage \"inmem\" {}").await;
    let (keys, root) = server.init().await;
    server.unseal(&keys).await;
    server.mount_secret(&root).await;
    server
        .write_policy(
            &root,
            "app",
            "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
        )
        .await;
    let app = server
        .create_token(&root, json!({"policies": ["app"]}))
        .await;
    for (path, value) in [
        ("app/db", "s3cr3t-db"),
        ("app/api", "s3cr3t-api"),
        ("other/x", "s3cr3t-x"),
    ] {
        let (st, body) = server
            .call(
                "POST",
                &format!("secret/data/{path}"),
                Some(&root),
                Some(json!({"data": {"value": value}})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    Setup {
        server,
        root,
        app,
        dir,
    }
}

async fn batch(server: &Server, token: &str, body: Value) -> (u16, Value) {
    server
        .call("POST", "sys/cairn/read", Some(token), Some(body))
        .await
}

#[tokio::test]
async fn each_path_is_answered_as_its_own_read_would_be() {
    let s = setup().await;
    let paths = [
        "secret/data/app/db",
        "secret/data/other/x",
        "secret/data/app/missing",
        "secret/data/app/api",
    ];
    let (st, body) = batch(&s.server, &s.app, json!({ "paths": paths })).await;
    assert_eq!(st, 200, "{body}");
    let responses = body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), paths.len());
    for (path, answer) in paths.iter().zip(responses) {
        assert_eq!(answer["path"], *path);
        let (single_status, single) = s.server.call("GET", path, Some(&s.app), None).await;
        assert_eq!(answer["status"], single_status, "{path}: {answer}");
        if single_status == 200 {
            assert_eq!(answer["body"]["data"], single["data"], "{path}");
        } else {
            assert_eq!(answer["body"]["errors"], single["errors"], "{path}");
        }
    }
    let statuses: Vec<_> = responses.iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, [json!(200), json!(403), json!(404), json!(200)]);
    assert_eq!(responses[0]["body"]["data"]["data"]["value"], "s3cr3t-db");
    assert!(
        !body.to_string().contains("s3cr3t-x"),
        "a denied secret leaked"
    );
}

#[tokio::test]
async fn every_read_in_a_batch_is_audited_without_plaintext() {
    let s = setup().await;
    let audit_file = s.dir.path().join("audit.log");
    let (st, body) = s
        .server
        .call(
            "PUT",
            "sys/audit/file",
            Some(&s.root),
            Some(json!({"type": "file", "options": {"file_path": audit_file}})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let paths = ["secret/data/app/db", "secret/data/other/x"];
    let (st, body) = batch(&s.server, &s.app, json!({ "paths": paths })).await;
    assert_eq!(st, 200, "{body}");
    let request_id = body["request_id"].as_str().unwrap();

    let audit = std::fs::read_to_string(&audit_file).unwrap();
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (n, path) in paths.iter().enumerate() {
        let id = format!("{request_id}#{n}");
        let of_read: Vec<_> = entries
            .iter()
            .filter(|e| e["request"]["id"] == id.as_str())
            .collect();
        assert_eq!(of_read.len(), 2, "request and response of {path}: {audit}");
        assert!(of_read.iter().all(|e| e["request"]["path"] == *path));
        assert!(of_read.iter().all(|e| e["request"]["operation"] == "read"));
    }
    let denied = entries
        .iter()
        .find(|e| {
            e["request"]["id"] == format!("{request_id}#1").as_str() && e["type"] == "response"
        })
        .unwrap();
    assert!(
        denied["error"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{denied}"
    );
    assert!(
        !audit.contains("s3cr3t") && !audit.contains(&s.app),
        "the audit log holds plaintext"
    );
}

#[tokio::test]
async fn bad_batches_are_refused_with_400_and_read_nothing() {
    let s = setup().await;
    let many: Vec<String> = (0..129).map(|i| format!("secret/data/app/k{i}")).collect();
    let limited = s
        .server
        .create_token(&s.root, json!({"policies": ["app"], "num_uses": 5}))
        .await;
    let cases = [
        (s.app.as_str(), json!({})),
        (s.app.as_str(), json!({"paths": "secret/data/app/db"})),
        (s.app.as_str(), json!({"paths": []})),
        (s.app.as_str(), json!({ "paths": many })),
        (s.app.as_str(), json!({"paths": ["secret/data/app/db", 7]})),
        (
            s.app.as_str(),
            json!({"paths": ["secret/data/app/../other/x"]}),
        ),
        (s.app.as_str(), json!({"paths": ["secret//data/app/db"]})),
        (
            s.app.as_str(),
            json!({"paths": ["secret/data/app/db\u{0}"]}),
        ),
        (s.app.as_str(), json!({"paths": ["sys/policies/acl/app"]})),
        (s.app.as_str(), json!({"paths": ["auth/token/lookup-self"]})),
        (limited.as_str(), json!({"paths": ["secret/data/app/db"]})),
    ];
    for (token, body) in cases {
        let (st, answer) = batch(&s.server, token, body.clone()).await;
        assert_eq!(st, 400, "{body} -> {answer}");
        assert!(answer["errors"][0].is_string(), "{answer}");
        assert!(!answer.to_string().contains("s3cr3t"), "{answer}");
    }
    // Malformed JSON.
    let (st, _) = s
        .server
        .raw("POST", "/v1/sys/cairn/read", &s.app, "{\"paths\": [")
        .await;
    assert_eq!(st, 400);
    // No token, or a wrong one: denied before any read.
    let (st, _) = batch(
        &s.server,
        "not-a-token",
        json!({"paths": ["secret/data/app/db"]}),
    )
    .await;
    assert_eq!(st, 403);
    // A GET is not a batch (and the default policy grants only update).
    let (st, _) = s
        .server
        .call("GET", "sys/cairn/read", Some(&s.app), None)
        .await;
    assert_eq!(st, 403);
    // The limited-use token was not spent by its refused batch.
    let (st, body) = s
        .server
        .call("GET", "auth/token/lookup-self", Some(&limited), None)
        .await;
    assert_eq!(st, 200, "{body}");
    // lookup-self reports the count before its own use.
    assert_eq!(
        body["data"]["num_uses"], 5,
        "the refused batch used the token"
    );
}
