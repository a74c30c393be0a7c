//! Version lifecycle: pruning, soft delete, undelete, destroy,
//! `delete_version_after`, subkeys.

use super::*;

#[tokio::test]
async fn old_versions_are_pruned_in_the_same_commit() {
    let kv = Kv::new();
    kv.ok(Operation::Update, "config", json!({"max_versions": 3}))
        .await;
    for i in 1..=3 {
        kv.put("p", json!({"n": i})).await;
    }
    let before = kv.storage.batches.load(Ordering::SeqCst);
    kv.put("p", json!({"n": 4})).await;
    assert_eq!(
        kv.storage.batches.load(Ordering::SeqCst) - before,
        1,
        "a write must be one storage commit"
    );
    kv.put("p", json!({"n": 5})).await;

    let meta = kv.meta("p").await;
    assert_eq!(meta["current_version"], 5);
    assert_eq!(meta["oldest_version"], 3);
    let listed: Vec<_> = meta["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(listed, ["3", "4", "5"]);
    assert!(matches!(
        kv.get_version("p", 2).await,
        Err(EngineError::NotFound)
    ));
    assert_eq!(
        kv.stored_keys("data/p/").await,
        ["data/p/3", "data/p/4", "data/p/5"]
    );

    // A per-secret limit above the mount's raises retention (Vault takes the larger).
    kv.ok(Operation::Update, "metadata/p", json!({"max_versions": 4}))
        .await;
    kv.put("p", json!({"n": 6})).await;
    assert_eq!(kv.stored_keys("data/p/").await.len(), 4);
}

#[tokio::test]
async fn default_limit_is_ten_versions() {
    let kv = Kv::new();
    for i in 1..=12 {
        kv.put("d", json!({"n": i})).await;
    }
    let meta = kv.meta("d").await;
    assert_eq!(meta["versions"].as_object().map(Map::len), Some(10));
    assert_eq!(meta["oldest_version"], 3);
}

#[tokio::test]
async fn soft_delete_undelete_and_destroy() {
    let kv = Kv::new();
    for i in 1..=3 {
        kv.put("s", json!({"n": i})).await;
    }
    // DELETE data/: latest version reads as 404 with metadata and null data.
    let resp = kv.ok(Operation::Delete, "data/s", json!({})).await;
    assert_eq!(resp, Response::empty());
    let read = kv.get("s").await;
    assert_eq!(read.status, 404);
    let read = body(read);
    assert_eq!(read["data"], Value::Null);
    assert!(is_rfc3339(&read["metadata"]["deletion_time"]));
    assert_eq!(read["metadata"]["version"], 3);
    // Older versions stay readable.
    assert_eq!(body(kv.get_version("s", 2).await.unwrap())["data"]["n"], 2);

    // delete/ with explicit versions.
    kv.ok(
        Operation::Update,
        "delete/s",
        json!({"versions": [1, 2, 99]}),
    )
    .await;
    assert_eq!(kv.get_version("s", 1).await.unwrap().status, 404);

    // undelete restores.
    kv.ok(Operation::Update, "undelete/s", json!({"versions": [1, 3]}))
        .await;
    assert_eq!(body(kv.get("s").await)["data"]["n"], 3);
    assert_eq!(
        body(kv.get_version("s", 1).await.unwrap())["metadata"]["deletion_time"],
        ""
    );
    assert_eq!(kv.get_version("s", 2).await.unwrap().status, 404);

    // destroy: data gone from storage, metadata says destroyed, undelete cannot bring it back.
    kv.ok(Operation::Create, "destroy/s", json!({"versions": [3]}))
        .await;
    let read = kv.get("s").await;
    assert_eq!(read.status, 404);
    assert_eq!(body(read)["metadata"]["destroyed"], true);
    assert!(kv
        .view
        .get(&store::version_key("s", 3))
        .await
        .unwrap()
        .is_none());
    kv.ok(Operation::Update, "undelete/s", json!({"versions": [3]}))
        .await;
    assert_eq!(kv.get("s").await.status, 404);
    assert_eq!(kv.meta("s").await["versions"]["3"]["destroyed"], true);

    // Versions are required; missing secrets are not an error.
    assert_eq!(
        bad_request(kv.call(Operation::Update, "delete/s", json!({}), &[]).await),
        "No version number provided"
    );
    kv.ok(Operation::Update, "destroy/none", json!({"versions": [1]}))
        .await;
    kv.ok(Operation::Delete, "data/none", json!({})).await;
    assert!(matches!(
        kv.call(Operation::Read, "destroy/s", json!({}), &[]).await,
        Err(EngineError::UnsupportedOperation)
    ));
}

#[tokio::test]
async fn delete_version_after_sets_and_enforces_deletion_time() {
    let kv = Kv::new();
    kv.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    kv.ok(
        Operation::Update,
        "metadata/t",
        json!({"delete_version_after": "30s"}),
    )
    .await;
    let written = body(kv.put("t", json!({"a": 1})).await);
    assert!(is_rfc3339(&written["deletion_time"]));
    // Still readable: the deletion time is in the future.
    assert_eq!(kv.get("t").await.status, 0);

    let stored: KeyMetadata = store::load_meta(&kv.view, "t").await.unwrap().unwrap();
    let vm = stored.versions[&1];
    assert_eq!(
        vm.deletion_time,
        Some(vm.created_time + 30_000_000_000),
        "smaller non-zero setting wins"
    );

    // Once the deletion time has passed, the version reads as deleted.
    let mut past = stored.clone();
    if let Some(v) = past.versions.get_mut(&1) {
        v.deletion_time = Some(1);
    }
    let mut ws = WriteSet::new();
    ws.put_json(store::meta_key("t"), &past).unwrap();
    ws.commit(&kv.view).await.unwrap();
    assert_eq!(kv.get("t").await.status, 404);
    assert_eq!(
        body(kv.get("t").await)["metadata"]["deletion_time"],
        "1970-01-01T00:00:00.000000001Z"
    );

    // A mount setting of -1s disables it for every secret.
    kv.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": -1}),
    )
    .await;
    assert_eq!(
        body(kv.put("t", json!({"a": 2})).await)["deletion_time"],
        ""
    );
    bad_request(
        kv.call(
            Operation::Update,
            "metadata/t",
            json!({"delete_version_after": "-1s"}),
            &[],
        )
        .await,
    );
}

#[tokio::test]
async fn subkeys_hide_values() {
    let kv = Kv::new();
    kv.put(
        "s",
        json!({"foo": "abc", "bar": {"baz": "def"}, "quux": {}}),
    )
    .await;
    let r = body(kv.ok(Operation::Read, "subkeys/s", json!({})).await);
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": {"baz": null}, "quux": null})
    );
    assert_eq!(r["metadata"]["version"], 1);
    let r = kv
        .call(
            Operation::Read,
            "subkeys/s",
            json!({}),
            &[("depth", "1"), ("version", "1")],
        )
        .await
        .unwrap();
    assert_eq!(
        body(r)["subkeys"],
        json!({"foo": null, "bar": null, "quux": null})
    );
    kv.ok(Operation::Delete, "data/s", json!({})).await;
    let r = kv.ok(Operation::Read, "subkeys/s", json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(body(r)["subkeys"], Value::Null);
    assert!(matches!(
        kv.call(Operation::Read, "subkeys/none", json!({}), &[])
            .await,
        Err(EngineError::NotFound)
    ));
}
