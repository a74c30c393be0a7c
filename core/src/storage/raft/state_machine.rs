//! The replicated state machine: the storage key -> ciphertext map in a redb
//! file, with the last applied log id, the membership and the current snapshot.
//!
//! Applying is not fsynced on its own: the log is the durable record, and after
//! a crash openraft re-applies from the last durably applied id. Before a
//! snapshot is built (and so before the log is purged) the state is fsynced, so
//! the state machine never falls behind the purge point.

// openraft's storage traits fix the error type (openraft::StorageError, ~224 bytes).
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use ::redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::types::{b64, typ, Request, Response, TypeConfig, WireOp};
use crate::storage::StorageError;

/// The storage map itself.
pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// `last_applied`, `membership`, `snapshot_meta`, `snapshot_data`.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

/// How many non-durable applies may pass before one is fsynced anyway, so redb
/// can reclaim pages and a restart has little to re-apply. Small, because a
/// durable commit writes out every page dirtied since the last one while it
/// holds the only write transaction: at 512, each one stalled every apply
/// for ~60 ms (write p99 71 ms, and 154 MB of RSS held in dirty pages under a
/// 10 s write load); at 64, write p99 is ~22 ms and RSS ~65 MB, at the same
/// throughput (bench/results/issue-2-core.md).
const SYNC_EVERY: u64 = 64;

/// Keys changed by one apply; the empty string means "everything" (a snapshot
/// was installed).
pub type Changes = Arc<Vec<String>>;

/// A snapshot's contents: every key and its ciphertext.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    pairs: Vec<Pair>,
}

#[derive(Serialize, Deserialize)]
struct Pair {
    key: String,
    #[serde(with = "b64")]
    value: Vec<u8>,
}

/// The state machine; clones share the database (a clone builds snapshots).
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    changes: broadcast::Sender<Changes>,
    applies: Arc<AtomicU64>,
    on_apply: Arc<OnceLock<ApplyHook>>,
}

/// Called with the keys an apply changed (`""`: everything may have), before
/// the apply counts as done.
pub type ApplyHook = Box<dyn Fn(&[String]) + Send + Sync>;

fn any(e: impl ToString) -> AnyError {
    AnyError::error(e.to_string())
}

fn read_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::read_state_machine(any(e)).into()
}

fn write_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::write_state_machine(any(e)).into()
}

fn snap_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::write_snapshot(None, any(e)).into()
}

impl StateMachine {
    /// Open (or create) the state machine file at `path`.
    pub fn open(path: &Path) -> Result<Self, typ::StorageError> {
        let db = Database::create(path).map_err(write_err)?;
        let txn = db.begin_write().map_err(write_err)?;
        txn.open_table(KV).map_err(write_err)?;
        txn.open_table(META).map_err(write_err)?;
        txn.commit().map_err(write_err)?;
        let (changes, _) = broadcast::channel(1024);
        Ok(StateMachine {
            db: Arc::new(db),
            changes,
            applies: Arc::new(AtomicU64::new(0)),
            on_apply: Arc::new(OnceLock::new()),
        })
    }

    /// Install the hook run after every apply, before openraft reports it
    /// applied: a reader that waited for an index (the read barrier) then
    /// finds caches derived from the changed keys already dropped. Set once.
    pub fn set_apply_hook(&self, hook: ApplyHook) {
        let _ = self.on_apply.set(hook);
    }

    fn changed(&self, keys: Vec<String>) {
        if let Some(hook) = self.on_apply.get() {
            hook(&keys);
        }
        // No subscriber is fine.
        let _ = self.changes.send(Arc::new(keys));
    }

    /// The database, for local reads.
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// Subscribe to the keys each apply changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Changes> {
        self.changes.subscribe()
    }

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

    fn meta<T: serde::de::DeserializeOwned>(
        db: &Database,
        name: &str,
    ) -> Result<Option<T>, typ::StorageError> {
        let txn = db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        match table.get(name).map_err(read_err)? {
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(read_err),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(
        txn: &WriteTransaction,
        name: &str,
        value: &T,
    ) -> Result<(), typ::StorageError> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        txn.open_table(META)
            .map_err(write_err)?
            .insert(name, bytes.as_slice())
            .map_err(write_err)?;
        Ok(())
    }

    /// The snapshot stored by the last build or install.
    fn stored_snapshot(db: &Database) -> Result<Option<typ::Snapshot>, typ::StorageError> {
        let Some(meta) = Self::meta::<typ::SnapshotMeta>(db, "snapshot_meta")? else {
            return Ok(None);
        };
        let txn = db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        let data = table
            .get("snapshot_data")
            .map_err(read_err)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        Ok(Some(typ::Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Apply storage ops to the kv table.
fn apply_ops(
    txn: &WriteTransaction,
    ops: &[WireOp],
    changed: &mut Vec<String>,
) -> Result<(), typ::StorageError> {
    let mut table = txn.open_table(KV).map_err(write_err)?;
    for op in ops {
        match op {
            WireOp::Put { key, value } => {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(write_err)?;
            }
            WireOp::Delete { key } => {
                table.remove(key.as_str()).map_err(write_err)?;
            }
        }
        changed.push(op.key().to_owned());
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<typ::Snapshot, typ::StorageError> {
        self.blocking(|db| {
            // An empty durable commit makes every earlier non-durable apply durable,
            // so the state machine is on disk up to the snapshot before the log is
            // purged behind it.
            let mut sync = db.begin_write().map_err(snap_err)?;
            sync.set_durability(Durability::Immediate);
            sync.commit().map_err(snap_err)?;

            let txn = db.begin_read().map_err(snap_err)?;
            let meta_table = txn.open_table(META).map_err(snap_err)?;
            let get = |name: &str| -> Result<Option<Vec<u8>>, typ::StorageError> {
                Ok(meta_table
                    .get(name)
                    .map_err(snap_err)?
                    .map(|v| v.value().to_vec()))
            };
            let last_applied: Option<typ::LogId> = match get("last_applied")? {
                Some(b) => serde_json::from_slice(&b).map_err(snap_err)?,
                None => None,
            };
            let membership: typ::StoredMembership = match get("membership")? {
                Some(b) => serde_json::from_slice(&b).map_err(snap_err)?,
                None => Default::default(),
            };
            let kv = txn.open_table(KV).map_err(snap_err)?;
            let mut pairs = Vec::new();
            for item in kv.iter().map_err(snap_err)? {
                let (k, v) = item.map_err(snap_err)?;
                pairs.push(Pair {
                    key: k.value().to_owned(),
                    value: v.value().to_vec(),
                });
            }
            drop(meta_table);
            drop(txn);
            let data = serde_json::to_vec(&SnapshotData { pairs }).map_err(snap_err)?;
            let snapshot_id = match &last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, crate::time::now()),
                None => format!("0-0-{}", crate::time::now()),
            };
            let meta = typ::SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            };
            let mut store = db.begin_write().map_err(snap_err)?;
            store.set_durability(Durability::Immediate);
            StateMachine::put_meta(&store, "snapshot_meta", &meta)?;
            store
                .open_table(META)
                .map_err(snap_err)?
                .insert("snapshot_data", data.as_slice())
                .map_err(snap_err)?;
            store.commit().map_err(snap_err)?;
            Ok(typ::Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<typ::LogId>, typ::StoredMembership), typ::StorageError> {
        self.blocking(|db| {
            let applied = StateMachine::meta::<Option<typ::LogId>>(db, "last_applied")?.flatten();
            let membership =
                StateMachine::meta::<typ::StoredMembership>(db, "membership")?.unwrap_or_default();
            Ok((applied, membership))
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, typ::StorageError>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<typ::Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.applies.fetch_add(1, Ordering::Relaxed) + 1;
        let durability = if n.is_multiple_of(SYNC_EVERY) {
            Durability::Immediate
        } else {
            Durability::None
        };
        let (responses, changed) = self
            .blocking(move |db| {
                let mut txn = db.begin_write().map_err(write_err)?;
                txn.set_durability(durability);
                let mut responses = Vec::with_capacity(entries.len());
                let mut changed = Vec::new();
                let mut last = None;
                for entry in &entries {
                    last = Some(entry.log_id);
                    let mut response = Response::default();
                    match &entry.payload {
                        EntryPayload::Blank => {}
                        EntryPayload::Normal(Request { ops, term }) => {
                            // Every node decides alike: the entry's own log id says
                            // which term appended it.
                            if term.is_some_and(|t| t != entry.log_id.leader_id.term) {
                                response.stale_term = true;
                            } else {
                                apply_ops(&txn, ops, &mut changed)?
                            }
                        }
                        EntryPayload::Membership(m) => {
                            let stored = typ::StoredMembership::new(Some(entry.log_id), m.clone());
                            StateMachine::put_meta(&txn, "membership", &stored)?;
                        }
                    }
                    responses.push(response);
                }
                StateMachine::put_meta(&txn, "last_applied", &last)?;
                txn.commit().map_err(write_err)?;
                Ok((responses, changed))
            })
            .await?;
        if !changed.is_empty() {
            self.changed(changed);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, typ::StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &typ::SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), typ::StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = serde_json::from_slice(&bytes).map_err(snap_err)?;
        let meta = meta.clone();
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(snap_err)?;
            txn.set_durability(Durability::Immediate);
            {
                let mut kv = txn.open_table(KV).map_err(snap_err)?;
                kv.retain(|_, _| false).map_err(snap_err)?;
                for pair in &data.pairs {
                    kv.insert(pair.key.as_str(), pair.value.as_slice())
                        .map_err(snap_err)?;
                }
            }
            StateMachine::put_meta(&txn, "last_applied", &meta.last_log_id)?;
            StateMachine::put_meta(&txn, "membership", &meta.last_membership)?;
            StateMachine::put_meta(&txn, "snapshot_meta", &meta)?;
            txn.open_table(META)
                .map_err(snap_err)?
                .insert("snapshot_data", bytes.as_slice())
                .map_err(snap_err)?;
            txn.commit().map_err(snap_err)
        })
        .await?;
        self.changed(vec![String::new()]);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<typ::Snapshot>, typ::StorageError> {
        self.blocking(StateMachine::stored_snapshot).await
    }
}

/// Read one key from the state machine.
pub(crate) fn read_key(db: &Database, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
    let txn = db
        .begin_read()
        .map_err(|e| StorageError::Io(format!("failed to begin a raft read: {e}")))?;
    let table = txn
        .open_table(KV)
        .map_err(|e| StorageError::Io(format!("failed to open the raft table: {e}")))?;
    let value = table
        .get(key)
        .map_err(|e| StorageError::Io(format!("failed to read a raft key: {e}")))?;
    Ok(value.map(|v| v.value().to_vec()))
}

/// Every key with `prefix`, in order.
pub(crate) fn scan_prefix(db: &Database, prefix: &str) -> Result<Vec<String>, StorageError> {
    let err =
        |e: &dyn std::fmt::Display| StorageError::Io(format!("failed to scan raft keys: {e}"));
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let table = txn.open_table(KV).map_err(|e| err(&e))?;
    let mut keys = Vec::new();
    for item in table.range::<&str>(prefix..).map_err(|e| err(&e))? {
        let (k, _) = item.map_err(|e| err(&e))?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        keys.push(k.to_owned());
    }
    Ok(keys)
}

/// Every key and its value, in order: the backup of `sys/storage/raft/snapshot`.
pub(crate) fn export_pairs(db: &Database) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
    let err =
        |e: &dyn std::fmt::Display| StorageError::Io(format!("failed to export raft keys: {e}"));
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let table = txn.open_table(KV).map_err(|e| err(&e))?;
    let mut pairs = Vec::new();
    for item in table.iter().map_err(|e| err(&e))? {
        let (k, v) = item.map_err(|e| err(&e))?;
        pairs.push((k.value().to_owned(), v.value().to_vec()));
    }
    Ok(pairs)
}
