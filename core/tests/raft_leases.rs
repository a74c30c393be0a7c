//! Lease expiry on a Raft cluster: only the leader revokes, and a new leader
//! rebuilds its queue from storage and revokes what the dead one had queued.
//! Real `cairn server` processes and a real PostgreSQL.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::time::{Duration, Instant};

use cairn_e2e::Postgres;
use cluster::{Cluster, Options};
use serde_json::json;

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

async fn role_exists(pg: &Postgres, user: &str) -> bool {
    pg.admin()
        .await
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_new_leader_revokes_the_leases_its_predecessor_had_queued() {
    let pg = Postgres::start();
    let mut c = Cluster::start(3, Options::default()).await;
    assert_eq!(c.wait_leader(Duration::from_secs(10)).await, 0);
    let leader = &c.nodes[0].server;
    let root = c.root.clone();
    for (path, body) in [
        ("sys/mounts/database", json!({"type": "database"})),
        (
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.template_url(),
                "username": pg.superuser, "password": pg.password,
                "allowed_roles": "short,long",
            }),
        ),
        (
            "database/roles/short",
            json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": 5, "max_ttl": 60}),
        ),
        (
            "database/roles/long",
            json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": 3600, "max_ttl": 7200}),
        ),
    ] {
        let (status, reply) = leader.call("POST", path, Some(&root), Some(body)).await;
        assert_eq!(status, 204, "{path}: {reply}");
    }
    // Issued through a follower (forwarded to the leader).
    let creds = |role: &'static str| {
        let server = &c.nodes[1].server;
        let root = root.clone();
        async move {
            let (status, body) = server
                .call("GET", &format!("database/creds/{role}"), Some(&root), None)
                .await;
            assert_eq!(status, 200, "{body}");
            body["data"]["username"].as_str().unwrap().to_owned()
        }
    };
    let short = creds("short").await;
    let long = creds("long").await;
    let issued = Instant::now();
    assert!(role_exists(&pg, &short).await && role_exists(&pg, &long).await);

    // The leader dies before the short lease expires.
    c.nodes[0].server.kill9();
    let new_leader = c.wait_leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, 0);

    // Expiry at 5 s; the new leader must revoke within 1 s of it (plus the
    // election, which is over by now).
    let deadline = issued + Duration::from_secs(5 + 1 + 1);
    while role_exists(&pg, &short).await {
        assert!(
            Instant::now() < deadline,
            "the expired lease was not revoked after the leader change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        role_exists(&pg, &long).await,
        "an unexpired lease must stay"
    );

    // The restarted old leader (now a follower) does not revoke anything on
    // its own: the long lease is still there after it has caught up.
    c.nodes[0].server.spawn().await;
    cluster::unseal_when_ready(&c.nodes[0].server, &c.keys).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(role_exists(&pg, &long).await);
}
