//! Durable single-node storage in a redb file, with group commit.
//!
//! redb runs one write transaction at a time and every commit fsyncs, so one
//! commit per `batch` call would cap throughput at the disk's fsync rate. Instead
//! a dedicated writer thread takes every batch waiting in its queue, applies them
//! in order in one write transaction, commits once and then answers each caller.
//! Reads open their own read transactions directly: redb's MVCC lets them run
//! beside the writer, and reads of small values take microseconds.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use ::redb::{Database, Durability, TableDefinition, WriteTransaction};
use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{Op, Storage, StorageError};

/// The one table: storage key -> value bytes.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// How many batches may wait for the writer before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 1024;

/// The most batches merged into one transaction, so that a steady stream of
/// writers cannot grow a single transaction (and its callers' latency) forever.
const MAX_GROUP: usize = 1024;

/// One caller's batch on its way to the writer thread.
struct Request {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<(), StorageError>>,
}

/// Storage in one redb file. Writes are durable (fsynced) when `batch` returns
/// `Ok`; concurrent batches share commits.
pub struct RedbStorage {
    db: Arc<Database>,
    /// `None` only while dropping, to close the queue before joining the writer.
    queue: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl RedbStorage {
    /// Open the redb file at `path`, creating it if missing. After a crash redb
    /// repairs the file here, back to its last committed transaction.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::create(path)
            .map_err(|e| io_error("failed to open the storage database", e))?;
        Self::from_database(db)
    }

    /// Wrap an opened database: create the table and start the writer thread.
    fn from_database(db: Database) -> Result<Self, StorageError> {
        // Creating the table up front lets every read assume it exists.
        let txn = begin_write(&db)?;
        txn.open_table(KV)
            .map_err(|e| io_error("failed to create the storage table", e))?;
        txn.commit()
            .map_err(|e| io_error("failed to commit the storage table", e))?;

        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("cairn-redb-writer".to_owned())
            .spawn({
                let db = Arc::clone(&db);
                let commits = Arc::clone(&commits);
                move || run_writer(&db, requests, &commits)
            })
            .map_err(|e| io_error("failed to start the storage writer thread", e))?;
        Ok(Self {
            db,
            queue: Some(queue),
            writer: Some(writer),
            commits,
        })
    }

    /// How many write transactions the writer has committed. Far below the number
    /// of `batch` calls under concurrency, because batches share commits.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// A read transaction with the table opened.
    fn read_table(
        &self,
    ) -> Result<::redb::ReadOnlyTable<&'static str, &'static [u8]>, StorageError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| io_error("failed to begin a storage read transaction", e))?;
        txn.open_table(KV)
            .map_err(|e| io_error("failed to open the storage table for reading", e))
    }
}

impl Drop for RedbStorage {
    /// Close the queue and wait for the writer: it first commits every batch still
    /// queued, then releases the database so the file can be opened again.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            // A panicked writer has nothing left to drain; there is no one to tell.
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Storage for RedbStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let table = self.read_table()?;
        let value = table
            .get(key)
            .map_err(|e| io_error("failed to read a storage key", e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| StorageError::Unavailable("storage is closing".to_owned()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { ops, reply })
            .await
            .map_err(|_| StorageError::Unavailable("the storage writer has stopped".to_owned()))?;
        // If this future is dropped after the send, the batch is still committed:
        // a queued batch cannot be taken back.
        answer.await.map_err(|_| {
            StorageError::Unavailable("the storage writer stopped before answering".to_owned())
        })?
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let table = self.read_table()?;
        // Keys are ordered bytewise, so every key with the prefix sits in one run
        // starting at the prefix itself.
        let range = table
            .range::<&str>(prefix..)
            .map_err(|e| io_error("failed to scan storage keys", e))?;
        let mut keys = Vec::new();
        for entry in range {
            let (key, _) = entry.map_err(|e| io_error("failed to scan storage keys", e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }
}

/// The writer thread: wait for a batch, take every other batch already queued,
/// commit them together, answer everyone. Returns once the queue is closed and
/// empty.
fn run_writer(db: &Database, mut requests: mpsc::Receiver<Request>, commits: &AtomicU64) {
    while let Some(first) = requests.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let outcome = commit_group(db, &group);
        if outcome.is_ok() {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        for request in group {
            let answer = match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(copy_error(e)),
            };
            // The caller may have gone away; its batch is committed regardless.
            let _ = request.reply.send(answer);
        }
    }
}

/// Apply every batch of `group` in order in one transaction and commit it with
/// immediate durability. On error the transaction is aborted, so none of the
/// group's writes become visible.
fn commit_group(db: &Database, group: &[Request]) -> Result<(), StorageError> {
    let mut txn = begin_write(db)?;
    txn.set_durability(Durability::Immediate);
    if let Err(e) = apply_group(&txn, group) {
        // The apply error is the one worth reporting; an abort failure adds nothing.
        let _ = txn.abort();
        return Err(e);
    }
    txn.commit()
        .map_err(|e| io_error("failed to commit storage writes", e))
}

/// Apply the ops of every batch of `group`, in queue order.
fn apply_group(txn: &WriteTransaction, group: &[Request]) -> Result<(), StorageError> {
    let mut table = txn
        .open_table(KV)
        .map_err(|e| io_error("failed to open the storage table for writing", e))?;
    for op in group.iter().flat_map(|request| &request.ops) {
        match op {
            Op::Put { key, value } => {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|e| io_error("failed to write a storage key", e))?;
            }
            Op::Delete { key } => {
                table
                    .remove(key.as_str())
                    .map_err(|e| io_error("failed to delete a storage key", e))?;
            }
        }
    }
    Ok(())
}

fn begin_write(db: &Database) -> Result<WriteTransaction, StorageError> {
    db.begin_write()
        .map_err(|e| io_error("failed to begin a storage write transaction", e))
}

/// A storage error saying what failed. redb's errors name tables, sizes and I/O
/// causes, never keys or values, so their text is safe to include.
fn io_error(what: &str, err: impl std::fmt::Display) -> StorageError {
    StorageError::Io(format!("{what}: {err}"))
}

/// `StorageError` is not `Clone`; every caller of a failed group gets its own copy.
fn copy_error(err: &StorageError) -> StorageError {
    match err {
        StorageError::Io(msg) => StorageError::Io(msg.clone()),
        StorageError::Unavailable(msg) => StorageError::Unavailable(msg.clone()),
    }
}

/// Checks every backend must pass: the `Storage` contract as `MemoryStorage`
/// defines it. Keys are prefixed with `conformance/` so callers may share a store.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed check should panic with the error
pub(crate) async fn conformance(s: &dyn Storage) {
    let p = "conformance/";
    let k = |name: &str| format!("{p}{name}");

    assert_eq!(s.get(&k("missing")).await.unwrap(), None);
    assert!(s.keys_with_prefix(p).await.unwrap().is_empty());
    assert!(s.list(p).await.unwrap().is_empty());

    // Put, read back, overwrite.
    s.put(&k("a"), b"one".to_vec()).await.unwrap();
    assert_eq!(s.get(&k("a")).await.unwrap(), Some(b"one".to_vec()));
    s.put(&k("a"), b"two".to_vec()).await.unwrap();
    assert_eq!(s.get(&k("a")).await.unwrap(), Some(b"two".to_vec()));

    // An empty value is a value, not an absence.
    s.put(&k("empty"), Vec::new()).await.unwrap();
    assert_eq!(s.get(&k("empty")).await.unwrap(), Some(Vec::new()));

    // Delete, and deleting a missing key is fine.
    s.delete(&k("a")).await.unwrap();
    assert_eq!(s.get(&k("a")).await.unwrap(), None);
    s.delete(&k("a")).await.unwrap();
    s.delete(&k("never")).await.unwrap();

    // Ops within a batch apply in order.
    s.batch(vec![
        Op::Put {
            key: k("x"),
            value: b"1".to_vec(),
        },
        Op::Delete { key: k("x") },
        Op::Delete { key: k("y") },
        Op::Put {
            key: k("y"),
            value: b"2".to_vec(),
        },
        Op::Put {
            key: k("z"),
            value: b"3".to_vec(),
        },
        Op::Put {
            key: k("z"),
            value: b"4".to_vec(),
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&k("x")).await.unwrap(), None);
    assert_eq!(s.get(&k("y")).await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get(&k("z")).await.unwrap(), Some(b"4".to_vec()));
    s.batch(Vec::new()).await.unwrap();

    // Prefix scans: sorted, full keys, and nothing just past the prefix (`dir0`
    // and `dir` sort next to `dir/` but are not under it).
    for name in [
        "dir/b",
        "dir/a",
        "dir/sub/c",
        "dir/sub/d/e",
        "dir0",
        "dir",
        "dis/x",
    ] {
        s.put(&k(name), name.as_bytes().to_vec()).await.unwrap();
    }
    assert_eq!(
        s.keys_with_prefix(&k("dir/")).await.unwrap(),
        ["dir/a", "dir/b", "dir/sub/c", "dir/sub/d/e"].map(k)
    );
    assert_eq!(
        s.keys_with_prefix(&k("dir")).await.unwrap(),
        ["dir", "dir/a", "dir/b", "dir/sub/c", "dir/sub/d/e", "dir0"].map(k)
    );
    assert!(s.keys_with_prefix(&k("dir/zz")).await.unwrap().is_empty());
    assert_eq!(s.list(&k("dir/")).await.unwrap(), ["a", "b", "sub/"]);
    assert_eq!(s.list(&k("dir/sub/")).await.unwrap(), ["c", "d/"]);
    assert_eq!(s.list(&k("dir/sub/d/")).await.unwrap(), ["e"]);
    assert!(s.list(&k("nothing/")).await.unwrap().is_empty());

    // Order is bytewise on UTF-8, as `String`'s is.
    for name in ["u/\u{e9}", "u/z", "u/Z", "u/\u{1f511}"] {
        s.put(&k(name), Vec::new()).await.unwrap();
    }
    assert_eq!(
        s.keys_with_prefix(&k("u/")).await.unwrap(),
        ["u/Z", "u/z", "u/\u{e9}", "u/\u{1f511}"].map(k)
    );

    // A full-store scan sees everything written above.
    let all = s.keys_with_prefix("").await.unwrap();
    assert!(all.contains(&k("dir/sub/d/e")) && all.contains(&k("empty")));
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Waker};

    use ::redb::backends::InMemoryBackend;
    use ::redb::{Builder, StorageBackend};
    use tokio::task::JoinSet;

    use super::*;
    use crate::storage::memory::MemoryStorage;

    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.redb");
        (dir, path)
    }

    #[tokio::test]
    async fn memory_storage_passes_conformance() {
        conformance(&MemoryStorage::new()).await;
    }

    #[tokio::test]
    async fn redb_storage_passes_conformance() {
        let (_dir, path) = temp_db();
        let s = RedbStorage::open(&path).unwrap();
        conformance(&s).await;
    }

    #[tokio::test]
    async fn data_survives_drop_and_reopen() {
        let (_dir, path) = temp_db();
        {
            let s = RedbStorage::open(&path).unwrap();
            s.put("a/b", b"kept".to_vec()).await.unwrap();
            s.put("a/gone", b"x".to_vec()).await.unwrap();
            s.delete("a/gone").await.unwrap();
        }
        // Reopening right away also proves the writer thread released the file:
        // redb refuses a second open while the first `Database` lives.
        let s = RedbStorage::open(&path).unwrap();
        assert_eq!(s.get("a/b").await.unwrap(), Some(b"kept".to_vec()));
        assert_eq!(s.get("a/gone").await.unwrap(), None);
        assert_eq!(s.keys_with_prefix("a/").await.unwrap(), ["a/b"]);
        // And it keeps working after the reopen.
        s.put("a/c", b"new".to_vec()).await.unwrap();
        assert_eq!(s.list("a/").await.unwrap(), ["b", "c"]);
    }

    #[tokio::test]
    async fn a_file_cannot_be_opened_twice() {
        let (_dir, path) = temp_db();
        let _first = RedbStorage::open(&path).unwrap();
        let Err(StorageError::Io(msg)) = RedbStorage::open(&path) else {
            panic!("a second open of the same file must fail");
        };
        assert!(
            msg.starts_with("failed to open the storage database"),
            "{msg}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_share_commits() {
        const WRITES: usize = 1000;
        let (_dir, path) = temp_db();
        let s = Arc::new(RedbStorage::open(&path).unwrap());
        let mut tasks = JoinSet::new();
        for i in 0..WRITES {
            let s = Arc::clone(&s);
            tasks.spawn(async move {
                s.put(&format!("c/{i:04}"), format!("value {i}").into_bytes())
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        let commits = s.commits();
        assert!(commits >= 1, "writes were acknowledged without a commit");
        assert!(
            commits <= (WRITES / 10) as u64,
            "{WRITES} concurrent writes took {commits} commits"
        );
        assert_eq!(s.keys_with_prefix("c/").await.unwrap().len(), WRITES);
        for i in 0..WRITES {
            let got = s.get(&format!("c/{i:04}")).await.unwrap();
            assert_eq!(got, Some(format!("value {i}").into_bytes()));
        }
    }

    #[tokio::test]
    async fn sequential_batches_commit_one_by_one() {
        let (_dir, path) = temp_db();
        let s = RedbStorage::open(&path).unwrap();
        assert_eq!(s.commits(), 0);
        s.put("a", b"1".to_vec()).await.unwrap();
        s.put("b", b"2".to_vec()).await.unwrap();
        // An empty batch has nothing to make durable.
        s.batch(Vec::new()).await.unwrap();
        assert_eq!(s.commits(), 2);
    }

    #[tokio::test]
    async fn queued_batch_of_a_dropped_caller_is_committed_before_close() {
        let (_dir, path) = temp_db();
        let s = RedbStorage::open(&path).unwrap();
        {
            // One poll enqueues the batch; then the caller gives up waiting.
            let mut put = s.put("orphan", b"still written".to_vec());
            let mut cx = Context::from_waker(Waker::noop());
            let _ = put.as_mut().poll(&mut cx);
        }
        drop(s);
        let s = RedbStorage::open(&path).unwrap();
        assert_eq!(
            s.get("orphan").await.unwrap(),
            Some(b"still written".to_vec())
        );
    }

    /// An in-memory disk that can be told to fail every write and sync, to see
    /// what callers get when a commit fails.
    #[derive(Debug)]
    struct FlakyDisk {
        data: Arc<InMemoryBackend>,
        broken: Arc<AtomicBool>,
    }

    impl FlakyDisk {
        fn check(&self) -> Result<(), std::io::Error> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("disk on fire"));
            }
            Ok(())
        }
    }

    impl StorageBackend for FlakyDisk {
        fn len(&self) -> Result<u64, std::io::Error> {
            self.data.len()
        }
        fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
            self.data.read(offset, len)
        }
        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.check()?;
            self.data.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> Result<(), std::io::Error> {
            self.check()?;
            self.data.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            self.check()?;
            self.data.write(offset, data)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_caller_and_leaves_nothing_behind() {
        let data = Arc::new(InMemoryBackend::new());
        let broken = Arc::new(AtomicBool::new(false));
        let disk = || FlakyDisk {
            data: Arc::clone(&data),
            broken: Arc::clone(&broken),
        };
        let s = Arc::new(
            RedbStorage::from_database(Builder::new().create_with_backend(disk()).unwrap())
                .unwrap(),
        );
        s.put("kept", b"before".to_vec()).await.unwrap();

        broken.store(true, Ordering::SeqCst);
        let mut tasks = JoinSet::new();
        for i in 0..50 {
            let s = Arc::clone(&s);
            tasks.spawn(async move {
                s.batch(vec![
                    Op::Put {
                        key: format!("lost/{i:02}"),
                        value: b"secret-value".to_vec(),
                    },
                    Op::Delete {
                        key: "kept".to_owned(),
                    },
                ])
                .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                Err(StorageError::Io(msg)) => {
                    assert!(msg.starts_with("failed to "), "{msg}");
                    assert!(!msg.contains("secret-value"), "{msg}");
                }
                other => panic!("a write to a failing disk returned {other:?}"),
            }
        }
        // Nothing of the failed groups is visible in this process...
        assert!(!matches!(s.get("lost/00").await, Ok(Some(_))));
        assert!(!matches!(s.get("kept").await, Ok(None)));
        drop(s);

        // ...nor after a restart on the repaired disk.
        broken.store(false, Ordering::SeqCst);
        let s = RedbStorage::from_database(Builder::new().create_with_backend(disk()).unwrap())
            .unwrap();
        assert_eq!(s.get("kept").await.unwrap(), Some(b"before".to_vec()));
        assert!(s.keys_with_prefix("lost/").await.unwrap().is_empty());
        s.put("after", b"ok".to_vec()).await.unwrap();
        assert_eq!(s.get("after").await.unwrap(), Some(b"ok".to_vec()));
    }
}
