//! Mount config, per-secret metadata and listing.

use super::*;

#[tokio::test]
async fn config_round_trip() {
    let kv = Kv::new();
    let cfg = body(kv.ok(Operation::Read, "config", json!({})).await);
    assert_eq!(
        cfg,
        json!({"max_versions": 0, "cas_required": false, "delete_version_after": "0s"})
    );

    kv.ok(
        Operation::Update,
        "config",
        json!({"max_versions": 5, "delete_version_after": "3h25m19s"}),
    )
    .await;
    kv.ok(Operation::Update, "config", json!({"cas_required": true}))
        .await;
    let cfg = body(kv.ok(Operation::Read, "config", json!({})).await);
    assert_eq!(
        cfg,
        json!({"max_versions": 5, "cas_required": true, "delete_version_after": "3h25m19s"})
    );

    kv.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": "-5s"}),
    )
    .await;
    assert_eq!(
        body(kv.ok(Operation::Read, "config", json!({})).await)["delete_version_after"],
        "-1s"
    );

    bad_request(
        kv.call(
            Operation::Update,
            "config",
            json!({"max_versions": "many"}),
            &[],
        )
        .await,
    );
    bad_request(
        kv.call(
            Operation::Update,
            "config",
            json!({"delete_version_after": "soon"}),
            &[],
        )
        .await,
    );
    assert!(matches!(
        kv.call(Operation::Delete, "config", json!({}), &[]).await,
        Err(EngineError::UnsupportedOperation)
    ));
}

#[tokio::test]
async fn metadata_read_write_patch_delete() {
    let kv = Kv::new();
    // A write with no fields is a no-op and creates nothing.
    kv.ok(Operation::Update, "metadata/m", json!({})).await;
    assert!(matches!(
        kv.call(Operation::Read, "metadata/m", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));

    kv.ok(
        Operation::Create,
        "metadata/m",
        json!({"max_versions": 5, "delete_version_after": "3h25m19s", "custom_metadata": {"owner": "jdoe", "tier": 1}}),
    )
    .await;
    let meta = kv.meta("m").await;
    assert_eq!(meta["current_version"], 0);
    assert_eq!(meta["max_versions"], 5);
    assert_eq!(meta["delete_version_after"], "3h25m19s");
    assert_eq!(
        meta["custom_metadata"],
        json!({"owner": "jdoe", "tier": "1"})
    );
    assert_eq!(meta["versions"], json!({}));
    let keys: Vec<_> = meta
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    // No live version yet.
    assert!(matches!(
        kv.call(Operation::Read, "data/m", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));

    // custom_metadata shows on data reads.
    kv.put("m", json!({"v": 1})).await;
    assert_eq!(
        body(kv.get("m").await)["metadata"]["custom_metadata"]["owner"],
        "jdoe"
    );

    // PATCH merges: null removes a key, fields not given stay.
    kv.ok(
        Operation::Patch,
        "metadata/m",
        json!({"custom_metadata": {"owner": null, "team": "a"}, "cas_required": true}),
    )
    .await;
    let meta = kv.meta("m").await;
    assert_eq!(meta["custom_metadata"], json!({"team": "a", "tier": "1"}));
    assert_eq!(meta["cas_required"], true);
    assert_eq!(meta["max_versions"], 5);
    assert!(matches!(
        kv.call(
            Operation::Patch,
            "metadata/none",
            json!({"max_versions": 1}),
            &[]
        )
        .await,
        Err(EngineError::NotFound)
    ));
    bad_request(
        kv.call(
            Operation::Update,
            "metadata/m",
            json!({"custom_metadata": {"k": ""}}),
            &[],
        )
        .await,
    );
    bad_request(
        kv.call(
            Operation::Update,
            "metadata/m",
            json!({"custom_metadata": "x"}),
            &[],
        )
        .await,
    );

    // DELETE removes the metadata and every version's data.
    kv.put("m/child", json!({"v": 1})).await;
    kv.ok(Operation::Delete, "metadata/m", json!({})).await;
    assert!(matches!(
        kv.call(Operation::Read, "metadata/m", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        kv.call(Operation::Read, "data/m", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));
    // Only the child secret remains.
    assert_eq!(kv.stored_keys("").await, ["data/m/child/1", "meta/m/child"]);
}

#[tokio::test]
async fn list_shows_secrets_and_folders() {
    let kv = Kv::new();
    for p in ["a", "a/b", "c/d/e", "c/f"] {
        kv.put(p, json!({"x": 1})).await;
    }
    let list = |p: &'static str| kv.call(Operation::List, p, json!({}), &[]);
    assert_eq!(
        body(list("metadata/").await.unwrap()),
        json!({"keys": ["a", "a/", "c/"]})
    );
    assert_eq!(
        body(list("metadata").await.unwrap()),
        json!({"keys": ["a", "a/", "c/"]})
    );
    assert_eq!(
        body(list("metadata/c").await.unwrap()),
        json!({"keys": ["d/", "f"]})
    );
    assert_eq!(
        body(list("metadata/c/").await.unwrap()),
        json!({"keys": ["d/", "f"]})
    );
    assert!(matches!(
        list("metadata/zzz/").await,
        Err(EngineError::NotFound)
    ));
    bad_request(list("metadata/../").await);
    assert!(matches!(
        list("data/").await,
        Err(EngineError::UnsupportedOperation)
    ));
}
