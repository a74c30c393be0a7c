//! Routing: path validation, existence checks, encryption at rest.

use super::*;

#[tokio::test]
async fn bad_paths_are_refused() {
    let kv = Kv::new();
    let cases = [
        ("data/../escape", "'..'"),
        ("data/a/../../b", "'..'"),
        ("data/a//b", "empty segment"),
        ("data//a", "start with '/'"),
        ("data/a\0b", "NUL"),
        ("data/", "missing path"),
        ("data", "missing path"),
        ("data/a/", "end with '/'"),
        ("metadata/a/./b", "'.'"),
        ("destroy/a//b", "empty segment"),
        ("subkeys/../x", "'..'"),
    ];
    for (path, reason) in cases {
        let op = if path.starts_with("data") {
            Operation::Update
        } else {
            Operation::Read
        };
        let op = if path.starts_with("destroy") {
            Operation::Update
        } else {
            op
        };
        let msg = bad_request(
            kv.call(op, path, json!({"data": {"a": 1}, "versions": [1]}), &[])
                .await,
        );
        assert!(msg.contains(reason), "{path:?}: {msg}");
    }
    assert!(kv.stored_keys("").await.is_empty());
    assert!(matches!(
        kv.engine.exists("data/../x", &kv.view).await,
        Err(EngineError::BadRequest(_))
    ));
    assert!(matches!(
        kv.call(Operation::Read, "nope/x", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        kv.call(Operation::Read, "config/x", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));
}

#[tokio::test]
async fn exists_tells_create_from_update() {
    let kv = Kv::new();
    assert!(!kv.engine.exists("data/e", &kv.view).await.unwrap());
    assert!(!kv.engine.exists("metadata/e", &kv.view).await.unwrap());
    assert!(kv.engine.exists("config", &kv.view).await.unwrap());
    assert!(kv.engine.exists("destroy/e", &kv.view).await.unwrap());
    kv.put("e", json!({"a": 1})).await;
    assert!(kv.engine.exists("data/e", &kv.view).await.unwrap());
    assert!(kv.engine.exists("metadata/e", &kv.view).await.unwrap());
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let kv = Kv::new();
    kv.put("enc", json!({"password": "plaintext-canary"})).await;
    let raw = kv
        .storage
        .inner
        .get("logical/kv/data/enc/1")
        .await
        .unwrap()
        .unwrap();
    assert!(!raw.windows(16).any(|w| w == b"plaintext-canary"));
}
