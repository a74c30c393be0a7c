//! The replicated state machine: the storage key -> ciphertext map, in
//! memory, with the last applied log id and the membership; made durable by
//! the log and by snapshot files.
//!
//! The log is the durable record of every write, so applying an entry only
//! changes memory. When openraft builds a snapshot (every
//! `snapshot_threshold` entries) the map is written to a file and fsynced,
//! and only then may the log be purged behind it. At start the map is read
//! back from that file and openraft re-applies the committed entries after
//! it. This is how etcd's raft example and Consul's in-memory FSM work.
//!
//! It replaced a redb state machine: each apply there was a copy-on-write
//! B-tree transaction (~24 page writes, 0.75 ms a batch of writes on this
//! machine) plus a periodic fsynced commit that stalled every write behind
//! it; here an apply is a few map inserts. The cost is memory: every stored
//! ciphertext is held in RAM, as the dataset of a secrets store (not of a
//! general database) can afford.
//!
//! The snapshot file: `meta_len: u32 LE | crc32: u32 LE | meta JSON | data`,
//! where `data` is the snapshot as sent to followers ([`SnapshotData`] as
//! JSON) and the CRC covers meta and data. It is written to a temporary file,
//! fsynced and renamed over the old one, so a crash leaves one whole snapshot.

// openraft's storage traits fix the error type (openraft::StorageError, ~224 bytes).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Cursor, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::types::{b64, typ, Request, Response, TypeConfig, WireOp};

/// The snapshot file's name in the state machine's directory.
const SNAPSHOT_FILE: &str = "snapshot";
/// Where the next snapshot is written before it is renamed into place.
const SNAPSHOT_TMP: &str = "snapshot.tmp";
/// Bytes before the meta JSON: its length and the CRC.
const HEADER: usize = 8;

/// What one apply changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// The keys written or deleted; the empty string means "everything" (a
    /// snapshot was installed).
    pub keys: Vec<String>,
    /// The term of the entry that changed each key (`terms[i]` for
    /// `keys[i]`; 0 for a snapshot). A leader changed its own memory before
    /// proposing the entries of its term, but not those of earlier terms: a
    /// node restarted before its committed index was saved applies such
    /// entries only once it commits again, possibly as the new leader.
    pub terms: Vec<u64>,
}

/// The storage map. Keys and values are shared, so the snapshot builder's
/// copy under the lock costs reference counts, not the data (encoding it
/// then copies each value once more, outside the lock).
type Map = BTreeMap<Arc<str>, Arc<[u8]>>;

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

/// What the state machine holds, under one lock so that readers and the
/// snapshot builder see the map and its applied id together.
#[derive(Default)]
struct State {
    map: Map,
    last_applied: Option<typ::LogId>,
    membership: typ::StoredMembership,
}

/// The state machine; clones share it (a clone builds snapshots).
#[derive(Clone)]
pub struct StateMachine {
    state: Arc<RwLock<State>>,
    /// The directory of the snapshot file.
    dir: Arc<PathBuf>,
    /// Held while a snapshot file is written; holds the last log index of the
    /// snapshot on disk. A build (its own task in openraft) can overlap an
    /// install from the leader: they must not share the temporary file, and
    /// an older snapshot must never replace a newer one.
    stored: Arc<std::sync::Mutex<Option<u64>>>,
    /// The same index, for the log, which purges only behind it.
    on_disk: Arc<watch::Sender<Option<u64>>>,
    /// Counts the applies that changed keys; subscribers wake on each.
    changes: Arc<watch::Sender<u64>>,
    on_apply: Arc<OnceLock<ApplyHook>>,
}

/// Called with what an apply changed, before the apply counts as done.
pub type ApplyHook = Box<dyn Fn(&Applied) + Send + Sync>;

fn any(e: impl ToString) -> AnyError {
    AnyError::error(e.to_string())
}

fn read_snap_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::read_snapshot(None, any(e)).into()
}

fn write_snap_err(e: impl ToString) -> typ::StorageError {
    StorageIOError::write_snapshot(None, any(e)).into()
}

impl StateMachine {
    /// Open the state machine kept in directory `dir`: the map of its last
    /// snapshot, if it has one (openraft then re-applies the log after it).
    pub fn open(dir: &Path) -> Result<Self, typ::StorageError> {
        fs::create_dir_all(dir).map_err(read_snap_err)?;
        // A snapshot being written when the process died: never renamed, so
        // never the snapshot.
        match fs::remove_file(dir.join(SNAPSHOT_TMP)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_snap_err(e)),
        }
        let stored_snapshot = read_snapshot_file(dir)?;
        let stored = stored_snapshot
            .as_ref()
            .and_then(|(meta, _)| meta.last_log_id.map(|id| id.index));
        let state = match stored_snapshot {
            Some((meta, data)) => State {
                map: decode_map(&data)?,
                last_applied: meta.last_log_id,
                membership: meta.last_membership,
            },
            None => State::default(),
        };
        Ok(StateMachine {
            state: Arc::new(RwLock::new(state)),
            dir: Arc::new(dir.to_owned()),
            stored: Arc::new(std::sync::Mutex::new(stored)),
            on_disk: Arc::new(watch::Sender::new(stored)),
            changes: Arc::new(watch::Sender::new(0)),
            on_apply: Arc::new(OnceLock::new()),
        })
    }

    /// Install the hook run after every apply, before openraft reports it
    /// applied: a reader that waited for an index (the read barrier) then
    /// finds caches derived from the changed keys already dropped. Set once.
    pub fn set_apply_hook(&self, hook: ApplyHook) {
        let _ = self.on_apply.set(hook);
    }

    fn changed(&self, applied: Applied) {
        if let Some(hook) = self.on_apply.get() {
            hook(&applied);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// Wake after each apply that changed keys (what changed goes to the
    /// apply hook, which cannot miss one).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Every writer leaves the state whole before it could panic (the map
        // is changed by single inserts), so a poisoned lock is still usable.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// One key's value.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.read().map.get(key).map(|v| v.to_vec())
    }

    /// Every key with `prefix`, in order.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.read()
            .map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .map(|k| k.to_string())
            .collect()
    }

    /// Every key and its value, in order: the backup of `sys/storage/raft/snapshot`.
    pub fn export(&self) -> Vec<(String, Vec<u8>)> {
        self.read()
            .map
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    /// Write a snapshot file durably and make it the current one, unless the
    /// one on disk is already as new.
    fn store_snapshot(&self, meta: &typ::SnapshotMeta, data: &[u8]) -> std::io::Result<()> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let index = meta.last_log_id.map(|id| id.index);
        if stored.is_some() && index <= *stored {
            return Ok(());
        }
        let meta_json = serde_json::to_vec(meta)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&meta_json);
        crc.update(data);
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut file = File::create(&tmp)?;
        let meta_len = u32::try_from(meta_json.len()).map_err(std::io::Error::other)?;
        file.write_all(&meta_len.to_le_bytes())?;
        file.write_all(&crc.finalize().to_le_bytes())?;
        file.write_all(&meta_json)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))?;
        // The rename is durable once the directory is.
        File::open(&*self.dir)?.sync_all()?;
        *stored = index;
        self.on_disk.send_replace(index);
        Ok(())
    }

    /// The last log index of the snapshot on disk, as it changes (see
    /// [`LogStore::purge_behind`](super::LogStore::purge_behind)).
    pub fn snapshot_on_disk(&self) -> watch::Receiver<Option<u64>> {
        self.on_disk.subscribe()
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, typ::StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&StateMachine) -> Result<T, typ::StorageError> + Send + 'static,
    {
        let sm = self.clone();
        tokio::task::spawn_blocking(move || f(&sm))
            .await
            .map_err(write_snap_err)?
    }
}

/// The current snapshot file's meta and data, if there is one; a file that
/// fails its CRC is an error, never an empty state.
fn read_snapshot_file(
    dir: &Path,
) -> Result<Option<(typ::SnapshotMeta, Vec<u8>)>, typ::StorageError> {
    let mut bytes = match fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_snap_err(e)),
    };
    let corrupt = || read_snap_err(format!("{} is corrupt", dir.join(SNAPSHOT_FILE).display()));
    if bytes.len() < HEADER {
        return Err(corrupt());
    }
    let meta_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if bytes.len() - HEADER < meta_len || crc32fast::hash(&bytes[HEADER..]) != crc {
        return Err(corrupt());
    }
    let meta: typ::SnapshotMeta =
        serde_json::from_slice(&bytes[HEADER..HEADER + meta_len]).map_err(|_| corrupt())?;
    let data = bytes.split_off(HEADER + meta_len);
    Ok(Some((meta, data)))
}

fn decode_map(data: &[u8]) -> Result<Map, typ::StorageError> {
    let snapshot: SnapshotData = serde_json::from_slice(data).map_err(read_snap_err)?;
    Ok(snapshot
        .pairs
        .into_iter()
        .map(|p| (Arc::from(p.key), Arc::from(p.value)))
        .collect())
}

fn encode_map(map: &Map) -> Result<Vec<u8>, typ::StorageError> {
    let pairs = map
        .iter()
        .map(|(k, v)| Pair {
            key: k.to_string(),
            value: v.to_vec(),
        })
        .collect();
    serde_json::to_vec(&SnapshotData { pairs }).map_err(write_snap_err)
}

/// Apply one entry's storage ops to the map.
fn apply_ops(map: &mut Map, ops: Vec<WireOp>, changed: &mut Vec<String>) {
    for op in ops {
        match op {
            WireOp::Put { key, value } => {
                let key: Arc<str> = Arc::from(key);
                changed.push(key.to_string());
                map.insert(key, Arc::from(value));
            }
            WireOp::Delete { key } => {
                map.remove(key.as_str());
                changed.push(key);
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<typ::Snapshot, typ::StorageError> {
        self.blocking(|sm| {
            // Copy the map under the lock (references only) and encode it
            // outside, so applies wait for the copy, not for the encoding.
            let (map, last_applied, membership) = {
                let state = sm.read();
                (
                    state.map.clone(),
                    state.last_applied,
                    state.membership.clone(),
                )
            };
            let data = encode_map(&map)?;
            drop(map);
            let snapshot_id = match &last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, crate::time::now()),
                None => format!("0-0-{}", crate::time::now()),
            };
            let meta = typ::SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            };
            // Durable before openraft may purge the log behind it.
            sm.store_snapshot(&meta, &data).map_err(write_snap_err)?;
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
        let state = self.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, typ::StorageError>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut changed = Applied::default();
        {
            let mut state = self.write();
            for entry in entries {
                let mut response = Response::default();
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(Request { ops, term }) => {
                        // Every node decides alike: the entry's own log id says
                        // which term appended it.
                        if term.is_some_and(|t| t != entry.log_id.leader_id.term) {
                            response.stale_term = true;
                        } else {
                            let term = entry.log_id.leader_id.term;
                            apply_ops(&mut state.map, ops, &mut changed.keys);
                            changed.terms.resize(changed.keys.len(), term);
                        }
                    }
                    EntryPayload::Membership(m) => {
                        state.membership = typ::StoredMembership::new(Some(entry.log_id), m);
                    }
                }
                state.last_applied = Some(entry.log_id);
                responses.push(response);
            }
        }
        if !changed.keys.is_empty() {
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
        let data = snapshot.into_inner();
        let meta = meta.clone();
        self.blocking(move |sm| {
            let map = decode_map(&data)?;
            sm.store_snapshot(&meta, &data).map_err(write_snap_err)?;
            let mut state = sm.write();
            state.map = map;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership;
            Ok(())
        })
        .await?;
        self.changed(Applied {
            keys: vec![String::new()],
            terms: vec![0],
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<typ::Snapshot>, typ::StorageError> {
        let stored = self.blocking(|sm| read_snapshot_file(&sm.dir)).await?;
        Ok(stored.map(|(meta, data)| typ::Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> WireOp {
        WireOp::Put {
            key: key.into(),
            value: value.to_vec(),
        }
    }

    fn entry(index: u64, ops: Vec<WireOp>) -> typ::Entry {
        entry_of_term(1, index, ops)
    }

    fn entry_of_term(term: u64, index: u64, ops: Vec<WireOp>) -> typ::Entry {
        typ::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Normal(Request { ops, term: None }),
        }
    }

    #[tokio::test]
    async fn the_hook_learns_each_changed_key_with_its_entry_term() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        sm.set_apply_hook(Box::new(move |a: &Applied| {
            record
                .lock()
                .unwrap()
                .push((a.keys.clone(), a.terms.clone()));
        }));
        let wakes = sm.subscribe();
        sm.apply([
            entry_of_term(2, 1, vec![]),
            entry_of_term(3, 2, vec![put("sys/policy/p", b"x")]),
            entry_of_term(5, 3, vec![put("b", b"y")]),
        ])
        .await
        .unwrap();
        let snap = snapshot(&mut sm).await;
        sm.install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [
                (vec!["sys/policy/p".to_string(), "b".into()], vec![3, 5]),
                (vec![String::new()], vec![0]),
            ]
        );
        // Subscribers are woken once per apply that changed keys.
        assert_eq!(*wakes.borrow(), 2);
    }

    async fn snapshot(sm: &mut StateMachine) -> typ::Snapshot {
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_snapshot_is_what_a_reopened_state_machine_starts_from() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply([entry(1, vec![put("a/1", b"x"), put("a/2", b"y")])])
            .await
            .unwrap();
        snapshot(&mut sm).await;
        // Applied after the snapshot: only the log (re-applied by openraft) has it.
        sm.apply([entry(2, vec![put("b", b"z")])]).await.unwrap();
        drop(sm);

        let mut reopened = StateMachine::open(dir.path()).unwrap();
        assert_eq!(reopened.get("a/2").as_deref(), Some(&b"y"[..]));
        assert_eq!(reopened.get("b"), None);
        assert_eq!(reopened.keys_with_prefix("a/"), ["a/1", "a/2"]);
        let (applied, _) = reopened.applied_state().await.unwrap();
        assert_eq!(applied.map(|id| id.index), Some(1));
    }

    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply([entry(1, vec![put("a", b"1")])]).await.unwrap();
        let older = snapshot(&mut sm).await;
        sm.apply([entry(2, vec![put("b", b"2")])]).await.unwrap();
        snapshot(&mut sm).await;
        // A build that copied the map at index 1 finishing last (it overlapped
        // an install, say) leaves the newer file alone.
        sm.store_snapshot(&older.meta, older.snapshot.get_ref())
            .unwrap();
        drop(sm);
        let mut reopened = StateMachine::open(dir.path()).unwrap();
        let (applied, _) = reopened.applied_state().await.unwrap();
        assert_eq!(applied.map(|id| id.index), Some(2));
        assert_eq!(reopened.get("b").as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_file_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply([entry(1, vec![put("k", b"value")])])
            .await
            .unwrap();
        snapshot(&mut sm).await;
        drop(sm);
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = StateMachine::open(dir.path())
            .err()
            .expect("a flipped bit must be refused");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[tokio::test]
    async fn a_leftover_temporary_snapshot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SNAPSHOT_TMP), b"half a snapshot").unwrap();
        let sm = StateMachine::open(dir.path()).unwrap();
        assert!(sm.export().is_empty());
        assert!(!dir.path().join(SNAPSHOT_TMP).exists());
    }
}
