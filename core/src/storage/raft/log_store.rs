//! The Raft log in a redb file: entries by index, the vote, the purge point
//! and the committed id. Every append is one write transaction with one fsync,
//! however many entries openraft hands over at once.

// openraft's storage traits fix the error type (openraft::StorageError, ~224 bytes).
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ::redb::{Database, Durability, ReadableTable, TableDefinition};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{typ, TypeConfig};

/// Log entries (JSON) by index.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// `vote`, `last_purged`, `committed` (JSON).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The log store; clones share the database (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    appends: Arc<AtomicU64>,
    entries: Arc<AtomicU64>,
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

impl LogStore {
    /// Open (or create) the log file at `path`.
    pub fn open(path: &Path) -> Result<Self, typ::StorageError> {
        let db = Database::create(path).map_err(write_err)?;
        let txn = db.begin_write().map_err(write_err)?;
        txn.open_table(LOGS).map_err(write_err)?;
        txn.open_table(META).map_err(write_err)?;
        txn.commit().map_err(write_err)?;
        Ok(LogStore {
            db: Arc::new(db),
            appends: Arc::new(AtomicU64::new(0)),
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

    /// Run blocking redb work off the async workers.
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

    async fn put_meta<T: Serialize>(
        &self,
        name: &'static str,
        value: &T,
        durability: Durability,
    ) -> Result<(), typ::StorageError> {
        let bytes = encode(value)?;
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(write_err)?;
            txn.set_durability(durability);
            txn.open_table(META)
                .map_err(write_err)?
                .insert(name, bytes.as_slice())
                .map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
        .await
    }
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
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(LOGS).map_err(read_err)?;
            let iter = match end {
                Some(end) if end <= start => return Ok(Vec::new()),
                Some(end) => table.range(start..end),
                None => table.range(start..),
            }
            .map_err(read_err)?;
            let mut out = Vec::new();
            for item in iter {
                let (_, v) = item.map_err(read_err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, typ::StorageError> {
        let last_purged: Option<typ::LogId> = self.get_meta("last_purged").await?;
        let last: Option<typ::Entry> = self
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
        let last_log_id = last.map(|e| e.log_id).or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &typ::Vote) -> Result<(), typ::StorageError> {
        self.put_meta("vote", vote, Durability::Immediate).await
    }

    async fn read_vote(&mut self) -> Result<Option<typ::Vote>, typ::StorageError> {
        self.get_meta("vote").await
    }

    async fn save_committed(
        &mut self,
        committed: Option<typ::LogId>,
    ) -> Result<(), typ::StorageError> {
        // Not fsynced on its own: the next append's commit makes it durable, and a
        // committed id that is lost only delays applying until the leader resends it.
        self.put_meta("committed", &committed, Durability::None)
            .await
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
        for entry in entries {
            encoded.push((entry.log_id.index, encode(&entry)?));
        }
        let count = encoded.len() as u64;
        let result = self
            .blocking(move |db| {
                let mut txn = db.begin_write().map_err(write_err)?;
                txn.set_durability(Durability::Immediate);
                {
                    let mut table = txn.open_table(LOGS).map_err(write_err)?;
                    for (index, bytes) in &encoded {
                        table.insert(*index, bytes.as_slice()).map_err(write_err)?;
                    }
                }
                txn.commit().map_err(write_err)
            })
            .await;
        match &result {
            Ok(()) => {
                self.appends.fetch_add(1, Ordering::Relaxed);
                self.entries.fetch_add(count, Ordering::Relaxed);
                callback.log_io_completed(Ok(()));
            }
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let from = log_id.index;
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(write_err)?;
            txn.set_durability(Durability::Immediate);
            txn.open_table(LOGS)
                .map_err(write_err)?
                .retain_in(from.., |_, _| false)
                .map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let bytes = encode(&log_id)?;
        let upto = log_id.index;
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(write_err)?;
            txn.set_durability(Durability::Immediate);
            txn.open_table(META)
                .map_err(write_err)?
                .insert("last_purged", bytes.as_slice())
                .map_err(write_err)?;
            txn.open_table(LOGS)
                .map_err(write_err)?
                .retain_in(..=upto, |_, _| false)
                .map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
        .await
    }
}
