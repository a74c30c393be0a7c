//! Concurrent writers to one secret.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_writers_have_one_winner_per_version() {
    let kv = Arc::new(Kv::new());
    for round in 0..5u64 {
        let tasks: Vec<_> = (0..16u64)
            .map(|writer| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    kv.call(
                        Operation::Update,
                        "data/race",
                        json!({"data": {"writer": writer}, "options": {"cas": round}}),
                        &[],
                    )
                    .await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    winners += 1;
                    assert_eq!(body(r)["version"], round + 1);
                }
                Err(EngineError::BadRequest(m)) => assert_eq!(m, CAS_MISMATCH),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    assert_eq!(kv.meta("race").await["current_version"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_plain_writers_get_distinct_versions() {
    let kv = Arc::new(Kv::new());
    let tasks: Vec<_> = (0..40u64)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(
                async move { body(kv.put("many", json!({"i": i})).await)["version"].as_u64() },
            )
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().unwrap_or(0));
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=40).collect::<Vec<_>>());
    // Default retention holds exactly ten versions' data.
    assert_eq!(kv.stored_keys("data/many/").await.len(), 10);
}
