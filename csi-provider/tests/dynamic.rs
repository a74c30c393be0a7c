//! Dynamic database credentials through the provider against a real
//! PostgreSQL: the credential logs in, its lease is owned by the pod,
//! rotation polls renew that lease instead of issuing, and a restarted
//! provider replaces the credentials it can no longer give and revokes
//! the old lease.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly on any error

mod common;

use cairn_e2e::Postgres;
use common::{files, versions, Core, Pod, Provider, TokenReviewServer, POLICY};
use serde_json::json;

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

const OBJECTS: &str = r#"
- fileName: db/username
  path: database/creds/team-a-ro
  key: username
- fileName: db/password
  path: database/creds/team-a-ro
  key: password
  mode: "0400"
- fileName: config/app
  path: secret/data/team-a/app
  key: mode
"#;

async fn can_login(pg: &Postgres, user: &str, password: &str) -> bool {
    match pg.connect(user, password).await {
        Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

async fn role_exists(pg: &Postgres, user: &str) -> bool {
    pg.admin()
        .await
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn leased_credentials_are_owned_by_the_pod_and_renewed_on_polls() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(dir.path()).await;
    let reviewer = TokenReviewServer::start().await;
    core.kubernetes_auth(&reviewer, POLICY).await;
    core.put("team-a/app", json!({"mode": "blue"})).await;
    let (st, body) = core
        .call(
            "POST",
            "sys/mounts/database",
            Some(json!({"type": "database"})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = core
        .call(
            "POST",
            "database/config/pg",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.template_url(),
                "username": pg.superuser,
                "password": pg.password,
                "allowed_roles": "team-a-ro",
            })),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = core
        .call(
            "POST",
            "database/roles/team-a-ro",
            Some(json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h", "max_ttl": "24h"})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let mut provider = Provider::start(dir.path(), &core.addr, &[]).await;
    let pod = Pod::new(&reviewer, "api-0");
    let mut client = provider.client().await;

    let first = client
        .mount(pod.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    let f = files(&first);
    let user = String::from_utf8(f["db/username"].1.clone()).unwrap();
    let password = String::from_utf8(f["db/password"].1.clone()).unwrap();
    assert_eq!(f["db/password"].0, 0o400);
    assert!(
        can_login(&pg, &user, &password).await,
        "the mounted credential logs in"
    );
    // One credential for both files, under one lease owned by the pod.
    let leases = core.owner_leases(&pod.owner()).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(leases[0].starts_with("database/creds/team-a-ro/"));
    let (_, owners) = core
        .call("GET", "sys/cairn/leases/owners?kind=Pod", None)
        .await;
    assert_eq!(
        owners["data"]["owners"][0]["uid"],
        pod.uid.as_str(),
        "{owners}"
    );
    let (_, before) = core
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": leases[0]})),
        )
        .await;

    // Rotation polls: same credential and versions, no new lease, one renew
    // per leased object per poll.
    let reads = provider
        .counter("cairn_csi_core_requests_total{op=\"read\"}")
        .await;
    let renews = provider
        .counter("cairn_csi_core_requests_total{op=\"renew\"}")
        .await;
    let logins = provider
        .counter("cairn_csi_core_requests_total{op=\"login\"}")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let mut poll = pod.request(json!({ "objects": OBJECTS }));
        poll.current_object_version = first.object_version.clone();
        let again = client.mount(poll).await.unwrap().into_inner();
        assert_eq!(files(&again), f);
        assert_eq!(versions(&again), versions(&first));
    }
    assert_eq!(core.owner_leases(&pod.owner()).await, leases);
    assert_eq!(
        provider
            .counter("cairn_csi_core_requests_total{op=\"renew\"}")
            .await
            - renews,
        3.0
    );
    assert_eq!(
        provider
            .counter("cairn_csi_core_requests_total{op=\"read\"}")
            .await
            - reads,
        3.0,
        "only the KV object is read again"
    );
    assert_eq!(
        provider
            .counter("cairn_csi_core_requests_total{op=\"login\"}")
            .await,
        logins
    );
    let (_, after) = core
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": leases[0]})),
        )
        .await;
    assert!(
        after["data"]["expire_time"].as_str() > before["data"]["expire_time"].as_str(),
        "renewed: {before} -> {after}"
    );

    // Another pod of the same identity gets its own credential and lease.
    let other = Pod::new(&reviewer, "api-1");
    let resp = client
        .mount(other.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(files(&resp)["db/username"], f["db/username"]);
    assert_eq!(core.owner_leases(&other.owner()).await.len(), 1);

    // The lease survives the provider; a restarted provider cannot return
    // the old password, so it issues a new credential and revokes the old.
    provider.kill();
    provider.spawn().await;
    let mut client = provider.client().await;
    let restarted = client
        .mount(pod.request(json!({ "objects": OBJECTS })))
        .await
        .unwrap()
        .into_inner();
    let f2 = files(&restarted);
    let user2 = String::from_utf8(f2["db/username"].1.clone()).unwrap();
    let password2 = String::from_utf8(f2["db/password"].1.clone()).unwrap();
    assert_ne!(user2, user);
    assert!(can_login(&pg, &user2, &password2).await);
    assert!(
        !role_exists(&pg, &user).await,
        "the old credential is revoked"
    );
    let now = core.owner_leases(&pod.owner()).await;
    assert_eq!(now.len(), 1);
    assert_ne!(now, leases);
    assert_ne!(
        versions(&restarted)["db/password"],
        versions(&first)["db/password"]
    );
    assert_eq!(
        versions(&restarted)["config/app"],
        versions(&first)["config/app"]
    );

    // The pod goes: the operator's garbage collection revokes by owner.
    let (st, body) = core
        .call(
            "PUT",
            "sys/cairn/leases/revoke-owner",
            Some(json!({"owner": pod.owner()})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(!role_exists(&pg, &user2).await);
    let logs = provider.logs();
    for secret in [&password, &password2, &pod.tokens[0].1] {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
}
