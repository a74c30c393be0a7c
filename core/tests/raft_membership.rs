//! Cluster membership through the API and the CLI, on real processes: a node
//! started without `retry_join` joins with `cairn operator raft join`, peers
//! are listed and removed with the CLI, a rejoin of a member is refused, and
//! `sys/rotate` sent to a follower reaches every node.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{start_node, unseal_when_ready, Cluster, Options};
use serde_json::json;

/// Run the CLI against `addr` with `token`; (success, stdout, stderr).
fn cli(addr: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_ADDR", format!("http://{addr}"))
        .env("CAIRN_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn voters(c: &Cluster, leader: usize) -> Vec<String> {
    let (status, body) = c.nodes[leader]
        .server
        .call("GET", "sys/storage/raft/configuration", Some(&c.root), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["data"]["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node_id"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn join_list_remove_with_the_cli_and_rotate_on_a_follower() {
    let mut c = Cluster::start(2, Options::default()).await;
    assert_eq!(c.wait_leader(Duration::from_secs(10)).await, 0);
    let leader_addr = c.nodes[0].server.addr.clone();

    // A third node, started with no retry_join, joins through the CLI.
    let third = start_node(c.dir.path(), &c.pki, 2, None, &Options::default()).await;
    let (ok, out, err) = cli(
        &third.server.addr,
        "",
        &["operator", "raft", "join", &format!("http://{leader_addr}")],
    );
    assert!(ok, "join failed: {out} {err}");
    assert!(out.contains("Joined"), "{out}");
    unseal_when_ready(&third.server, &c.keys).await;
    c.nodes.push(third);
    let deadline = Instant::now() + Duration::from_secs(10);
    while voters(&c, 0).await.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the joined node never became a voter"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It serves the cluster's data.
    c.nodes[0].server.mount_secret(&c.root).await;
    let (status, _) = c.nodes[0]
        .server
        .call(
            "POST",
            "secret/data/a",
            Some(&c.root),
            Some(json!({"data": {"v": "1"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = c.nodes[2]
        .server
        .call("GET", "secret/data/a", Some(&c.root), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["v"], "1");

    // list-peers shows all three with their roles.
    let (ok, out, err) = cli(&leader_addr, &c.root, &["operator", "raft", "list-peers"]);
    assert!(ok, "{err}");
    for name in ["node1", "node2", "node3"] {
        assert!(out.contains(name), "{out}");
    }
    assert_eq!(out.matches("leader").count(), 1, "{out}");

    // Joining a node that is already a member is refused with a clear error.
    let (ok, _, err) = cli(
        &c.nodes[2].server.addr,
        "",
        &["operator", "raft", "join", &format!("http://{leader_addr}")],
    );
    assert!(!ok);
    assert!(err.contains("already a member"), "{err}");

    // sys/rotate sent to a follower is forwarded; every node sees the new term.
    let (status, body) = c.nodes[1]
        .server
        .call("POST", "sys/rotate", Some(&c.root), Some(json!({})))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    for node in &c.nodes {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, body) = node
                .server
                .call("GET", "sys/key-status", Some(&c.root), None)
                .await;
            if body["data"]["term"] == 2 || body["term"] == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {body}", node.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Data written before and after the rotation reads everywhere.
    let (status, _) = c.nodes[2]
        .server
        .call(
            "POST",
            "secret/data/b",
            Some(&c.root),
            Some(json!({"data": {"v": "2"}})),
        )
        .await;
    assert_eq!(status, 200);
    for node in &c.nodes {
        for key in ["a", "b"] {
            let (status, _) = node
                .server
                .call("GET", &format!("secret/data/{key}"), Some(&c.root), None)
                .await;
            assert_eq!(status, 200, "{} {key}", node.name);
        }
    }

    // remove-peer needs sudo, then drops the node from the configuration.
    let (ok, _, err) = cli(
        &leader_addr,
        "not-a-token",
        &["operator", "raft", "remove-peer", "node3"],
    );
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, out, err) = cli(
        &leader_addr,
        &c.root,
        &["operator", "raft", "remove-peer", "node3"],
    );
    assert!(ok, "{out} {err}");
    assert_eq!(voters(&c, 0).await, vec!["node1", "node2"]);
    // The two remaining nodes still make a quorum and accept writes.
    let (status, _) = c.nodes[1]
        .server
        .call(
            "POST",
            "secret/data/c",
            Some(&c.root),
            Some(json!({"data": {"v": "3"}})),
        )
        .await;
    assert_eq!(status, 200);
}
