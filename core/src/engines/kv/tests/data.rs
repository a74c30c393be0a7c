//! Reading and writing versions: shapes, check-and-set, patch, bad bodies.

use super::*;

#[tokio::test]
async fn write_then_read_has_vaults_shape() {
    let kv = Kv::new();
    let written = body(
        kv.put("app/db", json!({"password": "hunter2", "port": 5432}))
            .await,
    );
    assert_eq!(written["version"], 1);
    assert_eq!(written["deletion_time"], "");
    assert_eq!(written["destroyed"], false);
    assert_eq!(written["custom_metadata"], Value::Null);
    assert!(is_rfc3339(&written["created_time"]), "{written}");

    let read = kv.get("app/db").await;
    assert_eq!(read.status, 0);
    let read = body(read);
    assert_eq!(read["data"], json!({"password": "hunter2", "port": 5432}));
    assert_eq!(read["metadata"]["version"], 1);
    assert_eq!(read["metadata"]["created_time"], written["created_time"]);
    let keys: Vec<_> = read["metadata"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
}

#[tokio::test]
async fn versions_are_kept_and_readable() {
    let kv = Kv::new();
    for i in 1..=3 {
        assert_eq!(body(kv.put("s", json!({"n": i})).await)["version"], i);
    }
    assert_eq!(body(kv.get("s").await)["data"]["n"], 3);
    assert_eq!(body(kv.get_version("s", 1).await.unwrap())["data"]["n"], 1);
    // version=0 means latest.
    assert_eq!(body(kv.get_version("s", 0).await.unwrap())["data"]["n"], 3);
    assert!(matches!(
        kv.get_version("s", 9).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        kv.call(Operation::Read, "data/none", json!({}), &[]).await,
        Err(EngineError::NotFound)
    ));
    bad_request(
        kv.call(Operation::Read, "data/s", json!({}), &[("version", "x")])
            .await,
    );
}

#[tokio::test]
async fn check_and_set() {
    let kv = Kv::new();
    let w = |cas: u64, n: u64| {
        kv.call(
            Operation::Update,
            "data/c",
            json!({"data": {"n": n}, "options": {"cas": cas}}),
            &[],
        )
    };
    // cas 0: only when the secret does not exist yet.
    assert_eq!(body(w(0, 1).await.unwrap())["version"], 1);
    assert_eq!(bad_request(w(0, 2).await), CAS_MISMATCH);
    assert_eq!(bad_request(w(2, 2).await), CAS_MISMATCH);
    assert_eq!(body(w(1, 2).await.unwrap())["version"], 2);
    // A failed check leaves nothing behind.
    assert_eq!(body(kv.get("c").await)["data"]["n"], 2);
    // cas as a numeric string, as Vault's weak decoding allows.
    let r = kv
        .call(
            Operation::Update,
            "data/c",
            json!({"data": {}, "options": {"cas": "2"}}),
            &[],
        )
        .await;
    assert_eq!(body(r.unwrap())["version"], 3);
    assert_eq!(
        bad_request(
            kv.call(
                Operation::Update,
                "data/c",
                json!({"data": {}, "options": {"cas": -1}}),
                &[]
            )
            .await
        ),
        "error parsing check-and-set parameter"
    );
}

#[tokio::test]
async fn cas_required_by_mount_or_secret() {
    let kv = Kv::new();
    kv.put("free", json!({"a": 1})).await;
    kv.ok(
        Operation::Update,
        "metadata/strict",
        json!({"cas_required": true}),
    )
    .await;
    assert_eq!(
        bad_request(
            kv.call(
                Operation::Update,
                "data/strict",
                json!({"data": {"a": 1}}),
                &[]
            )
            .await
        ),
        CAS_REQUIRED
    );
    let ok = kv
        .call(
            Operation::Update,
            "data/strict",
            json!({"data": {"a": 1}, "options": {"cas": 0}}),
            &[],
        )
        .await;
    assert_eq!(body(ok.unwrap())["version"], 1);
    // The other secret is unaffected until the mount requires cas.
    kv.put("free", json!({"a": 2})).await;
    kv.ok(Operation::Update, "config", json!({"cas_required": true}))
        .await;
    assert_eq!(
        bad_request(
            kv.call(
                Operation::Update,
                "data/free",
                json!({"data": {"a": 3}}),
                &[]
            )
            .await
        ),
        CAS_REQUIRED
    );
    // Turning it off per secret does not override the mount, with a warning.
    let resp = kv
        .ok(
            Operation::Update,
            "metadata/free",
            json!({"cas_required": false}),
        )
        .await;
    assert_eq!(resp.warnings.len(), 1);
    assert_eq!(
        bad_request(
            kv.call(
                Operation::Update,
                "data/free",
                json!({"data": {"a": 3}}),
                &[]
            )
            .await
        ),
        CAS_REQUIRED
    );
    // Patch honours it too.
    assert_eq!(
        bad_request(
            kv.call(
                Operation::Patch,
                "data/free",
                json!({"data": {"a": 3}}),
                &[]
            )
            .await
        ),
        CAS_REQUIRED
    );
}

#[tokio::test]
async fn patch_is_a_json_merge_patch() {
    let kv = Kv::new();
    kv.put("m", json!({"a": 1, "b": {"c": 2, "d": 3}, "keep": "x"}))
        .await;
    let resp = kv
        .ok(
            Operation::Patch,
            "data/m",
            json!({"data": {"a": null, "b": {"c": null, "e": 4}, "f": [5]}, "options": {"cas": 1}}),
        )
        .await;
    assert_eq!(body(resp)["version"], 2);
    assert_eq!(
        body(kv.get("m").await)["data"],
        json!({"b": {"d": 3, "e": 4}, "f": [5], "keep": "x"})
    );
    assert_eq!(body(kv.get_version("m", 1).await.unwrap())["data"]["a"], 1);

    assert_eq!(
        bad_request(
            kv.call(
                Operation::Patch,
                "data/m",
                json!({"data": {"a": 1}, "options": {"cas": 1}}),
                &[]
            )
            .await
        ),
        CAS_MISMATCH
    );
    assert_eq!(
        bad_request(kv.call(Operation::Patch, "data/m", json!({}), &[]).await),
        "no data provided"
    );
    assert!(matches!(
        kv.call(
            Operation::Patch,
            "data/none",
            json!({"data": {"a": 1}}),
            &[]
        )
        .await,
        Err(EngineError::NotFound)
    ));
    // No live latest version: 404 with the version metadata, nothing written.
    kv.ok(Operation::Delete, "data/m", json!({})).await;
    let resp = kv
        .call(Operation::Patch, "data/m", json!({"data": {"a": 1}}), &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(body(resp)["version"], 2);
    assert_eq!(kv.meta("m").await["current_version"], 2);
}

#[tokio::test]
async fn write_rejects_missing_or_non_object_data() {
    let kv = Kv::new();
    for bad in [
        json!({}),
        json!({"data": null}),
        json!({"data": "s3cr3t-value"}),
        json!({"data": [1]}),
    ] {
        let msg = bad_request(kv.call(Operation::Update, "data/x", bad, &[]).await);
        assert!(
            !msg.contains("s3cr3t"),
            "a value leaked into the error: {msg}"
        );
    }
    bad_request(
        kv.call(
            Operation::Update,
            "data/x",
            json!({"data": {}, "options": "cas"}),
            &[],
        )
        .await,
    );
    assert!(
        kv.stored_keys("").await.is_empty(),
        "a refused write stored something"
    );
}
