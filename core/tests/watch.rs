//! Cairn's change stream (`sys/cairn/watch/<path>`) against a real server.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

async fn setup() -> (Server, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "", "storage \"inmem\" {}").await;
    let (keys, root) = server.init().await;
    server.unseal(&keys).await;
    server.mount_secret(&root).await;
    let (st, body) = server
        .call(
            "PUT",
            "sys/policies/acl/app",
            Some(&root),
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let token = server
        .create_token(&root, json!({"policies": ["app"]}))
        .await;
    put(&server, &root, "app/db", "one").await;
    (server, root, token, dir)
}

async fn put(server: &Server, token: &str, path: &str, value: &str) {
    let (st, body) = server
        .call(
            "POST",
            &format!("secret/data/{path}"),
            Some(token),
            Some(json!({"data": {"password": value}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

async fn watch(server: &Server, token: &str, path: &str, index: &str, wait: &str) -> (u16, Value) {
    server
        .call(
            "GET",
            &format!("sys/cairn/watch/{path}?index={index}&wait={wait}"),
            Some(token),
            None,
        )
        .await
}

#[tokio::test]
async fn a_watch_returns_within_a_moment_of_a_change() {
    let (server, root, token, _dir) = setup().await;
    let (st, first) = watch(&server, &token, "secret/data/app/db", "", "5s").await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["data"]["changed"], true);
    let index = first["data"]["index"].as_str().unwrap().to_owned();

    // Unchanged: the poll waits out its `wait` and says so.
    let started = Instant::now();
    let (_, same) = watch(&server, &token, "secret/data/app/db", &index, "1s").await;
    assert_eq!(same["data"]["changed"], false);
    assert_eq!(same["data"]["index"], index.as_str());
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A write wakes a waiting poll at once.
    let poll = {
        let server_url = server.url("sys/cairn/watch/secret/data/app/db");
        let client = server.client.clone();
        let token = token.clone();
        let index = index.clone();
        tokio::spawn(async move {
            let reply: Value = client
                .get(format!("{server_url}?index={index}&wait=20s"))
                .header("X-Vault-Token", token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (Instant::now(), reply)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    put(&server, &root, "app/db", "two").await;
    let written = Instant::now();
    let (woke, reply) = poll.await.unwrap();
    assert_eq!(reply["data"]["changed"], true, "{reply}");
    assert_ne!(reply["data"]["index"], index.as_str());
    assert!(
        woke.duration_since(written) < Duration::from_millis(500),
        "the poll took {:?} to see the write",
        woke.duration_since(written)
    );
    // The index says nothing of the value itself.
    assert!(!reply.to_string().contains("two"));

    // A deletion is a change too.
    let next = reply["data"]["index"].as_str().unwrap().to_owned();
    let (st, _) = server
        .call("DELETE", "secret/data/app/db", Some(&root), None)
        .await;
    assert_eq!(st, 204);
    let (_, gone) = watch(&server, &token, "secret/data/app/db", &next, "5s").await;
    assert_eq!(gone["data"]["changed"], true);
}

#[tokio::test]
async fn a_watch_needs_read_on_the_watched_path_and_a_kv_path() {
    let (server, root, token, _dir) = setup().await;
    let (st, _) = watch(&server, &token, "secret/data/other/db", "", "0").await;
    assert_eq!(st, 403);
    let (st, body) = watch(&server, &root, "sys/policies/acl/app", "", "0").await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = watch(&server, &root, "secret/metadata/app/db", "", "0").await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = watch(&server, &token, "secret/data/app/db", "", "soon").await;
    assert_eq!(st, 400, "{body}");
    // A missing secret can be watched (it may appear later).
    let (st, body) = watch(&server, &token, "secret/data/app/later", "", "0").await;
    assert_eq!(st, 200, "{body}");
    let absent = body["data"]["index"].as_str().unwrap().to_owned();
    put(&server, &root, "app/later", "now").await;
    let (_, body) = watch(&server, &token, "secret/data/app/later", &absent, "5s").await;
    assert_eq!(body["data"]["changed"], true);
}
