//! Durability and linearizability under crashes: rounds of concurrent
//! clients doing writes, check-and-set and reads on a few keys through every
//! node, while a random node is killed with SIGKILL and restarted. The
//! recorded history of each key must be linearizable (Wing–Gong), and every
//! acknowledged write must be visible on every node at the end.
//!
//! Rounds: `CAIRN_RAFT_ROUNDS` (default 20; the full run is 100).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/linearizability.rs"]
mod linearizability;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, Options};
use linearizability::{Call, Op, Outcome};
use rand::Rng;
use serde_json::{json, Value};

const KEYS: [&str; 3] = ["reg-a", "reg-b", "reg-c"];
const CLIENTS: usize = 4;

type History = Arc<Mutex<Vec<(usize, Op)>>>;

/// One client request against `base` (`http://addr/v1/`); the outcome as the
/// checker sees it.
async fn perform(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    call: &Call,
) -> Outcome {
    let url = format!("{base}secret/data/{key}");
    let resp = match call {
        Call::Read => client.get(&url).header("X-Vault-Token", token).send().await,
        Call::Write(v) => {
            client
                .put(&url)
                .header("X-Vault-Token", token)
                .json(&json!({ "data": { "v": v } }))
                .send()
                .await
        }
        Call::Cas(exp, v) => {
            client
                .put(&url)
                .header("X-Vault-Token", token)
                .json(&json!({ "options": { "cas": exp }, "data": { "v": v } }))
                .send()
                .await
        }
    };
    let resp = match resp {
        Ok(r) => r,
        // Refused connections never carried the request.
        Err(e) if e.is_connect() => return Outcome::NotApplied,
        Err(_) => return Outcome::Unknown,
    };
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    // Refused before any proposal: the node had no leader to send it to.
    if status == 503
        && body["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("no raft leader"))
    {
        return Outcome::NotApplied;
    }
    match (call, status) {
        (Call::Read, 200) => Outcome::Read(
            body["data"]["metadata"]["version"].as_u64().unwrap_or(0),
            body["data"]["data"]["v"].as_str().map(str::to_owned),
        ),
        (Call::Read, 404) => Outcome::Read(0, None),
        (Call::Write(_) | Call::Cas(..), 200) => match body["data"]["version"].as_u64() {
            Some(n) => Outcome::Written(n),
            None => Outcome::Unknown,
        },
        (Call::Cas(..), 400) => Outcome::CasFailed,
        _ => Outcome::Unknown,
    }
}

fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_rounds_keep_every_acknowledged_write_and_stay_linearizable() {
    let rounds: usize = std::env::var("CAIRN_RAFT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut c = Cluster::start(
        3,
        Options {
            snapshot_threshold: 200,
            trailing_logs: 50,

            ..Options::default()
        },
    )
    .await;
    c.nodes[0].server.mount_secret(&c.root).await;
    let bases: Vec<String> = c.nodes.iter().map(|n| n.server.url("")).collect();
    let history: History = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut seq = 0u64;

    for round in 0..rounds {
        let victim = rand::thread_rng().gen_range(0..c.nodes.len());
        let stop_at = Instant::now() + Duration::from_millis(600);
        let mut clients = Vec::new();
        for id in 0..CLIENTS {
            let bases = bases.clone();
            let token = c.root.clone();
            let history = history.clone();
            let first = seq;
            seq += 10_000;
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(8))
                    .build()
                    .unwrap();
                let mut n = first;
                let mut last_version = 0u64;
                while Instant::now() < stop_at {
                    let (k, node, roll) = {
                        let mut rng = rand::thread_rng();
                        (
                            rng.gen_range(0..KEYS.len()),
                            rng.gen_range(0..bases.len()),
                            rng.gen_range(0..10),
                        )
                    };
                    n += 1;
                    let value = format!("r{round}c{id}n{n}");
                    let call = match roll {
                        0..=3 => Call::Write(value),
                        4..=5 => Call::Cas(last_version, value),
                        _ => Call::Read,
                    };
                    let invoked = micros(start);
                    let outcome = perform(&http, &bases[node], &token, KEYS[k], &call).await;
                    let completed = if outcome == Outcome::Unknown {
                        u64::MAX
                    } else {
                        micros(start)
                    };
                    match &outcome {
                        Outcome::Read(v, _) | Outcome::Written(v) => last_version = *v,
                        _ => {}
                    }
                    if outcome != Outcome::NotApplied {
                        history.lock().unwrap().push((
                            k,
                            Op {
                                call,
                                outcome,
                                invoked,
                                completed,
                            },
                        ));
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        c.nodes[victim].server.kill9();
        for client in clients {
            client.await.unwrap();
        }
        c.nodes[victim].server.spawn().await;
        cluster::unseal_when_ready(&c.nodes[victim].server, &c.keys).await;
        eprintln!(
            "round {round}: killed node{} at {:?}",
            victim + 1,
            start.elapsed()
        );
    }

    // Final reads on every node join the history: an acknowledged write that
    // was lost anywhere makes it non-linearizable.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for base in &bases {
        for (k, key) in KEYS.iter().enumerate() {
            let invoked = micros(start);
            let outcome = perform(&http, base, &c.root, key, &Call::Read).await;
            assert!(
                matches!(outcome, Outcome::Read(..)),
                "final read of {key} on {base} failed"
            );
            let completed = micros(start);
            history.lock().unwrap().push((
                k,
                Op {
                    call: Call::Read,
                    outcome,
                    invoked,
                    completed,
                },
            ));
        }
    }

    let history = history.lock().unwrap().clone();
    let acked = history
        .iter()
        .filter(|(_, o)| matches!(o.outcome, Outcome::Written(_)))
        .count();
    assert!(
        acked > rounds,
        "the workload made progress: {acked} acknowledged writes in {rounds} rounds"
    );
    for (k, key) in KEYS.iter().enumerate() {
        let ops: Vec<Op> = history
            .iter()
            .filter(|(i, _)| *i == k)
            .map(|(_, o)| o.clone())
            .collect();
        let count = ops.len();
        let dump = ops.clone();
        // Deep histories recurse deeply: check on a thread with room for it.
        let ok = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || linearizability::check(&ops))
            .unwrap()
            .join()
            .unwrap();
        eprintln!("checked {key}: {count} operations at {:?}", start.elapsed());
        if !ok {
            // Keep the failing history for a post-mortem: one operation per
            // line, in invocation order.
            let mut dump = dump;
            dump.sort_by_key(|o| o.invoked);
            let path = std::env::temp_dir().join(format!("cairn-lin-{key}.txt"));
            let text: String = dump.iter().map(|o| format!("{o:?}\n")).collect();
            std::fs::write(&path, text).unwrap();
            eprintln!("history of {key} written to {}", path.display());
        }
        assert!(
            ok,
            "history of {key} ({count} operations) is not linearizable"
        );
    }
}
