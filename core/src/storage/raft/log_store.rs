//! The Raft log as append-only segment files.
//!
//! Everything the log keeps (entries, the vote, the committed id, truncations
//! and purges) is a record appended to the newest segment file, so a group
//! of appends costs one `write` and one `fdatasync`, with no B-tree pages and
//! no file-system metadata beyond the file's length. Replaying the records
//! in order at open rebuilds the state; an in-memory index maps each entry's
//! index to where its record lies.
//!
//! Record: `len: u32 LE | crc32: u32 LE | kind: u8 | body`, where `len`
//! counts kind and body and the CRC covers them. A crash mid-write leaves a
//! torn record at the end of the newest segment; it is cut off at open. A bad
//! record anywhere else is corruption, and the log refuses to open.
//!
//! Segments are named by sequence number (`00000000000000000001.seg`). A new
//! one starts, once the current one has grown past its size, with the vote,
//! committed id and purge point as they are then, so segments wholly before
//! the purge point can be deleted without losing them.
//!
//! Appends do not wait for their fsync: entries go into a cache where readers
//! find them at once, and a writer thread writes everything queued in one go
//! and then reports the flush to openraft. The cache keeps the newest
//! entries after they are durable too, so replication reads rarely touch the
//! files.

// openraft's storage traits fix the error type (openraft::StorageError, ~224 bytes).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::codec;
use super::types::{typ, TypeConfig};

/// A segment is closed, and the next one started, past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// How long the writer waits for a group before writing a held-back
/// committed id on its own (see `save_committed`).
const IDLE_COMMITTED_WRITE: std::time::Duration = std::time::Duration::from_millis(50);
/// How long a purge waits for the snapshot that holds its entries to be on
/// disk (an installed snapshot is written while the purge waits).
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Durable entries kept in memory for readers, newest first, up to this size.
const CACHE_BYTES: usize = 4 << 20;
/// No record is larger (an entry is at most one request body, far smaller);
/// a larger length in a header is garbage.
const MAX_RECORD: u32 = 1 << 30;
const HEADER: usize = 8;

/// An entry as JSON after its index: written by earlier versions, still read.
const KIND_ENTRY_JSON: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_TRUNCATE: u8 = 4;
const KIND_PURGE: u8 = 5;
/// An entry in [`codec`]'s binary form (which starts with its index).
const KIND_ENTRY: u8 = 6;

/// The log store; clones share it (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Job>,
}

struct Shared {
    state: Mutex<State>,
    /// The last log index of the state machine's snapshot on disk, once
    /// wired (see [`LogStore::purge_behind`]).
    snapshot_on_disk: std::sync::OnceLock<tokio::sync::watch::Receiver<Option<u64>>>,
    /// Groups written and fsynced, and entries appended, since open.
    appends: AtomicU64,
    entries: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Entries not yet durable, and the newest durable ones.
    cache: BTreeMap<u64, Cached>,
    cache_bytes: usize,
    /// Where each entry in the files lies.
    index: BTreeMap<u64, Slot>,
    /// Read handles of the segments, by sequence number.
    files: BTreeMap<u64, Arc<File>>,
    vote: Option<typ::Vote>,
    committed: Option<typ::LogId>,
    /// The newest committed-id record, not yet written (see `save_committed`).
    unwritten_committed: Option<Vec<u8>>,
    last_purged: Option<typ::LogId>,
}

struct Cached {
    entry: typ::Entry,
    bytes: usize,
    durable: bool,
}

/// A record's place: segment, offset of its header, length of kind + body.
#[derive(Clone, Copy, Debug)]
struct Slot {
    segment: u64,
    offset: u64,
    len: u32,
}

/// Told once an append's records are durable, or failed.
type Flushed = Box<dyn FnOnce(Result<(), io::Error>) + Send>;

/// Work for the writer thread, done in queue order.
enum Job {
    Append {
        /// Each entry's id and framed record.
        entries: Vec<(typ::LogId, Vec<u8>)>,
        flushed: Flushed,
    },
    /// A vote, truncation or purge record.
    Mark {
        mark: Mark,
        record: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Clone, Copy)]
enum Mark {
    Vote,
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to this index are gone.
    Purge(u64),
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

fn writer_gone() -> typ::StorageError {
    write_err("the raft log writer stopped")
}

/// Lock the state; a panicking holder leaves maps that are still whole.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A record's buffer up to its kind; the body is appended after it, then
/// [`seal`] fills in the header.
fn record(kind: u8, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 1 + body_len);
    out.extend_from_slice(&[0; HEADER]);
    out.push(kind);
    out
}

/// Fill in a record's `len | crc` header.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() - HEADER) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&out[HEADER..]);
    out[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    out
}

/// `len | crc | kind | body` as one buffer.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = record(kind, body.len());
    out.extend_from_slice(body);
    seal(out)
}

fn frame_json<T: Serialize>(kind: u8, value: &T) -> Result<Vec<u8>, typ::StorageError> {
    let body = serde_json::to_vec(value).map_err(write_err)?;
    Ok(frame(kind, &body))
}

/// An entry's record, in the binary form that starts with its index.
fn frame_entry(entry: &typ::Entry) -> Result<Vec<u8>, typ::StorageError> {
    let mut out = record(KIND_ENTRY, codec::encoded_len(entry));
    codec::encode_entry(entry, &mut out).map_err(write_err)?;
    Ok(seal(out))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, typ::StorageError> {
    serde_json::from_slice(bytes).map_err(read_err)
}

/// Read the entry at `slot` from `file`, checking its CRC.
fn read_entry(file: &File, slot: Slot) -> Result<typ::Entry, typ::StorageError> {
    let mut buf = vec![0; HEADER + slot.len as usize];
    file.read_exact_at(&mut buf, slot.offset)
        .map_err(read_err)?;
    let payload = &buf[HEADER..];
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let corrupt = || {
        read_err(format!(
            "raft log record at segment {} offset {} is corrupt",
            slot.segment, slot.offset
        ))
    };
    if crc32fast::hash(payload) != crc {
        return Err(corrupt());
    }
    match payload.split_first() {
        Some((&KIND_ENTRY, body)) => codec::decode_entry(body).map_err(|_| corrupt()),
        Some((&KIND_ENTRY_JSON, body)) if body.len() >= 8 => decode(&body[8..]),
        _ => Err(corrupt()),
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The sequence numbers of the segments in `dir`, oldest first.
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for item in fs::read_dir(dir)? {
        let name = item?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

impl State {
    fn cache_insert(&mut self, entry: typ::Entry, bytes: usize) {
        let index = entry.log_id.index;
        let cached = Cached {
            entry,
            bytes,
            durable: false,
        };
        self.cache_bytes += bytes;
        if let Some(old) = self.cache.insert(index, cached) {
            self.cache_bytes -= old.bytes;
        }
    }

    /// Drop cached entries for which `keep` is false.
    fn cache_retain(&mut self, keep: impl Fn(u64) -> bool) {
        let mut freed = 0;
        self.cache.retain(|index, c| {
            let kept = keep(*index);
            if !kept {
                freed += c.bytes;
            }
            kept
        });
        self.cache_bytes -= freed;
    }

    /// Forget the oldest durable entries beyond the cache's size.
    fn cache_trim(&mut self) {
        while self.cache_bytes > CACHE_BYTES {
            match self.cache.first_entry() {
                Some(first) if first.get().durable => {
                    self.cache_bytes -= first.remove().bytes;
                }
                _ => break,
            }
        }
    }

    /// Apply a replayed or written mark to the index.
    fn apply_mark(&mut self, mark: Mark) {
        match mark {
            Mark::Truncate(from) => {
                self.index.split_off(&from);
            }
            Mark::Purge(upto) => {
                self.index = self.index.split_off(&(upto.saturating_add(1)));
            }
            Mark::Vote => {}
        }
    }
}

/// One segment as the writer knows it.
struct Segment {
    id: u64,
    /// The highest index of any entry ever written to it.
    last_index: Option<u64>,
}

/// The writer thread's side: the newest segment, open for appending.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    shared: Arc<Shared>,
    active: File,
    active_len: u64,
    /// Every segment, oldest first; the last is `active`.
    segments: Vec<Segment>,
    /// The newest vote, committed and purge records, which start every
    /// new segment.
    vote: Option<Vec<u8>>,
    committed: Option<Vec<u8>>,
    purged: Option<Vec<u8>>,
    /// Set after a failed write or fsync: what is in the file is unknown,
    /// so nothing more is written (the node stops; a restart replays).
    broken: Option<String>,
}

impl LogStore {
    /// Open (or create) the log in directory `dir` and start its writer thread.
    pub fn open(dir: &Path) -> Result<Self, typ::StorageError> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    /// [`open`](Self::open) with a segment size of `segment_bytes`.
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<Self, typ::StorageError> {
        fs::create_dir_all(dir).map_err(write_err)?;
        let mut state = State::default();
        let mut segments = Vec::new();
        let ids = list_segments(dir).map_err(read_err)?;
        for (n, &id) in ids.iter().enumerate() {
            let newest = n + 1 == ids.len();
            segments.push(replay(dir, id, newest, &mut state)?);
        }
        if segments.is_empty() {
            File::create(segment_path(dir, 1)).map_err(write_err)?;
            sync_dir(dir).map_err(write_err)?;
            segments.push(Segment {
                id: 1,
                last_index: None,
            });
        }
        for seg in &segments {
            let file = File::open(segment_path(dir, seg.id)).map_err(read_err)?;
            state.files.insert(seg.id, Arc::new(file));
        }
        let active_id = segments.last().map_or(1, |s| s.id);
        let active = OpenOptions::new()
            .append(true)
            .open(segment_path(dir, active_id))
            .map_err(write_err)?;
        let active_len = active.metadata().map_err(read_err)?.len();
        let vote = state.vote.map(|v| frame_json(KIND_VOTE, &v)).transpose()?;
        let committed = state
            .committed
            .map(|c| frame_json(KIND_COMMITTED, &Some(c)))
            .transpose()?;
        let purged = state
            .last_purged
            .map(|p| frame_json(KIND_PURGE, &p))
            .transpose()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            snapshot_on_disk: std::sync::OnceLock::new(),
            appends: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        });
        let writer = Writer {
            dir: dir.to_owned(),
            segment_bytes,
            shared: shared.clone(),
            active,
            active_len,
            segments,
            vote,
            committed,
            purged,
            broken: None,
        };
        let (tx, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".to_owned())
            .spawn(move || writer.run(&jobs))
            .map_err(write_err)?;
        Ok(LogStore { shared, writer: tx })
    }

    /// Purge only entries a durable snapshot holds: `on_disk` tells the last
    /// log index of the state machine's snapshot file. openraft 0.9 purges a
    /// follower's log right after handing an installed snapshot to the state
    /// machine, without waiting for it to be written; a crash in between
    /// would leave entries in neither. Set once, by the cluster.
    pub fn purge_behind(&self, on_disk: tokio::sync::watch::Receiver<Option<u64>>) {
        let _ = self.shared.snapshot_on_disk.set(on_disk);
    }

    /// Wait until the snapshot on disk holds `upto`, if a snapshot is wired.
    async fn wait_for_snapshot(&self, upto: u64) -> Result<(), typ::StorageError> {
        let Some(on_disk) = self.shared.snapshot_on_disk.get() else {
            return Ok(());
        };
        let mut on_disk = on_disk.clone();
        let held = tokio::time::timeout(
            SNAPSHOT_WAIT,
            on_disk.wait_for(|index| index.is_some_and(|i| i >= upto)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if held {
            Ok(())
        } else {
            Err(write_err(format!(
                "refusing to purge the raft log up to {upto}: no snapshot on disk holds it"
            )))
        }
    }

    /// (fsynced groups, entries appended) since open: the ratio shows how
    /// many proposals shared one fsync.
    pub fn append_stats(&self) -> (u64, u64) {
        (
            self.shared.appends.load(Ordering::Relaxed),
            self.shared.entries.load(Ordering::Relaxed),
        )
    }

    /// How many segment files the log has now.
    pub fn segment_count(&self) -> usize {
        lock(&self.shared.state).files.len()
    }

    /// Queue `entries`; `flushed` is told once they are durable.
    fn append_entries(
        &self,
        entries: impl IntoIterator<Item = typ::Entry>,
        flushed: Flushed,
    ) -> Result<(), typ::StorageError> {
        // Encode before taking the lock: readers wait on it.
        let entries: Vec<(typ::Entry, Vec<u8>)> = entries
            .into_iter()
            .map(|entry| frame_entry(&entry).map(|record| (entry, record)))
            .collect::<Result<_, _>>()?;
        let mut framed = Vec::with_capacity(entries.len());
        {
            let mut state = lock(&self.shared.state);
            for (entry, record) in entries {
                framed.push((entry.log_id, record));
                let bytes = framed.last().map_or(0, |(_, r)| r.len());
                state.cache_insert(entry, bytes);
            }
        }
        self.shared
            .entries
            .fetch_add(framed.len() as u64, Ordering::Relaxed);
        let job = Job::Append {
            entries: framed,
            flushed,
        };
        self.writer.send(job).map_err(|_| writer_gone())
    }

    /// Queue a mark behind every earlier append and return once it is durable.
    async fn mark(&self, mark: Mark, record: Vec<u8>) -> Result<(), typ::StorageError> {
        let (done, answer) = oneshot::channel();
        let job = Job::Mark { mark, record, done };
        self.writer.send(job).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?.map_err(write_err)
    }

    /// Append and wait for the fsync (tests; openraft uses `append`).
    #[cfg(test)]
    async fn append_durably(&self, entries: Vec<typ::Entry>) -> Result<(), typ::StorageError> {
        let (tx, rx) = oneshot::channel();
        self.append_entries(
            entries,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.await.map_err(|_| writer_gone())?.map_err(write_err)
    }
}

/// Replay segment `id` into `state`. In the newest segment a bad record is
/// a torn write, cut off; anywhere else it is corruption.
fn replay(
    dir: &Path,
    id: u64,
    newest: bool,
    state: &mut State,
) -> Result<Segment, typ::StorageError> {
    let path = segment_path(dir, id);
    let file = File::open(&path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut segment = Segment {
        id,
        last_index: None,
    };
    let mut offset = 0u64;
    let mut payload = Vec::new();
    while offset < size {
        match next_record(&mut reader, &mut payload) {
            Ok(len) => {
                apply_record(state, &mut segment, &payload, offset, len)
                    .map_err(|e| read_err(format!("{}: offset {offset}: {e}", path.display())))?;
                offset += (HEADER + len as usize) as u64;
            }
            Err(e) if newest => {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    dropped_bytes = size - offset,
                    reason = %e,
                    "cutting off a torn write at the end of the raft log"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(write_err)?;
                file.set_len(offset).map_err(write_err)?;
                file.sync_all().map_err(write_err)?;
                break;
            }
            Err(e) => {
                return Err(read_err(format!(
                    "raft log segment {} is corrupt at offset {offset}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(segment)
}

/// Read one record's payload into `payload`; its length, or why it is bad.
fn next_record(reader: &mut impl Read, payload: &mut Vec<u8>) -> Result<u32, String> {
    let mut header = [0u8; HEADER];
    reader
        .read_exact(&mut header)
        .map_err(|e| format!("incomplete header: {e}"))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return Err(format!("impossible record length {len}"));
    }
    payload.clear();
    reader
        .take(u64::from(len))
        .read_to_end(payload)
        .map_err(|e| format!("unreadable record: {e}"))?;
    if payload.len() != len as usize {
        return Err("incomplete record".to_owned());
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".to_owned());
    }
    Ok(len)
}

fn apply_record(
    state: &mut State,
    segment: &mut Segment,
    payload: &[u8],
    offset: u64,
    len: u32,
) -> Result<(), String> {
    let (kind, body) = payload.split_first().ok_or("empty record")?;
    match *kind {
        KIND_ENTRY | KIND_ENTRY_JSON => {
            let index = body
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or("short entry record")?;
            let slot = Slot {
                segment: segment.id,
                offset,
                len,
            };
            state.index.insert(index, slot);
            segment.last_index = segment.last_index.max(Some(index));
        }
        KIND_VOTE => state.vote = Some(decode(body).map_err(|e| e.to_string())?),
        KIND_COMMITTED => state.committed = decode(body).map_err(|e| e.to_string())?,
        KIND_TRUNCATE => {
            let from = <[u8; 8]>::try_from(body)
                .map(u64::from_le_bytes)
                .map_err(|_| "bad truncate record")?;
            state.apply_mark(Mark::Truncate(from));
        }
        KIND_PURGE => {
            let purged: typ::LogId = decode(body).map_err(|e| e.to_string())?;
            state.apply_mark(Mark::Purge(purged.index));
            state.last_purged = Some(purged);
        }
        other => return Err(format!("unknown record kind {other}")),
    }
    Ok(())
}

impl Writer {
    /// Take every queued job, write them in order with one `write` and one
    /// `fdatasync`, then answer each. Ends when the last store is dropped.
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        loop {
            let first = match jobs.recv_timeout(IDLE_COMMITTED_WRITE) {
                Ok(job) => job,
                // Quiet, or closing: the committed id that waited for a group
                // is written now, so a restart re-applies everything committed.
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.write_unwritten_committed();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.write_unwritten_committed();
                    return;
                }
            };
            let mut group = vec![first];
            group.extend(jobs.try_iter());
            let result = match &self.broken {
                Some(why) => Err(why.clone()),
                None => self.write_group(&mut group),
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, "raft log write failed; the log takes no more writes");
                self.broken = Some(e.clone());
            }
            self.answer(group, &result);
        }
    }

    /// Write and fsync the committed id held back for the next group, if any.
    fn write_unwritten_committed(&mut self) {
        if self.broken.is_some() {
            return;
        }
        let Some(record) = lock(&self.shared.state).unwritten_committed.take() else {
            return;
        };
        self.committed = Some(record.clone());
        let written = self
            .active
            .write_all(&record)
            .and_then(|()| self.active.sync_data());
        match written {
            Ok(()) => self.active_len += record.len() as u64,
            Err(e) => {
                tracing::error!(error = %e, "raft log write failed; the log takes no more writes");
                self.broken = Some(e.to_string());
            }
        }
    }

    fn write_group(&mut self, group: &mut [Job]) -> Result<(), String> {
        if self.active_len >= self.segment_bytes {
            self.rotate()
                .map_err(|e| format!("cannot start a raft log segment: {e}"))?;
        }
        let active = self.segments.len() - 1;
        let mut buf = Vec::new();
        let mut purge_upto = None;
        {
            let mut state = lock(&self.shared.state);
            if let Some(mut record) = state.unwritten_committed.take() {
                self.committed = Some(record.clone());
                buf.append(&mut record);
            }
            for job in group.iter_mut() {
                match job {
                    Job::Append { entries, .. } => {
                        for (id, record) in entries.iter_mut() {
                            let slot = Slot {
                                segment: self.segments[active].id,
                                offset: self.active_len + buf.len() as u64,
                                len: (record.len() - HEADER) as u32,
                            };
                            state.index.insert(id.index, slot);
                            let last = &mut self.segments[active].last_index;
                            *last = (*last).max(Some(id.index));
                            buf.append(record);
                        }
                    }
                    Job::Mark { mark, record, .. } => {
                        state.apply_mark(*mark);
                        match *mark {
                            Mark::Vote => self.vote = Some(record.clone()),
                            Mark::Purge(upto) => {
                                self.purged = Some(record.clone());
                                purge_upto = purge_upto.max(Some(upto));
                            }
                            Mark::Truncate(_) => {}
                        }
                        buf.append(record);
                    }
                }
            }
        }
        self.active.write_all(&buf).map_err(|e| e.to_string())?;
        self.active.sync_data().map_err(|e| e.to_string())?;
        self.active_len += buf.len() as u64;
        self.shared.appends.fetch_add(1, Ordering::Relaxed);
        if let Some(upto) = purge_upto {
            self.delete_purged(upto);
        }
        Ok(())
    }

    /// Start the next segment with the current vote, committed id and purge
    /// point, and make it the one appended to.
    fn rotate(&mut self) -> io::Result<()> {
        let id = self.segments.last().map_or(1, |s| s.id + 1);
        let path = segment_path(&self.dir, id);
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        let mut header = Vec::new();
        for record in [&self.vote, &self.committed, &self.purged]
            .into_iter()
            .flatten()
        {
            header.extend_from_slice(record);
        }
        file.write_all(&header)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        let reader = File::open(&path)?;
        lock(&self.shared.state).files.insert(id, Arc::new(reader));
        self.active = file;
        self.active_len = header.len() as u64;
        self.segments.push(Segment {
            id,
            last_index: None,
        });
        Ok(())
    }

    /// Delete the oldest segments while every entry in them is at or before
    /// `upto`. Only a prefix goes: a later segment may hold a truncation
    /// that replay must apply to the segments before it.
    fn delete_purged(&mut self, upto: u64) {
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            if first.last_index.is_some_and(|last| last > upto) {
                break;
            }
            let id = first.id;
            if let Err(e) = fs::remove_file(segment_path(&self.dir, id)) {
                // Harmless: replay skips purged entries; the next purge retries.
                tracing::warn!(segment = id, error = %e, "cannot delete a purged raft log segment");
                break;
            }
            lock(&self.shared.state).files.remove(&id);
            self.segments.remove(0);
        }
    }

    /// Tell each job's caller how its group went, and let the cache forget
    /// durable entries beyond its size.
    fn answer(&self, group: Vec<Job>, result: &Result<(), String>) {
        let mut durable = Vec::new();
        for job in group {
            match job {
                Job::Append { entries, flushed } => {
                    if result.is_ok() {
                        durable.extend(entries.into_iter().map(|(id, _)| id));
                    }
                    flushed(result.clone().map_err(io::Error::other));
                }
                Job::Mark { done, .. } => {
                    // A caller that went away needs no answer.
                    let _ = done.send(result.clone());
                }
            }
        }
        let mut state = lock(&self.shared.state);
        for id in durable {
            // An index truncated and appended again meanwhile holds another
            // entry, not yet durable: leave it.
            if let Some(cached) = state.cache.get_mut(&id.index) {
                if cached.entry.log_id == id {
                    cached.durable = true;
                }
            }
        }
        state.cache_trim();
    }
}

/// Where a wanted entry is: in memory, or in a segment file.
enum Source {
    Cached(typ::Entry),
    Stored(Arc<File>, Slot),
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<typ::Entry>, typ::StorageError> {
        let (start, end) = bounds(&range);
        let end = end.unwrap_or(u64::MAX);
        let mut sources = Vec::new();
        {
            let state = lock(&self.shared.state);
            // Begin at the first index held (the range may start before the
            // purge point); the log is contiguous from there, so stop at the
            // first index it lacks.
            let first_cached = state.cache.range(start..).next().map(|(i, _)| *i);
            let first_stored = state.index.range(start..).next().map(|(i, _)| *i);
            let Some(mut index) = first_cached.into_iter().chain(first_stored).min() else {
                return Ok(Vec::new());
            };
            while index < end {
                if let Some(cached) = state.cache.get(&index) {
                    sources.push(Source::Cached(cached.entry.clone()));
                } else if let Some(slot) = state.index.get(&index) {
                    match state.files.get(&slot.segment) {
                        Some(file) => sources.push(Source::Stored(file.clone(), *slot)),
                        None => break,
                    }
                } else {
                    break;
                }
                index += 1;
            }
        }
        if sources.iter().all(|s| matches!(s, Source::Cached(_))) {
            return Ok(sources
                .into_iter()
                .filter_map(|s| match s {
                    Source::Cached(entry) => Some(entry),
                    Source::Stored(..) => None,
                })
                .collect());
        }
        // Reading the files may wait for the disk: off the async workers.
        tokio::task::spawn_blocking(move || {
            sources
                .into_iter()
                .map(|source| match source {
                    Source::Cached(entry) => Ok(entry),
                    Source::Stored(file, slot) => read_entry(&file, slot),
                })
                .collect()
        })
        .await
        .map_err(read_err)?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, typ::StorageError> {
        let (cached, stored, last_purged) = {
            let state = lock(&self.shared.state);
            let cached = state.cache.last_key_value().map(|(_, c)| c.entry.log_id);
            let stored = state.index.last_key_value().and_then(|(_, slot)| {
                let file = state.files.get(&slot.segment)?;
                Some((file.clone(), *slot))
            });
            (cached, stored, state.last_purged)
        };
        let stored = match stored {
            Some((file, slot)) => Some(
                tokio::task::spawn_blocking(move || read_entry(&file, slot))
                    .await
                    .map_err(read_err)??
                    .log_id,
            ),
            None => None,
        };
        let last_log_id = [cached, stored, last_purged]
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
        let record = frame_json(KIND_VOTE, vote)?;
        lock(&self.shared.state).vote = Some(*vote);
        self.mark(Mark::Vote, record).await
    }

    async fn read_vote(&mut self) -> Result<Option<typ::Vote>, typ::StorageError> {
        Ok(lock(&self.shared.state).vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<typ::LogId>,
    ) -> Result<(), typ::StorageError> {
        let record = frame_json(KIND_COMMITTED, &committed)?;
        let mut state = lock(&self.shared.state);
        state.committed = committed;
        // Not written now: it rides with the next group and is durable with
        // its fdatasync. openraft saves the committed id after every commit,
        // and a group of its own cost a write load one extra wake of the
        // writer thread, write and fdatasync per commit. When no group comes
        // within IDLE_COMMITTED_WRITE, or the log closes, the writer writes
        // it alone. One lost in a crash only means re-applying less at start;
        // the rest is applied once the leader commits again.
        state.unwritten_committed = Some(record);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<typ::LogId>, typ::StorageError> {
        Ok(lock(&self.shared.state).committed)
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
        self.append_entries(entries, Box::new(move |r| callback.log_io_completed(r)))
    }

    async fn truncate(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let from = log_id.index;
        lock(&self.shared.state).cache_retain(|index| index < from);
        let record = frame(KIND_TRUNCATE, &from.to_le_bytes());
        self.mark(Mark::Truncate(from), record).await
    }

    async fn purge(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let upto = log_id.index;
        self.wait_for_snapshot(upto).await?;
        let record = frame_json(KIND_PURGE, &log_id)?;
        {
            let mut state = lock(&self.shared.state);
            state.cache_retain(|index| index > upto);
            state.last_purged = Some(log_id);
        }
        self.mark(Mark::Purge(upto), record).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{blank_ent, log_id};

    use super::*;

    fn entries(term: u64, range: std::ops::Range<u64>) -> Vec<typ::Entry> {
        range.map(|i| blank_ent::<TypeConfig>(term, 1, i)).collect()
    }

    async fn all(store: &mut LogStore) -> Vec<(u64, u64)> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let ids = list_segments(dir).unwrap();
        assert_eq!(ids.len(), 1);
        segment_path(dir, ids[0])
    }

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            store.append_durably(entries(1, 1..11)).await.unwrap();
            store.save_vote(&typ::Vote::new(3, 2)).await.unwrap();
            store.truncate(log_id(1, 1, 8)).await.unwrap();
            store.append_durably(entries(3, 8..10)).await.unwrap();
            store.purge(log_id(1, 1, 2)).await.unwrap();
            store.save_committed(Some(log_id(3, 1, 9))).await.unwrap();
            // Make the committed record durable behind another group.
            store.save_vote(&typ::Vote::new(3, 2)).await.unwrap();
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        let want: Vec<_> = (3..8).map(|i| (i, 1)).chain([(8, 3), (9, 3)]).collect();
        assert_eq!(all(&mut store).await, want);
        assert_eq!(store.read_vote().await.unwrap(), Some(typ::Vote::new(3, 2)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(3, 1, 9)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));
        assert_eq!(state.last_log_id, Some(log_id(3, 1, 9)));
    }

    #[tokio::test]
    async fn a_committed_id_is_written_with_the_next_group_or_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.append_durably(entries(1, 1..4)).await.unwrap();
        store.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
        // Held back for the next group...
        assert!(lock(&store.shared.state).unwritten_committed.is_some());
        store.append_durably(entries(1, 4..5)).await.unwrap();
        assert!(lock(&store.shared.state).unwritten_committed.is_none());
        // ...or written alone once the writer has been idle a while.
        store.save_committed(Some(log_id(1, 1, 4))).await.unwrap();
        tokio::time::sleep(IDLE_COMMITTED_WRITE * 4).await;
        assert!(lock(&store.shared.state).unwritten_committed.is_none());
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 4)));
        assert_eq!(all(&mut store).await.len(), 4);
    }

    #[tokio::test]
    async fn a_purge_waits_for_a_snapshot_on_disk_that_holds_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.append_durably(entries(1, 1..6)).await.unwrap();
        let on_disk = tokio::sync::watch::Sender::new(Some(2));
        store.purge_behind(on_disk.subscribe());
        let mut purging = store.clone();
        let purge = tokio::spawn(async move { purging.purge(log_id(1, 1, 4)).await });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!purge.is_finished(), "purged past the snapshot on disk");
        assert_eq!(all(&mut store).await.len(), 5);
        on_disk.send_replace(Some(4));
        purge.await.unwrap().unwrap();
        assert_eq!(all(&mut store).await, [(5, 1)]);
    }

    #[tokio::test]
    async fn entries_written_as_json_by_earlier_versions_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.append_durably(entries(1, 1..3)).await.unwrap();
        }
        // Index 3 as the JSON record earlier versions wrote.
        let old = blank_ent::<TypeConfig>(1, 1, 3);
        let mut body = 3u64.to_le_bytes().to_vec();
        body.extend(serde_json::to_vec(&old).unwrap());
        let mut file = OpenOptions::new()
            .append(true)
            .open(only_segment(dir.path()))
            .unwrap();
        file.write_all(&frame(KIND_ENTRY_JSON, &body)).unwrap();
        drop(file);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(all(&mut store).await, [(1, 1), (2, 1), (3, 1)]);
        store.append_durably(entries(1, 4..5)).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(all(&mut store).await.len(), 4);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.append_durably(entries(1, 1..6)).await.unwrap();
        }
        let path = only_segment(dir.path());
        let whole = fs::metadata(&path).unwrap().len();
        // A crash in the middle of the next group: half of its record on disk.
        let next = frame_entry(&blank_ent::<TypeConfig>(1, 1, 6)).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&next[..next.len() / 2]).unwrap();
        drop(file);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(all(&mut store).await.len(), 5);
        store.append_durably(entries(1, 6..8)).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(all(&mut store).await.len(), 7);
    }

    #[tokio::test]
    async fn a_flipped_bit_in_a_closed_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open_with(dir.path(), 256).unwrap();
            for i in 1..20 {
                store.append_durably(entries(1, i..i + 1)).await.unwrap();
            }
            assert!(store.segment_count() > 2);
        }
        let first = segment_path(dir.path(), list_segments(dir.path()).unwrap()[0]);
        let mut bytes = fs::read(&first).unwrap();
        bytes[HEADER + 4] ^= 0x10;
        fs::write(&first, bytes).unwrap();
        let err = LogStore::open(dir.path())
            .err()
            .expect("corruption refused");
        let text = err.to_string();
        assert!(
            text.contains("corrupt") && text.contains("00000000000000000001.seg"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_flipped_bit_is_caught_when_an_entry_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.append_durably(entries(1, 1..3)).await.unwrap();
        lock(&store.shared.state).cache.clear();
        let path = only_segment(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x01;
        fs::write(&path, bytes).unwrap();
        let err = store.try_get_log_entries(1..3).await.unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[tokio::test]
    async fn purge_deletes_whole_old_segments_and_keeps_the_vote() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open_with(dir.path(), 512).unwrap();
            store.save_vote(&typ::Vote::new(1, 1)).await.unwrap();
            for i in 1..101 {
                store.append_durably(entries(1, i..i + 1)).await.unwrap();
            }
            let before = store.segment_count();
            assert!(before > 5, "{before} segments");
            store.purge(log_id(1, 1, 90)).await.unwrap();
            let after = store.segment_count();
            assert!(after < before && after <= 3, "{before} -> {after} segments");
            assert_eq!(list_segments(dir.path()).unwrap().len(), after);
            // Reads from the files, not the cache.
            lock(&store.shared.state).cache.clear();
            assert_eq!(all(&mut store).await.first(), Some(&(91, 1)));
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        let got = all(&mut store).await;
        assert_eq!(got.first(), Some(&(91, 1)));
        assert_eq!(got.last(), Some(&(100, 1)));
        assert_eq!(got.len(), 10);
        assert_eq!(store.read_vote().await.unwrap(), Some(typ::Vote::new(1, 1)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 90)));
    }

    #[tokio::test]
    async fn a_purge_never_deletes_a_truncation_that_replay_needs() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A one-byte segment size: every group starts a new segment.
            let mut store = LogStore::open_with(dir.path(), 1).unwrap();
            store.append_durably(entries(1, 1..31)).await.unwrap();
            store.truncate(log_id(1, 1, 10)).await.unwrap();
            store.append_durably(entries(2, 10..12)).await.unwrap();
            store.append_durably(entries(2, 12..14)).await.unwrap();
            // The truncation's segment and the next hold nothing after 11,
            // but the oldest still holds the truncated 12..30. Deleting the
            // truncation while keeping the oldest would bring 14..30 back.
            store.purge(log_id(2, 1, 11)).await.unwrap();
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(all(&mut store).await, vec![(12, 2), (13, 2)]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 1, 13)));
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, 11)));
    }
}
