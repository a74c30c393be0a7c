//! Lease manager tests against a fake engine that counts revocations and can
//! be told to fail.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{LeaseError, LeaseManager, Owner};
use crate::barrier::{Barrier, Keyring, View};
use crate::engines::{Engine, EngineError, LeaseRequest, Request, Response};
use crate::node::mounts::{Mount, MountTable};
use crate::storage::memory::MemoryStorage;

#[derive(Default)]
struct FakeEngine {
    revoked: std::sync::Mutex<Vec<String>>,
    renewals: AtomicUsize,
    fail: AtomicBool,
}

#[async_trait]
impl Engine for FakeEngine {
    async fn handle(&self, _req: Request, _view: &View) -> Result<Response, EngineError> {
        Ok(Response::empty())
    }
    async fn renew(
        &self,
        _internal: &Value,
        _expire: i64,
        _view: &View,
    ) -> Result<(), EngineError> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn revoke(&self, internal: &Value, _view: &View) -> Result<(), EngineError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(EngineError::BadRequest("database is down".into()));
        }
        self.revoked
            .lock()
            .unwrap()
            .push(internal["user"].as_str().unwrap_or_default().to_owned());
        Ok(())
    }
}

async fn setup() -> (Arc<LeaseManager>, Arc<FakeEngine>, Mount, Arc<Barrier>) {
    let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
    barrier.set_keyring(Some(Keyring::generate(0)));
    let mounts = Arc::new(MountTable::load(barrier.clone()).await.unwrap());
    let engine = Arc::new(FakeEngine::default());
    let mount = mounts.mount_for_test("database/", engine.clone());
    let leases = LeaseManager::new(View::new(barrier.clone(), "sys/expire/"), mounts);
    (leases, engine, mount, barrier)
}

fn request(user: &str, ttl: i64, max_ttl: i64) -> LeaseRequest {
    LeaseRequest {
        ttl,
        max_ttl,
        renewable: true,
        internal: json!({"user": user}),
    }
}

fn token(h: &str) -> Owner {
    Owner::Token { hash: h.into() }
}

#[tokio::test]
async fn issue_lookup_list_renew_revoke() {
    let (leases, engine, mount, _) = setup().await;
    let issued = leases
        .issue(&mount.entry, "creds/ro", request("u1", 60, 120), token("t"))
        .await
        .unwrap();
    assert!(issued.lease_id.starts_with("database/creds/ro/"));
    assert_eq!((issued.lease_duration, issued.renewable), (60, true));
    let entry = leases.lookup(&issued.lease_id).await.unwrap().unwrap();
    let shown = entry.lookup_data(entry.issue_ms);
    assert_eq!(shown["ttl"], 60);
    assert!(
        shown.get("internal").is_none(),
        "revoke data is never shown"
    );
    assert_eq!(leases.list("database/creds/").await.unwrap(), vec!["ro/"]);

    // Renewal is capped by the max TTL and tells the engine.
    let renewed = leases.renew(&issued.lease_id, 1000).await.unwrap();
    assert!(renewed.expire_ms <= renewed.max_expire_ms);
    assert!(renewed.ttl_left(renewed.last_renewal_ms) <= 120);
    assert_eq!(engine.renewals.load(Ordering::SeqCst), 1);

    leases.revoke(&issued.lease_id).await.unwrap();
    assert_eq!(*engine.revoked.lock().unwrap(), vec!["u1"]);
    assert!(leases.lookup(&issued.lease_id).await.unwrap().is_none());
    assert!(matches!(
        leases.renew(&issued.lease_id, 0).await,
        Err(LeaseError::NotFound)
    ));
    assert!(matches!(
        leases.lookup("../etc").await,
        Err(LeaseError::BadRequest(_))
    ));
}

#[tokio::test]
async fn token_revocation_takes_its_leases_but_not_object_leases() {
    let (leases, engine, mount, _) = setup().await;
    leases
        .issue(
            &mount.entry,
            "creds/a",
            request("by-token", 60, 60),
            token("t1"),
        )
        .await
        .unwrap();
    leases
        .issue(
            &mount.entry,
            "creds/a",
            request("other-token", 60, 60),
            token("t2"),
        )
        .await
        .unwrap();
    let object = Owner::parse_object("team-a/DynamicCredential/db/uid-1").unwrap();
    leases
        .issue(
            &mount.entry,
            "creds/a",
            request("by-object", 60, 60),
            object,
        )
        .await
        .unwrap();
    leases.revoke_by_token("t1").await.unwrap();
    assert_eq!(*engine.revoked.lock().unwrap(), vec!["by-token"]);
    assert_eq!(leases.active(), 2);
}

#[tokio::test]
async fn failed_revocations_are_kept_visible_and_retried() {
    let (leases, engine, mount, _) = setup().await;
    let issued = leases
        .issue(&mount.entry, "creds/a", request("u", 60, 60), token("t"))
        .await
        .unwrap();
    engine.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        leases.revoke(&issued.lease_id).await,
        Err(LeaseError::Revoke(_))
    ));
    let entry = leases.lookup(&issued.lease_id).await.unwrap().unwrap();
    assert_eq!(entry.revoke_attempts, 1);
    assert_eq!(entry.last_error.as_deref(), Some("database is down"));
    assert_eq!(leases.revocation_failures.load(Ordering::SeqCst), 1);
    // Force deletes it regardless of the engine.
    leases.revoke_prefix("database/", true).await.unwrap();
    assert!(leases.lookup(&issued.lease_id).await.unwrap().is_none());
}

#[tokio::test]
async fn expired_leases_are_revoked_within_a_second_and_rebuilt_after_restart() {
    let (leases, engine, mount, barrier) = setup().await;
    for i in 0..50 {
        leases
            .issue(
                &mount.entry,
                "creds/a",
                request(&format!("u{i}"), 1, 1),
                token("t"),
            )
            .await
            .unwrap();
    }
    // A "restarted" manager over the same storage finds them again.
    let mounts = Arc::new(MountTable::load(barrier.clone()).await.unwrap());
    mounts.mount_for_test("database/", engine.clone());
    let fresh = LeaseManager::new(View::new(barrier, "sys/expire/"), mounts);
    assert_eq!(fresh.rebuild().await.unwrap(), 50);
    let worker = fresh.spawn_expiry(tokio::sync::watch::channel(true).1);
    let start = Instant::now();
    while engine.revoked.lock().unwrap().len() < 50 {
        assert!(
            start.elapsed() < Duration::from_millis(2000),
            "leases not revoked within 1 s of expiry"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.abort();
    assert_eq!(fresh.active(), 0);
    drop(leases);
}

#[tokio::test]
async fn object_owners_are_indexed_listed_and_revoked_together() {
    let (leases, engine, mount, _) = setup().await;
    let pod = Owner::parse_object("team-a/Pod/web-0/uid-1").unwrap();
    let other = Owner::parse_object("team-a/Pod/web-1/uid-2").unwrap();
    let dc = Owner::parse_object("team-b/DynamicCredential/db/uid-3").unwrap();
    for (user, owner) in [("p1", &pod), ("p2", &pod), ("o1", &other), ("d1", &dc)] {
        leases
            .issue(
                &mount.entry,
                "creds/ro",
                request(user, 60, 60),
                owner.clone(),
            )
            .await
            .unwrap();
    }
    assert_eq!(leases.by_owner(&pod).await.unwrap().len(), 2);
    let pods = leases.owners(Some("Pod")).await.unwrap();
    assert_eq!(pods, vec![(pod.clone(), 2), (other.clone(), 1)]);
    assert_eq!(leases.owners(None).await.unwrap().len(), 3);

    assert_eq!(leases.revoke_owner(&pod).await.unwrap(), 2);
    let mut revoked = engine.revoked.lock().unwrap().clone();
    revoked.sort();
    assert_eq!(revoked, vec!["p1", "p2"]);
    assert!(leases.by_owner(&pod).await.unwrap().is_empty());
    assert_eq!(
        leases.owners(Some("Pod")).await.unwrap(),
        vec![(other.clone(), 1)]
    );
    // Revoking one lease directly also drops it from its owner's index.
    let id = leases.by_owner(&other).await.unwrap()[0].id.clone();
    leases.revoke(&id).await.unwrap();
    assert!(leases.owners(Some("Pod")).await.unwrap().is_empty());
    assert_eq!(leases.active(), 1);
}

#[tokio::test]
async fn prefixes_are_folders_not_string_prefixes() {
    let (leases, engine, mount, _) = setup().await;
    let app = leases
        .issue(
            &mount.entry,
            "creds/app",
            request("app", 60, 60),
            token("t"),
        )
        .await
        .unwrap();
    leases
        .issue(
            &mount.entry,
            "creds/app-2",
            request("app2", 60, 60),
            token("t"),
        )
        .await
        .unwrap();
    for prefix in ["database/creds", "database/creds/", "/database/creds/"] {
        assert_eq!(
            leases.list(prefix).await.unwrap(),
            vec!["app-2/", "app/"],
            "{prefix}"
        );
    }
    assert_eq!(leases.list("").await.unwrap(), vec!["database/"]);
    assert!(leases.list("database/../x").await.is_err());

    assert_eq!(
        leases
            .revoke_prefix("database/creds/app", false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(*engine.revoked.lock().unwrap(), vec!["app"]);
    assert!(leases.lookup(&app.lease_id).await.unwrap().is_none());
    // A prefix naming one lease exactly revokes that lease.
    let other = leases.list("database/creds/app-2").await.unwrap();
    let id = format!("database/creds/app-2/{}", other[0]);
    assert_eq!(leases.revoke_prefix(&id, false).await.unwrap(), 1);
    assert_eq!(leases.active(), 0);
}
