//! The Raft log in a redb file: entries by index, the vote, the purge point
//! and the committed id. One writer thread commits whatever was queued in one
//! durable transaction (group commit); appends return before their fsync
//! and report it to openraft when it is done.

// openraft's storage traits fix the error type (openraft::StorageError, ~224 bytes).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use ::redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::types::{typ, TypeConfig};

/// Log entries (JSON) by index.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// `vote`, `last_purged`, `committed` (JSON).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The log store; clones share the database (the clone is the log reader).
///
/// Appends do not wait for their fsync. An append puts its entries in
/// `pending`, where readers find them at once (openraft reads them to
/// replicate), and queues them for the writer thread, which commits
/// everything queued in one durable transaction and then reports the flush
/// to openraft. So the leader replicates an entry while its own fsync runs,
/// instead of after it, and appends that arrive during an fsync share the
/// next one.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Entries appended but not yet known durable, by index.
    pending: Arc<Mutex<BTreeMap<u64, typ::Entry>>>,
    writer: mpsc::Sender<Job>,
    appends: Arc<AtomicU64>,
    entries: Arc<AtomicU64>,
}

/// Work for the writer thread, done in queue order.
enum Job {
    /// Store entries; tell openraft once they are durable.
    Append {
        entries: Vec<(typ::LogId, Vec<u8>)>,
        flushed: LogFlushed<TypeConfig>,
    },
    /// Any other change of the log file, answered once durable.
    Change {
        change: Box<dyn FnOnce(&WriteTransaction) -> Result<(), typ::StorageError> + Send>,
        done: Option<oneshot::Sender<Result<(), typ::StorageError>>>,
    },
}

fn io_err(e: impl ToString) -> AnyError {
    AnyError::error(e.to_string())
}

fn read_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::read_logs(io_err(e)).into()
}

fn write_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::write_logs(io_err(e)).into()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, typ::StorageError> {
    serde_json::from_slice(bytes).map_err(read_err)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, typ::StorageError> {
    serde_json::to_vec(value).map_err(write_err)
}

/// Lock `pending`; a panicking holder leaves a map that is still whole.
fn lock(pending: &Mutex<BTreeMap<u64, typ::Entry>>) -> MutexGuard<'_, BTreeMap<u64, typ::Entry>> {
    match pending.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl LogStore {
    /// Open (or create) the log file at `path` and start its writer thread.
    pub fn open(path: &Path) -> Result<Self, typ::StorageError> {
        let db = Database::create(path).map_err(write_err)?;
        let txn = db.begin_write().map_err(write_err)?;
        txn.open_table(LOGS).map_err(write_err)?;
        txn.open_table(META).map_err(write_err)?;
        txn.commit().map_err(write_err)?;
        let db = Arc::new(db);
        let pending = Arc::new(Mutex::new(BTreeMap::new()));
        let appends = Arc::new(AtomicU64::new(0));
        let (writer, jobs) = mpsc::channel();
        {
            let (db, pending, appends) = (db.clone(), pending.clone(), appends.clone());
            std::thread::Builder::new()
                .name("raft-log-writer".to_owned())
                .spawn(move || write_loop(&db, &pending, &appends, &jobs))
                .map_err(write_err)?;
        }
        Ok(LogStore {
            db,
            pending,
            writer,
            appends,
            entries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// (fsynced append transactions, entries appended) since open: the ratio
    /// shows how many proposals shared one fsync.
    pub fn append_stats(&self) -> (u64, u64) {
        (
            self.appends.load(Ordering::Relaxed),
            self.entries.load(Ordering::Relaxed),
        )
    }

    /// Run blocking redb reads off the async workers.
    async fn blocking<T, F>(&self, f: F) -> Result<T, typ::StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, typ::StorageError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(write_err)?
    }

    /// Queue a change of the log file behind every earlier append; with
    /// `wait`, return once it is durable.
    async fn change<F>(&self, wait: bool, change: F) -> Result<(), typ::StorageError>
    where
        F: FnOnce(&WriteTransaction) -> Result<(), typ::StorageError> + Send + 'static,
    {
        let (done, answer) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let job = Job::Change {
            change: Box::new(change),
            done,
        };
        self.writer
            .send(job)
            .map_err(|_| write_err("the raft log writer stopped"))?;
        match answer {
            Some(rx) => rx
                .await
                .map_err(|_| write_err("the raft log writer stopped"))?,
            None => Ok(()),
        }
    }

    async fn get_meta<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, typ::StorageError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(META).map_err(read_err)?;
            match table.get(name).map_err(read_err)? {
                Some(v) => decode(v.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// Store a meta value behind earlier appends; with `wait`, once durable.
    async fn put_meta<T: Serialize>(
        &self,
        name: &'static str,
        value: &T,
        wait: bool,
    ) -> Result<(), typ::StorageError> {
        let bytes = encode(value)?;
        self.change(wait, move |txn| {
            txn.open_table(META)
                .map_err(write_err)?
                .insert(name, bytes.as_slice())
                .map_err(write_err)?;
            Ok(())
        })
        .await
    }
}

/// The writer thread: take every queued job, do them in order in one
/// durable transaction, then answer each. Ends when the last store is dropped.
fn write_loop(
    db: &Database,
    pending: &Mutex<BTreeMap<u64, typ::Entry>>,
    appends: &AtomicU64,
    jobs: &mpsc::Receiver<Job>,
) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        group.extend(jobs.try_iter());
        let result = commit_group(db, &mut group);
        if group.iter().any(|job| matches!(job, Job::Append { .. })) {
            appends.fetch_add(1, Ordering::Relaxed);
        }
        let mut durable = Vec::new();
        for job in group {
            match job {
                Job::Append { entries, flushed } => match &result {
                    Ok(()) => {
                        durable.extend(entries.into_iter().map(|(id, _)| id));
                        flushed.log_io_completed(Ok(()));
                    }
                    Err(e) => flushed.log_io_completed(Err(std::io::Error::other(e.to_string()))),
                },
                Job::Change { done, .. } => {
                    if let Some(done) = done {
                        // A caller that went away needs no answer.
                        let _ = done.send(result.clone());
                    }
                }
            }
        }
        // Durable entries are readable from the file now. An index truncated
        // and appended again meanwhile holds another entry: keep that one.
        let mut pending = lock(pending);
        for id in durable {
            if pending.get(&id.index).is_some_and(|e| e.log_id == id) {
                pending.remove(&id.index);
            }
        }
    }
}

/// One durable transaction doing `group`'s work in order. Changes are taken
/// out of their jobs (they run once); appends keep their entries' ids.
fn commit_group(db: &Database, group: &mut [Job]) -> Result<(), typ::StorageError> {
    let mut txn = db.begin_write().map_err(write_err)?;
    txn.set_durability(Durability::Immediate);
    for job in group.iter_mut() {
        match job {
            Job::Append { entries, .. } => {
                let mut table = txn.open_table(LOGS).map_err(write_err)?;
                for (id, bytes) in entries.iter_mut() {
                    table
                        .insert(id.index, bytes.as_slice())
                        .map_err(write_err)?;
                    // The bytes are in the transaction; free them early.
                    *bytes = Vec::new();
                }
            }
            Job::Change { change, .. } => {
                let change = std::mem::replace(change, Box::new(|_| Ok(())));
                change(&txn)?;
            }
        }
    }
    txn.commit().map_err(write_err)
}

/// The index range `[start, end)` of a `RangeBounds<u64>`.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => Some(i.saturating_add(1)),
        Bound::Excluded(i) => Some(*i),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<typ::Entry>, typ::StorageError> {
        let (start, end) = bounds(&range);
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        // Pending first: an entry leaves `pending` only once it is in the file,
        // so reading the file second cannot miss it.
        let fresh: Vec<typ::Entry> = lock(&self.pending)
            .range(start..end.unwrap_or(u64::MAX))
            .map(|(_, e)| e.clone())
            .collect();
        let mut out = self
            .blocking(move |db| {
                let txn = db.begin_read().map_err(read_err)?;
                let table = txn.open_table(LOGS).map_err(read_err)?;
                let iter = match end {
                    Some(end) => table.range(start..end),
                    None => table.range(start..),
                }
                .map_err(read_err)?;
                let mut out = BTreeMap::new();
                for item in iter {
                    let (k, v) = item.map_err(read_err)?;
                    out.insert(k.value(), decode::<typ::Entry>(v.value())?);
                }
                Ok(out)
            })
            .await?;
        for entry in fresh {
            out.insert(entry.log_id.index, entry);
        }
        Ok(out.into_values().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, typ::StorageError> {
        let newest_pending = lock(&self.pending).last_key_value().map(|(_, e)| e.log_id);
        let last_purged: Option<typ::LogId> = self.get_meta("last_purged").await?;
        let last_stored: Option<typ::Entry> = self
            .blocking(|db| {
                let txn = db.begin_read().map_err(read_err)?;
                let table = txn.open_table(LOGS).map_err(read_err)?;
                let last = table.last().map_err(read_err)?;
                match last {
                    Some((_, v)) => decode(v.value()).map(Some),
                    None => Ok(None),
                }
            })
            .await?;
        let last_log_id = [newest_pending, last_stored.map(|e| e.log_id), last_purged]
            .into_iter()
            .flatten()
            .max_by_key(|id| id.index);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &typ::Vote) -> Result<(), typ::StorageError> {
        self.put_meta("vote", vote, true).await
    }

    async fn read_vote(&mut self) -> Result<Option<typ::Vote>, typ::StorageError> {
        self.get_meta("vote").await
    }

    async fn save_committed(
        &mut self,
        committed: Option<typ::LogId>,
    ) -> Result<(), typ::StorageError> {
        // Not waited for: it is durable with the next group, and a committed id
        // that is lost only delays applying until the leader resends it. It
        // lands after the entries appended before it.
        self.put_meta("committed", &committed, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<typ::LogId>, typ::StorageError> {
        Ok(self
            .get_meta::<Option<typ::LogId>>("committed")
            .await?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), typ::StorageError>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut pending = lock(&self.pending);
            for entry in entries {
                encoded.push((entry.log_id, encode(&entry)?));
                pending.insert(entry.log_id.index, entry);
            }
        }
        self.entries
            .fetch_add(encoded.len() as u64, Ordering::Relaxed);
        let job = Job::Append {
            entries: encoded,
            flushed: callback,
        };
        self.writer
            .send(job)
            .map_err(|_| write_err("the raft log writer stopped"))
    }

    async fn truncate(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let from = log_id.index;
        lock(&self.pending).retain(|index, _| *index < from);
        self.change(true, move |txn| {
            txn.open_table(LOGS)
                .map_err(write_err)?
                .retain_in(from.., |_, _| false)
                .map_err(write_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let bytes = encode(&log_id)?;
        let upto = log_id.index;
        lock(&self.pending).retain(|index, _| *index > upto);
        self.change(true, move |txn| {
            txn.open_table(META)
                .map_err(write_err)?
                .insert("last_purged", bytes.as_slice())
                .map_err(write_err)?;
            txn.open_table(LOGS)
                .map_err(write_err)?
                .retain_in(..=upto, |_, _| false)
                .map_err(write_err)
        })
        .await
    }
}
