//! `RedbStorage` under `kill -9`: a child process writes and reports every
//! acknowledged batch on stdout; the test SIGKILLs it mid-stream, reopens the
//! file and checks that every acknowledged batch is there, whole, and nothing
//! else is. The child is this test binary run again with `CAIRN_DURABILITY_CHILD`
//! set, so no extra binary is needed.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // a failed step should panic with its error

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cairn_core::storage::redb::RedbStorage;
use cairn_core::storage::{Op, Storage};

/// Set to the database path in the child process.
const CHILD_ENV: &str = "CAIRN_DURABILITY_CHILD";
/// Which round the child writes, so rounds use disjoint keys.
const ROUND_ENV: &str = "CAIRN_DURABILITY_ROUND";
/// The child's concurrent writers, enough that commits carry several batches.
const WRITERS: usize = 8;
/// Kill rounds on the same file: later rounds write into a file already
/// repaired after a crash.
const ROUNDS: usize = 3;
/// The child gives up on its own after this, in case the parent died and
/// cannot kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// How long the parent waits for acknowledgements before failing.
const PARENT_PATIENCE: Duration = Duration::from_secs(120);

/// Batch `i` of writer `w` in `round`: put a new key, and every fourth batch also
/// delete the key written two batches earlier, so acknowledged deletes and the
/// atomicity of a two-op batch are checked as well.
fn batch(round: usize, w: usize, i: usize) -> Vec<Op> {
    let put_key = key(round, w, i);
    let mut ops = vec![Op::Put {
        value: value(&put_key, i),
        key: put_key,
    }];
    if i % 4 == 3 {
        ops.push(Op::Delete {
            key: key(round, w, i - 2),
        });
    }
    ops
}

fn key(round: usize, w: usize, i: usize) -> String {
    format!("r{round}/w{w}/{i:08}")
}

/// Values from about 1 KiB to 12 KiB, so some span several pages and a torn
/// write would show as a wrong value.
fn value(key: &str, i: usize) -> Vec<u8> {
    format!("{key}|").repeat(50 + (i * 37) % 500).into_bytes()
}

/// What writer `w` of `round` has in storage once batches `0..count` applied.
fn replay(round: usize, w: usize, count: usize) -> BTreeMap<String, Vec<u8>> {
    let mut state = BTreeMap::new();
    for i in 0..count {
        for op in batch(round, w, i) {
            match op {
                Op::Put { key, value } => {
                    state.insert(key, value);
                }
                Op::Delete { key } => {
                    state.remove(&key);
                }
            }
        }
    }
    state
}

/// Not a check by itself: the body of the child process that
/// `acknowledged_writes_survive_kill_9` starts and kills. Run without
/// `CAIRN_DURABILITY_CHILD`, it returns at once.
#[test]
fn durability_child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let round: usize = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let storage = Arc::new(RedbStorage::open(Path::new(&path)).unwrap());
        let started = Instant::now();
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let storage = Arc::clone(&storage);
            writers.spawn(async move {
                let mut i = 0;
                while started.elapsed() < CHILD_LIFETIME {
                    storage.batch(batch(round, w, i)).await.unwrap();
                    // Printed only after the batch is acknowledged.
                    println!("ACK {w} {i}");
                    i += 1;
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
    });
}

/// The child process, killed if the parent panics before killing it on purpose.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run one child writing `round`, kill it after `acks` acknowledgements, and
/// return how many batches each writer had acknowledged.
fn write_until_killed(path: &Path, round: usize, acks: usize) -> Vec<usize> {
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["durability_child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .env(ROUND_ENV, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    // Lines arrive through a thread so the wait for them can have a deadline.
    let stdout = child.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                // A line cut short by the kill was never fully reported.
                Ok(0) | Err(_) => break,
                Ok(_) if !line.ends_with('\n') => break,
                Ok(_) => {
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut acked = vec![0usize; WRITERS];
    let mut record = |line: &str| {
        // The harness prints `test <name> ... ` without a newline before the
        // child's first line, so the marker need not start the line.
        let Some(at) = line.find("ACK ") else {
            return false; // the harness's own output
        };
        let rest = line[at + 4..].trim_end();
        let (w, i) = rest.split_once(' ').unwrap();
        let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
        // Each writer is sequential, so its acks come in order without gaps.
        assert_eq!(
            i, acked[w],
            "writer {w} acknowledged batch {i} out of order"
        );
        acked[w] = i + 1;
        true
    };

    let deadline = Instant::now() + PARENT_PATIENCE;
    let mut seen = 0;
    while seen < acks {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen += usize::from(record(&line)),
            Err(e) => {
                panic!("round {round}: only {seen} of {acks} acknowledgements arrived ({e})");
            }
        }
    }
    // `Child::kill` sends SIGKILL: no destructor, no flush, no clean close.
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: child ended with {status}"
    );
    // Acknowledgements still in the pipe count as well.
    reader.join().unwrap();
    for line in lines.try_iter() {
        record(&line);
    }
    acked
}

/// Check that writer `w` of `round` holds exactly the acknowledged batches, or
/// those plus the one batch it may have committed but not yet reported. Returns
/// how many keys the writer has in storage.
async fn check_writer(storage: &RedbStorage, round: usize, w: usize, acked: usize) -> usize {
    let mut found = BTreeMap::new();
    for key in storage
        .keys_with_prefix(&format!("r{round}/w{w}/"))
        .await
        .unwrap()
    {
        let value = storage.get(&key).await.unwrap().unwrap();
        found.insert(key, value);
    }
    let acknowledged = replay(round, w, acked);
    let one_more = replay(round, w, acked + 1);
    if found != acknowledged && found != one_more {
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|(k, v)| found.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        let extra: Vec<_> = found
            .keys()
            .filter(|k| !one_more.contains_key(*k))
            .collect();
        panic!(
            "round {round} writer {w}: {acked} batches acknowledged, but the store \
             differs; missing or wrong: {missing:?}, unexpected: {extra:?}"
        );
    }
    found.len()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for round in 0..ROUNDS {
        let acked = write_until_killed(&path, round, 150 + 150 * round);
        assert!(acked.iter().sum::<usize>() >= 150 + 150 * round);
        rounds.push(acked);

        // Every round so far, not just this one: a crash must not lose what
        // earlier runs acknowledged either.
        runtime.block_on(async {
            let storage = RedbStorage::open(&path).unwrap();
            let mut checked = 0;
            for (round, acked) in rounds.iter().enumerate() {
                for (w, &acked) in acked.iter().enumerate() {
                    checked += check_writer(&storage, round, w, acked).await;
                }
            }
            // Nothing outside the writers' key spaces appeared.
            let all = storage.keys_with_prefix("").await.unwrap();
            assert_eq!(all.len(), checked, "keys no writer wrote are in the store");
        });
    }
}
