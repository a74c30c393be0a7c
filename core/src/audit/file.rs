//! The `file` audit device: opening its target, and its writers.
//!
//! With the default `fsync = "batch"` on a regular file, callers write their
//! own lines, grouped (see `group.rs`): no hand-over to another thread (waking
//! a writer thread and being woken by its acknowledgement cost more CPU than
//! the write itself). A syncer thread beside it fsyncs whatever was written
//! since its last sync, at most once per `MIN_SYNC_INTERVAL`, so request
//! latency does not include the disk's flush, and a failed fsync stops the
//! device (fail closed).
//!
//! With `fsync = "always"`, and for stdout and other non-regular targets
//! (which may block), a writer thread owns the file. Callers hand it encoded
//! entry bodies over a channel; it takes every body waiting, chains and
//! appends them in one write, calls `sync_data` once for the whole group and
//! acknowledges each caller: many concurrent requests cost one fsync.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, TailError, GENESIS};
use super::group::{Group, GroupWriter};
use super::options::{FileOptions, SyncMode, Target};

/// Queued entries per device before callers wait for room.
const QUEUE: usize = 4096;
/// Upper bounds of one group, so a flood still gets acknowledged in steps.
const MAX_GROUP_LINES: usize = 4096;
const MAX_GROUP_BYTES: usize = 8 << 20;

/// Failure to open a device. Messages carry their cause (file paths and
/// I/O errors, never secrets) since operators see only the message.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file or its directory could not be created, opened or read.
    #[error("failed to open the audit file: {0}")]
    Io(io::Error),
    /// The file exists and its last line is not a Cairn audit line, so its
    /// chain cannot be continued.
    #[error(
        "the existing file does not end with a Cairn audit line; move it aside or choose another file_path"
    )]
    Foreign,
    /// The writer thread could not be started.
    #[error("failed to start the audit writer: {0}")]
    Spawn(io::Error),
}

impl From<TailError> for OpenError {
    fn from(err: TailError) -> Self {
        match err {
            TailError::Io(err) => OpenError::Io(err),
            TailError::Foreign => OpenError::Foreign,
        }
    }
}

/// Why a line was not recorded by one device. Carries only the error kind,
/// so one value can be cloned to every caller of a group.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("write failed: {0}")]
    Write(io::ErrorKind),
    #[error("sync failed: {0}")]
    Sync(io::ErrorKind),
    #[error("device stopped after an earlier failure it could not undo; disable and re-enable it")]
    Poisoned,
    #[error("device is closed")]
    Closed,
}

type Ack = oneshot::Sender<Result<(), WriteError>>;

enum Msg {
    Line { body: Arc<Vec<u8>>, ack: Ack },
    Close { ack: oneshot::Sender<()> },
}

#[derive(Default)]
struct Stats {
    fsyncs: AtomicU64,
    lines: AtomicU64,
}

/// Handle of an open device; a writer thread ends when the handle is
/// dropped or closed, after writing everything already queued.
pub(crate) struct FileDevice {
    path: WritePath,
    stats: Arc<Stats>,
}

/// How a line reaches the file.
enum WritePath {
    /// Callers write grouped lines themselves (batch mode on a regular file).
    Grouped(Box<GroupWriter>),
    /// A writer thread writes groups of lines (see the module comment).
    Thread(mpsc::Sender<Msg>),
}

/// A line handed to a device: settled already, waiting for its group's
/// write, or waiting for the writer thread.
pub(crate) enum Queued<'a> {
    Written(Result<(), WriteError>),
    Grouped(&'a GroupWriter, Arc<Group>),
    Waiting(oneshot::Receiver<Result<(), WriteError>>),
}

impl Queued<'_> {
    /// The outcome of the line.
    pub(crate) async fn done(self) -> Result<(), WriteError> {
        match self {
            Queued::Written(result) => result,
            Queued::Grouped(writer, group) => writer.wait(&group).await,
            Queued::Waiting(rx) => rx.await.unwrap_or(Err(WriteError::Closed)),
        }
    }
}

impl FileDevice {
    /// Opens (creating if needed) the target and starts the writer. Blocking:
    /// call from a blocking context.
    pub(crate) fn open(options: &FileOptions, name: &str) -> Result<Self, OpenError> {
        let (sink, prev) = match &options.target {
            Target::Stdout => (Sink::Stdout, GENESIS),
            Target::Discard => (Sink::Discard, GENESIS),
            Target::File(path) => open_file(path, options.mode)?,
        };
        let stats = Arc::new(Stats::default());
        let poisoned = Arc::new(AtomicBool::new(false));
        let syncer = match (&sink, options.sync) {
            (
                Sink::File {
                    file,
                    regular: true,
                    ..
                },
                SyncMode::Batch,
            ) => Some(Syncer::start(
                file.try_clone().map_err(OpenError::Io)?,
                name,
                poisoned.clone(),
                stats.clone(),
            )?),
            _ => None,
        };
        let grouped = syncer.is_some();
        let mut writer = Writer {
            sink,
            prev,
            poisoned,
            syncer,
            stats: stats.clone(),
        };
        if grouped {
            return Ok(FileDevice {
                path: WritePath::Grouped(Box::new(GroupWriter::new(writer))),
                stats,
            });
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name(format!("audit-{}", name.trim_end_matches('/')))
            .spawn(move || writer.run(rx))
            .map_err(OpenError::Spawn)?;
        Ok(FileDevice {
            path: WritePath::Thread(tx),
            stats,
        })
    }

    /// Hands over one entry body (an unclosed JSON object): added to the
    /// next group write, or queued to the writer thread, which answers once
    /// the line is written and synced, or why it was not.
    pub(crate) async fn submit(&self, body: Arc<Vec<u8>>) -> Queued<'_> {
        match &self.path {
            WritePath::Grouped(writer) => match writer.add(&body) {
                Ok(group) => Queued::Grouped(writer, group),
                Err(err) => Queued::Written(Err(err)),
            },
            WritePath::Thread(tx) => {
                let (ack, done) = oneshot::channel();
                match tx.send(Msg::Line { body, ack }).await {
                    Ok(()) => Queued::Waiting(done),
                    Err(_) => Queued::Written(Err(WriteError::Closed)),
                }
            }
        }
    }

    /// Writes everything handed over before this call, closes the file and
    /// stops the writer (and the syncer, after a last fsync).
    pub(crate) async fn close(&self) {
        match &self.path {
            WritePath::Grouped(writer) => {
                if let Some(mut syncer) = writer.close().await {
                    // Joins the thread after its last fsync: off the runtime.
                    let _ = tokio::task::spawn_blocking(move || syncer.stop()).await;
                }
            }
            WritePath::Thread(tx) => {
                let (ack, done) = oneshot::channel();
                if tx.send(Msg::Close { ack }).await.is_ok() {
                    // An error means the writer is already gone, which is the goal.
                    let _ = done.await;
                }
            }
        }
    }

    /// Number of `sync_data` calls so far.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.stats.fsyncs.load(Ordering::Relaxed)
    }

    /// Number of lines written and acknowledged so far.
    pub(crate) fn lines(&self) -> u64 {
        self.stats.lines.load(Ordering::Relaxed)
    }
}

/// Opens an audit file for appending and finds where its chain continues.
fn open_file(path: &std::path::Path, mode: Option<u32>) -> Result<(Sink, [u8; 64]), OpenError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(OpenError::Io)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode.unwrap_or(0o600))
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    // Devices, pipes and the like (e.g. /dev/full) are written as they are:
    // no chmod, no tail to read, no truncation, no fsync.
    if !meta.is_file() {
        return Ok((
            Sink::File {
                file,
                regular: false,
                len: 0,
            },
            GENESIS,
        ));
    }
    if let Some(mode) = mode {
        if meta.permissions().mode() & 0o777 != mode {
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(OpenError::Io)?;
        }
    }
    let tail = chain::read_tail(&file, meta.len())?;
    if tail.complete_len < meta.len() {
        // The remains of a write cut short (crash, full disk): it was never
        // acknowledged, and appending after it would corrupt the next line.
        file.set_len(tail.complete_len).map_err(OpenError::Io)?;
        file.sync_data().map_err(OpenError::Io)?;
    }
    Ok((
        Sink::File {
            file,
            regular: true,
            len: tail.complete_len,
        },
        tail.prev,
    ))
}

enum Sink {
    File { file: File, regular: bool, len: u64 },
    Stdout,
    Discard,
}

pub(super) struct Writer {
    sink: Sink,
    /// Hash of the last line written, the next line's `prev_hash`.
    pub(super) prev: [u8; 64],
    /// Set when a failure left the file in a state new lines must not follow
    /// (shared with the syncer, whose failed fsync also stops the device).
    pub(super) poisoned: Arc<AtomicBool>,
    /// Background fsync in batch mode; `None` syncs inline before acking.
    syncer: Option<Syncer>,
    stats: Arc<Stats>,
}

/// Least time between the starts of two batch-mode fsyncs. Under steady load
/// the file is always dirty; syncing back to back would spend a core's worth
/// of kernel time on flushes and compete with the storage's own fsyncs for
/// the disk, for a loss window (on power failure only) of a few milliseconds
/// either way.
const MIN_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// The batch-mode companion thread: fsyncs the file whenever lines were
/// written since its last fsync, at most once per `MIN_SYNC_INTERVAL`.
pub(super) struct Syncer {
    state: Arc<(Mutex<SyncState>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SyncState {
    dirty: bool,
    stop: bool,
}

impl Syncer {
    fn start(
        file: File,
        name: &str,
        poisoned: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> Result<Self, OpenError> {
        let state = Arc::new((Mutex::new(SyncState::default()), Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("audit-sync-{}", name.trim_end_matches('/')))
            .spawn(move || {
                let mut last_sync: Option<std::time::Instant> = None;
                loop {
                    let (lock, wake) = &*shared;
                    let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
                    while !st.dirty && !st.stop {
                        st = wake.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    let stop = st.stop && !st.dirty;
                    if stop {
                        return;
                    }
                    if !st.stop {
                        if let Some(wait) =
                            last_sync.and_then(|t| MIN_SYNC_INTERVAL.checked_sub(t.elapsed()))
                        {
                            // Let more lines gather; `dirty` stays set meanwhile.
                            drop(st);
                            std::thread::sleep(wait);
                            continue;
                        }
                    }
                    st.dirty = false;
                    drop(st);
                    last_sync = Some(std::time::Instant::now());
                    match file.sync_data() {
                        Ok(()) => {
                            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "audit fsync failed: device stopped");
                            poisoned.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
            .map_err(OpenError::Spawn)?;
        Ok(Syncer {
            state,
            thread: Some(thread),
        })
    }

    fn mark_dirty(&self) {
        let (lock, wake) = &*self.state;
        let was_dirty = std::mem::replace(
            &mut lock.lock().unwrap_or_else(|p| p.into_inner()).dirty,
            true,
        );
        // The syncer waits only while the file is clean; a notify is a
        // system call, so skip it when nobody can be waiting.
        if !was_dirty {
            wake.notify_one();
        }
    }

    /// Sync what is pending, then end the thread.
    pub(super) fn stop(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut acks: Vec<Ack> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            buf.clear();
            let mut chain = self.prev;
            let mut close = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Line { body, ack } => {
                        let start = buf.len();
                        buf.extend_from_slice(&body);
                        chain = chain::seal_line(&mut buf, start, &chain);
                        acks.push(ack);
                    }
                    Msg::Close { ack } => {
                        close = Some(ack);
                        break;
                    }
                }
                if acks.len() < MAX_GROUP_LINES && buf.len() < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !acks.is_empty() {
                let result = self.append(&buf);
                if result.is_ok() {
                    self.prev = chain;
                    self.stats
                        .lines
                        .fetch_add(acks.len() as u64, Ordering::Relaxed);
                }
                for ack in acks.drain(..) {
                    // A caller that gave up waiting is no reason to stop.
                    let _ = ack.send(result.clone());
                }
            }
            if let Some(ack) = close {
                // Refuse new lines before answering, so nothing is queued
                // to a device its owner believes closed; lines queued after
                // the close are dropped unwritten and their callers told so.
                rx.close();
                if let Some(mut syncer) = self.syncer.take() {
                    syncer.stop();
                }
                self.sink = Sink::Discard;
                let _ = ack.send(());
                return;
            }
        }
    }

    /// Counts lines written and acknowledged.
    pub(super) fn count_lines(&self, lines: u64) {
        self.stats.lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// Writes no more (closed): returns the syncer, to be stopped.
    pub(super) fn retire(&mut self) -> Option<Syncer> {
        self.sink = Sink::Discard;
        self.syncer.take()
    }

    /// Appends one group and makes it durable.
    pub(super) fn append(&mut self, buf: &[u8]) -> Result<(), WriteError> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(WriteError::Poisoned);
        }
        match &mut self.sink {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf)
                    .and_then(|()| out.flush())
                    .map_err(|err| WriteError::Write(err.kind()))
            }
            Sink::File { file, regular, len } => {
                if let Err(err) = file.write_all(buf) {
                    // Cut off the partly written group so the file keeps only
                    // whole, chained lines; if that fails, stop writing.
                    if *regular && file.set_len(*len).is_err() {
                        self.poisoned.store(true, Ordering::SeqCst);
                    }
                    return Err(WriteError::Write(err.kind()));
                }
                if let Some(syncer) = &self.syncer {
                    syncer.mark_dirty();
                } else if *regular {
                    if let Err(err) = file.sync_data() {
                        // After a failed fsync the file's state on disk is
                        // unknown; later lines could not be trusted to chain.
                        self.poisoned.store(true, Ordering::SeqCst);
                        return Err(WriteError::Sync(err.kind()));
                    }
                    self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                *len += buf.len() as u64;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::Format;
    use super::*;
    use std::path::PathBuf;

    fn file_options(path: PathBuf, mode: Option<u32>) -> FileOptions {
        FileOptions {
            target: Target::File(path),
            mode,
            format: Format::default(),
            sync: SyncMode::Always,
        }
    }

    #[test]
    fn a_new_file_gets_the_mode_and_a_missing_directory_is_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/audit.log");
        drop(FileDevice::open(&file_options(path.clone(), Some(0o600)), "file/").expect("open"));
        assert_eq!(
            std::fs::metadata(&path)
                .expect("created")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        drop(FileDevice::open(&file_options(path.clone(), Some(0o640)), "file/").expect("reopen"));
        assert_eq!(
            std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        drop(FileDevice::open(&file_options(path.clone(), None), "file/").expect("reopen"));
        assert_eq!(
            std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
    }

    #[test]
    fn a_foreign_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("other.log");
        std::fs::write(&path, "somebody else's log\npartial").expect("write");
        let err = FileDevice::open(&file_options(path.clone(), Some(0o600)), "file/").err();
        assert!(matches!(err, Some(OpenError::Foreign)), "{err:?}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "somebody else's log\npartial"
        );
    }

    /// Both write paths: the writer thread (`always`) and the caller's own
    /// write (`batch`).
    #[tokio::test]
    async fn lines_are_chained_and_a_torn_tail_is_cut_on_reopen() {
        for sync in [SyncMode::Always, SyncMode::Batch] {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("audit.log");
            let options = FileOptions {
                sync,
                ..file_options(path.clone(), Some(0o600))
            };
            let device = FileDevice::open(&options, "file/").expect("open");
            assert_eq!(
                matches!(device.path, WritePath::Grouped(_)),
                sync == SyncMode::Batch
            );
            for i in 0..3 {
                let line = Arc::new(format!("{{\"n\":{i}").into_bytes());
                device.submit(line).await.done().await.expect("written");
            }
            device.close().await;
            assert_eq!(device.lines(), 3);
            assert!(device.fsyncs() >= 1, "{sync:?}: synced at least at close");
            let mut file = OpenOptions::new().append(true).open(&path).expect("open");
            file.write_all(b"{\"n\":3,\"prev_ha").expect("torn write");
            drop(file);

            let device = FileDevice::open(&options, "file/").expect("reopen");
            let line = Arc::new(b"{\"n\":4".to_vec());
            device.submit(line).await.done().await.expect("written");
            device.close().await;
            assert_eq!(chain::verify(&path).expect("chain continues").lines, 4);
            let after_close = device.submit(Arc::new(b"{\"n\":5".to_vec())).await;
            assert!(
                matches!(after_close.done().await, Err(WriteError::Closed)),
                "{sync:?}: a closed device takes no lines"
            );
            assert_eq!(chain::verify(&path).expect("unchanged").lines, 4);
        }
    }

    /// Hands `line` to `device` and waits for its outcome.
    async fn record(device: &FileDevice, line: &[u8]) -> Result<(), WriteError> {
        device.submit(Arc::new(line.to_vec())).await.done().await
    }

    fn batch_device(path: &std::path::Path) -> FileDevice {
        let options = FileOptions {
            sync: SyncMode::Batch,
            ..file_options(path.to_path_buf(), Some(0o600))
        };
        FileDevice::open(&options, "file/").expect("open")
    }

    /// Many tasks on two threads write at once: every line is acknowledged,
    /// the file holds them all in one unbroken chain, and lines added but not
    /// yet written when the device closes are written by the close.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_grouped_lines_form_one_chain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let device = Arc::new(batch_device(&path));
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let device = device.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let line = Arc::new(format!("{{\"t\":{t},\"i\":{i}").into_bytes());
                        device.submit(line).await.done().await.expect("written");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let added: Vec<_> = {
            let mut added = Vec::new();
            for i in 0..5 {
                let line = Arc::new(format!("{{\"last\":{i}").into_bytes());
                added.push(device.submit(line).await);
            }
            added
        };
        device.close().await;
        for queued in added {
            queued.done().await.expect("written by the close");
        }
        assert_eq!(device.lines(), 1605);
        assert_eq!(chain::verify(&path).expect("one chain").lines, 1605);
    }

    /// A failed group write fails every line of the group, and the chain goes
    /// on from the last line the file holds.
    #[tokio::test]
    async fn a_failed_group_write_fails_its_lines_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let device = batch_device(&path);
        let WritePath::Grouped(writer) = &device.path else {
            panic!("batch mode on a regular file groups its writes");
        };
        record(&device, b"{\"n\":0").await.expect("written");
        let poisoned = writer.poisoned_flag();
        poisoned.store(true, Ordering::SeqCst);
        let first = device.submit(Arc::new(b"{\"n\":1".to_vec())).await;
        let second = device.submit(Arc::new(b"{\"n\":2".to_vec())).await;
        assert!(matches!(first.done().await, Err(WriteError::Poisoned)));
        assert!(matches!(second.done().await, Err(WriteError::Poisoned)));
        poisoned.store(false, Ordering::SeqCst);
        record(&device, b"{\"n\":3").await.expect("written");
        device.close().await;
        assert_eq!(device.lines(), 2);
        assert_eq!(chain::verify(&path).expect("unbroken chain").lines, 2);
    }

    #[tokio::test]
    async fn writes_to_a_full_device_fail() {
        let device = FileDevice::open(&file_options("/dev/full".into(), Some(0o600)), "full/")
            .expect("open");
        let result = device
            .submit(Arc::new(b"{\"n\":1".to_vec()))
            .await
            .done()
            .await;
        assert!(matches!(result, Err(WriteError::Write(_))), "{result:?}");
        assert_eq!(device.lines(), 0);
        // The device node keeps its mode: nothing is chmod'ed but regular files.
        let mode = std::fs::metadata("/dev/full")
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_ne!(mode, 0o600);
    }
}
