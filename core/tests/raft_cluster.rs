//! A three-node Raft cluster of real `cairn server` processes on 127.0.0.x:
//! formation with retry_join, forwarding, read consistency, health codes,
//! peer TLS, leader failover under load, minority behaviour, snapshot catch-up.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Cluster, Options};
use serde_json::{json, Value};

async fn put(server: &common::Server, token: &str, key: &str, value: &str) -> (u16, Value) {
    server
        .call(
            "PUT",
            &format!("secret/data/{key}"),
            Some(token),
            Some(json!({ "data": { "v": value } })),
        )
        .await
}

async fn get_value(
    server: &common::Server,
    token: &str,
    key: &str,
    stale: bool,
) -> (u16, Option<String>) {
    let mut req = server
        .client
        .get(server.url(&format!("secret/data/{key}")))
        .header("X-Vault-Token", token);
    if stale {
        req = req.header("X-Cairn-Consistency", "stale");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 {
        eprintln!("GET {key} on {} answered {status}: {body}", server.addr);
    }
    (
        status,
        body["data"]["data"]["v"].as_str().map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_form_forward_and_fail_over() {
    let mut c = Cluster::start(3, Options::default()).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    assert_eq!(leader, 0, "the bootstrapping node leads a fresh cluster");
    c.nodes[0].server.mount_secret(&c.root).await;

    // A write on a follower is forwarded to the leader and readable everywhere
    // at once (read-index on the followers).
    let (status, body) = put(&c.nodes[1].server, &c.root, "a", "one").await;
    assert_eq!(status, 200, "{body}");
    for node in &c.nodes {
        assert_eq!(
            get_value(&node.server, &c.root, "a", false).await,
            (200, Some("one".into()))
        );
    }
    // Check-and-set runs on the leader even when sent to a follower.
    let (status, _) = c.nodes[2]
        .server
        .call(
            "PUT",
            "secret/data/a",
            Some(&c.root),
            Some(json!({ "options": { "cas": 1 }, "data": { "v": "two" } })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = c.nodes[1]
        .server
        .call(
            "PUT",
            "secret/data/a",
            Some(&c.root),
            Some(json!({ "options": { "cas": 1 }, "data": { "v": "three" } })),
        )
        .await;
    assert_eq!(
        status, 400,
        "a stale cas must fail wherever it is sent: {body}"
    );

    // Health: 200 on the leader, 429 on followers unless standbyok.
    let health = |i: usize, q: &'static str| {
        let s = &c.nodes[i].server;
        let url = format!("{}{}", s.url("sys/health"), q);
        let client = s.client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(health(0, "").await, 200);
    assert_eq!(health(1, "").await, 429);
    assert_eq!(health(1, "?standbyok=true").await, 200);
    let (_, leader_info) = c.nodes[2]
        .server
        .call("GET", "sys/leader", None, None)
        .await;
    assert_eq!(leader_info["ha_enabled"], true);
    assert_eq!(leader_info["is_self"], false);
    assert_eq!(
        leader_info["leader_address"],
        format!("http://{}", c.nodes[0].server.addr)
    );
    let (status, ha) = c.nodes[1]
        .server
        .call("GET", "sys/ha-status", Some(&c.root), None)
        .await;
    assert_eq!(status, 200, "{ha}");
    assert_eq!(ha["data"]["nodes"].as_array().unwrap().len(), 3);

    // Kill the leader under concurrent write load: a new leader accepts writes
    // within 2 s.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let server_addr = c.nodes[1 + w % 2].server.url("");
        let token = c.root.clone();
        let stop = stop.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut last_ok = None;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let url = format!("{server_addr}secret/data/load-{w}");
                let resp = client
                    .put(url)
                    .header("X-Vault-Token", &token)
                    .json(&json!({ "data": { "v": i.to_string() } }))
                    .send()
                    .await;
                if matches!(&resp, Ok(r) if r.status().as_u16() == 200) {
                    acked.fetch_add(1, Ordering::Relaxed);
                    last_ok = Some(i);
                }
            }
            (w, last_ok)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = acked.load(Ordering::Relaxed);
    assert!(before > 0, "writes flow before the kill");
    c.nodes[0].server.kill9();
    let killed_at = Instant::now();
    let new_leader = c.wait_leader(Duration::from_secs(5)).await;
    assert_ne!(new_leader, 0);
    loop {
        let (status, _) = put(&c.nodes[new_leader].server, &c.root, "after-failover", "x").await;
        if status == 200 {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(2),
            "no write accepted within 2 s of the leader's death"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut last = Vec::new();
    for w in writers {
        last.push(w.await.unwrap());
    }
    assert!(
        acked.load(Ordering::Relaxed) > before,
        "writes resumed after failover ({failover:?})"
    );

    // The old leader restarts, rejoins as a follower and catches up.
    c.nodes[0].server.spawn().await;
    cluster::unseal_when_ready(&c.nodes[0].server, &c.keys).await;
    for (w, last_ok) in last {
        let Some(i) = last_ok else { continue };
        for node in &c.nodes {
            let (status, v) = get_value(&node.server, &c.root, &format!("load-{w}"), false).await;
            assert_eq!(status, 200);
            let v: u64 = v.unwrap().parse().unwrap();
            assert!(
                v >= i,
                "acknowledged write {i} of writer {w} lost on {} (reads {v})",
                node.name
            );
        }
    }
    // A stale read is served locally: the restarted node has it once it caught up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = get_value(&c.nodes[0].server, &c.root, "after-failover", true).await;
        if v.as_deref() == Some("x") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node never caught up: {status} {v:?}\n{}",
            c.nodes[0].server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_refuses_writes_and_serves_only_stale_reads() {
    let mut c = Cluster::start(3, Options::default()).await;
    c.nodes[0].server.mount_secret(&c.root).await;
    let (status, _) = put(&c.nodes[0].server, &c.root, "k", "v1").await;
    assert_eq!(status, 200);
    // Make sure node 3 has applied the write before it is cut off.
    assert_eq!(
        get_value(&c.nodes[2].server, &c.root, "k", false)
            .await
            .1
            .as_deref(),
        Some("v1")
    );
    c.nodes[0].server.kill9();
    c.nodes[1].server.kill9();
    let lone = &c.nodes[2].server;
    let (status, body) = put(lone, &c.root, "k", "v2").await;
    assert_eq!(status, 503, "{body}");
    let message = body["errors"][0].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("quorum"), "the error says why: {message}");
    let (status, _) = get_value(lone, &c.root, "k", false).await;
    assert_eq!(status, 503, "a consistent read needs a quorum");
    assert_eq!(
        get_value(lone, &c.root, "k", true).await,
        (200, Some("v1".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_without_a_cluster_certificate_are_refused() {
    let c = Cluster::start(1, Options::default()).await;
    let target = format!("https://{}/cluster/read-index", c.nodes[0].cluster_addr);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(c.pki.ca_file()).unwrap()).unwrap();
    // Trusting the server but presenting no certificate: the handshake fails.
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    assert!(anonymous.post(&target).json(&()).send().await.is_err());
    // A certificate from another CA is refused too.
    let other = cluster::Pki::new(c.dir.path(), "other");
    let (cert, key) = other.issue(c.dir.path(), "intruder", "127.0.0.1".parse().unwrap());
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    let intruder = reqwest::Client::builder()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    assert!(intruder.post(&target).json(&()).send().await.is_err());
    // Plaintext is not served on the cluster port at all.
    let plain = reqwest::Client::new();
    let served = plain
        .post(format!(
            "http://{}/cluster/read-index",
            c.nodes[0].cluster_addr
        ))
        .json(&())
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(!served);
}

/// `--insecure-cluster` (development only): peers talk plaintext HTTP, and a
/// cluster still forms, forwards writes and serves linearizable reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_insecure_dev_cluster_forms_and_replicates_over_plaintext() {
    let c = Cluster::start(
        3,
        Options {
            insecure: true,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(c.wait_leader(Duration::from_secs(10)).await, 0);
    c.nodes[0].server.mount_secret(&c.root).await;
    let (status, body) = put(&c.nodes[2].server, &c.root, "plain", "text").await;
    assert_eq!(status, 200, "a follower forwards over plaintext: {body}");
    for node in &c.nodes {
        assert_eq!(
            get_value(&node.server, &c.root, "plain", false).await,
            (200, Some("text".into()))
        );
    }
    assert!(c.nodes[0]
        .server
        .logs()
        .contains("--insecure-cluster: peer traffic is plaintext"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_node_recovers_from_a_snapshot() {
    let mut c = Cluster::start(
        3,
        Options {
            snapshot_threshold: 20,
            trailing_logs: 5,

            ..Options::default()
        },
    )
    .await;
    c.nodes[0].server.mount_secret(&c.root).await;
    c.nodes[2].server.kill9();
    for i in 0..60 {
        let (status, body) = put(
            &c.nodes[0].server,
            &c.root,
            &format!("s{i}"),
            &i.to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    std::fs::remove_dir_all(&c.nodes[2].data).unwrap();
    c.nodes[2].server.spawn().await;
    cluster::unseal_when_ready(&c.nodes[2].server, &c.keys).await;
    for i in 0..60 {
        let (status, v) = get_value(&c.nodes[2].server, &c.root, &format!("s{i}"), false).await;
        assert_eq!((status, v), (200, Some(i.to_string())));
    }
}

fn cli(server: &common::Server, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_ADDR", format!("http://{}", server.addr))
        .env("CAIRN_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_restores_into_a_fresh_cluster_with_the_original_shares() {
    let a = Cluster::start(1, Options::default()).await;
    let sa = &a.nodes[0].server;
    sa.mount_secret(&a.root).await;
    for i in 0..5 {
        let (status, _) = put(sa, &a.root, &format!("b{i}"), &format!("secret-value-{i}")).await;
        assert_eq!(status, 200);
    }
    let peers = cli(sa, &a.root, &["operator", "raft", "list-peers"]);
    assert!(
        peers.status.success(),
        "{}",
        String::from_utf8_lossy(&peers.stderr)
    );
    let peers = String::from_utf8_lossy(&peers.stdout).into_owned();
    assert!(
        peers.contains("node1") && peers.contains("leader"),
        "{peers}"
    );

    let file = a.dir.path().join("backup.snap");
    let save = cli(
        sa,
        &a.root,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        save.status.success(),
        "{}",
        String::from_utf8_lossy(&save.stderr)
    );
    let backup = std::fs::read_to_string(&file).unwrap();
    assert!(
        !backup.contains("secret-value"),
        "the backup holds ciphertext only"
    );

    let b = Cluster::start(1, Options::default()).await;
    let sb = &b.nodes[0].server;
    let restore = cli(
        sb,
        &b.root,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let (_, status) = sb.call("GET", "sys/seal-status", None, None).await;
    assert_eq!(status["sealed"], true, "restore seals the node");
    // B's own shares no longer open it; A's do.
    for k in b.keys.iter().take(3) {
        sb.call("PUT", "sys/unseal", None, Some(json!({ "key": k })))
            .await;
    }
    let (_, status) = sb.call("GET", "sys/seal-status", None, None).await;
    assert_eq!(status["sealed"], true);
    sb.call("PUT", "sys/unseal", None, Some(json!({ "reset": true })))
        .await;
    sb.unseal(&a.keys).await;
    for i in 0..5 {
        assert_eq!(
            get_value(sb, &a.root, &format!("b{i}"), false).await,
            (200, Some(format!("secret-value-{i}")))
        );
    }
}

#[tokio::test]
async fn followers_forget_cached_transit_keys_changed_on_the_leader() {
    let c = Cluster::start(3, Options::default()).await;
    assert_eq!(c.wait_leader(Duration::from_secs(10)).await, 0);
    let leader = &c.nodes[0].server;
    let follower = &c.nodes[1].server;
    let (status, body) = leader
        .call(
            "POST",
            "sys/mounts/transit",
            Some(&c.root),
            Some(json!({"type": "transit"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = leader
        .call("POST", "transit/keys/k", Some(&c.root), Some(json!({})))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    // The follower reads (and caches) version 1, then the leader rotates.
    assert_eq!(latest_version(follower, &c.root).await, 1);
    let (status, body) = leader
        .call(
            "POST",
            "transit/keys/k/rotate",
            Some(&c.root),
            Some(json!({})),
        )
        .await;
    assert!(status == 200 || status == 204, "{body}");
    assert_eq!(
        latest_version(follower, &c.root).await,
        2,
        "the follower served a stale cached key"
    );
    // Deleting it on the leader removes it from the follower's view too.
    let (status, _) = leader
        .call(
            "POST",
            "transit/keys/k/config",
            Some(&c.root),
            Some(json!({"deletion_allowed": true})),
        )
        .await;
    assert!(status == 200 || status == 204);
    let (status, _) = leader
        .call("DELETE", "transit/keys/k", Some(&c.root), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = follower
        .call("GET", "transit/keys/k", Some(&c.root), None)
        .await;
    assert_eq!(status, 404);
}

async fn latest_version(server: &common::Server, token: &str) -> i64 {
    let (status, body) = server
        .call("GET", "transit/keys/k", Some(token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["latest_version"].as_i64().unwrap()
}

#[tokio::test]
async fn followers_forget_cached_tokens_and_metadata_changed_on_the_leader() {
    let c = Cluster::start(3, Options::default()).await;
    assert_eq!(c.wait_leader(Duration::from_secs(10)).await, 0);
    let leader = &c.nodes[0].server;
    let follower = &c.nodes[1].server;
    leader.mount_secret(&c.root).await;

    // The follower keeps the secret's metadata after a read; a new version
    // and a metadata delete on the leader show at once on the follower.
    let (status, body) = put(leader, &c.root, "m", "one").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_value(follower, &c.root, "m", false).await,
        (200, Some("one".into()))
    );
    let (status, body) = put(leader, &c.root, "m", "two").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_value(follower, &c.root, "m", false).await,
        (200, Some("two".into())),
        "the follower served stale cached metadata"
    );
    let (status, _) = leader
        .call("DELETE", "secret/metadata/m", Some(&c.root), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(get_value(follower, &c.root, "m", false).await.0, 404);

    let (status, body) = put(leader, &c.root, "t", "v").await;
    assert_eq!(status, 200, "{body}");

    // A token with three uses: the follower caches its entry on the first.
    let token = leader
        .create_token(&c.root, json!({"policies": ["root"], "num_uses": 3}))
        .await;
    assert_eq!(get_value(follower, &token, "t", false).await.0, 200);
    // Every use is counted on the leader, so the third is the last anywhere.
    assert_eq!(get_value(leader, &token, "t", false).await.0, 200);
    assert_eq!(get_value(follower, &token, "t", false).await.0, 200);
    assert_eq!(
        get_value(follower, &token, "t", false).await.0,
        403,
        "the follower accepted a token whose uses were spent"
    );

    // An unlimited token cached by the follower, then revoked on the leader.
    let token = leader
        .create_token(&c.root, json!({"policies": ["root"]}))
        .await;
    assert_eq!(get_value(follower, &token, "t", false).await.0, 200);
    let (status, body) = leader
        .call(
            "POST",
            "auth/token/revoke",
            Some(&c.root),
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        get_value(follower, &token, "t", false).await.0,
        403,
        "the follower served a revoked token from its cache"
    );
}

#[tokio::test]
async fn a_follower_reads_under_a_policy_changed_on_the_leader_at_once() {
    let c = Cluster::start(3, Options::default()).await;
    assert_eq!(c.wait_leader(Duration::from_secs(10)).await, 0);
    let leader = &c.nodes[0].server;
    let follower = &c.nodes[1].server;
    leader.mount_secret(&c.root).await;
    let (status, body) = put(leader, &c.root, "p", "v").await;
    assert_eq!(status, 200, "{body}");
    let reader_of = |path: &str| format!("path \"{path}\" {{ capabilities = [\"read\"] }}");
    leader
        .write_policy(&c.root, "reader", &reader_of("secret/data/p"))
        .await;
    let token = leader
        .create_token(&c.root, json!({"policies": ["reader"]}))
        .await;
    for round in 0..5 {
        assert_eq!(
            get_value(follower, &token, "p", false).await.0,
            200,
            "round {round}"
        );
        // Tightened on the leader: the follower's next (linearizable) read
        // is judged by the new policy, never by the one it had loaded.
        leader
            .write_policy(&c.root, "reader", &reader_of("secret/data/elsewhere"))
            .await;
        assert_eq!(
            get_value(follower, &token, "p", false).await.0,
            403,
            "round {round}: the follower read under a policy the leader had replaced"
        );
        leader
            .write_policy(&c.root, "reader", &reader_of("secret/data/p"))
            .await;
    }
}
