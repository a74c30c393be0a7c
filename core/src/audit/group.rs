//! Group writes for batch mode on a regular file: many requests' lines, one
//! `write`.
//!
//! A caller chains its line onto a shared buffer under a short lock. If no
//! write is in progress it becomes the writer: it takes the whole buffer and
//! writes it, outside the lock, with one system call. Callers that arrive
//! while a write is in progress wait for it without blocking their thread
//! (the wait is a task's, so the worker runs other requests meanwhile); when
//! the write ends, its writer wakes one of them to write the next group.
//!
//! Before this, each line was written under a mutex by its own caller: two
//! `write` calls per request, and the other worker thread blocked in the
//! kernel on the mutex whenever they met.
//!
//! A failed write fails its group and every line chained after it (their
//! chain starts from lines the file does not hold); the chain goes back to
//! the last line written. The file is cut back to that line by
//! `Writer::append`.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;

use super::chain;
use super::file::{Syncer, WriteError, Writer};

/// Lines whose fate is decided together: written in one `write`, or not.
#[derive(Default)]
pub(crate) struct Group {
    outcome: OnceLock<Result<(), WriteError>>,
    /// Woken when the outcome is set (all waiters), or to hand the writing
    /// over (one waiter).
    changed: Notify,
}

pub(crate) struct GroupWriter {
    state: Mutex<State>,
    /// Held only by the one writer of the moment (see `State::writing`).
    writer: Mutex<Writer>,
    /// Woken after each write, for `close`.
    idle: Notify,
}

struct State {
    /// Chain head after the last buffered line.
    prev: [u8; 64],
    /// Chain head after the last line the file holds.
    written: [u8; 64],
    /// Chained lines waiting for a writer, and the group they form.
    buf: Vec<u8>,
    lines: u64,
    group: Arc<Group>,
    /// The buffer the last write used, kept for the next group.
    spare: Vec<u8>,
    writing: bool,
    closed: bool,
}

/// A group taken for writing.
struct Batch {
    buf: Vec<u8>,
    lines: u64,
    group: Arc<Group>,
    chain: [u8; 64],
}

impl GroupWriter {
    /// Takes over `writer`; its chain head is kept here from now on.
    pub(crate) fn new(writer: Writer) -> Self {
        let prev = writer.prev;
        GroupWriter {
            state: Mutex::new(State {
                prev,
                written: prev,
                buf: Vec::with_capacity(16 * 1024),
                lines: 0,
                group: Arc::default(),
                spare: Vec::with_capacity(16 * 1024),
                writing: false,
                closed: false,
            }),
            writer: Mutex::new(writer),
            idle: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chains `body` onto the buffer; the returned group says when it is
    /// written (see [`GroupWriter::wait`]).
    pub(crate) fn add(&self, body: &[u8]) -> Result<Arc<Group>, WriteError> {
        let mut st = self.state();
        if st.closed {
            return Err(WriteError::Closed);
        }
        let start = st.buf.len();
        st.buf.extend_from_slice(body);
        let prev = st.prev;
        st.prev = chain::seal_line(&mut st.buf, start, &prev);
        st.lines += 1;
        Ok(st.group.clone())
    }

    /// The outcome of `group`'s write, writing it (and then being done) if
    /// no write is in progress.
    pub(crate) async fn wait(&self, group: &Group) -> Result<(), WriteError> {
        // Step aside once before writing: the requests already waiting on
        // this thread then add their lines first, and one write takes them
        // all (without it, groups rarely hold more than one line).
        tokio::task::yield_now().await;
        loop {
            let changed = group.changed.notified();
            tokio::pin!(changed);
            // Registered before the checks below, so no wake-up is missed.
            changed.as_mut().enable();
            if let Some(outcome) = group.outcome.get() {
                return outcome.clone();
            }
            if let Some(batch) = self.take_if_idle(Some(group)) {
                self.write(batch);
                continue;
            }
            changed.await;
        }
    }

    /// The buffered group, if no write is in progress and (when `group` is
    /// given) it is that group.
    fn take_if_idle(&self, group: Option<&Group>) -> Option<Batch> {
        let mut st = self.state();
        let ours = group.is_none_or(|g| std::ptr::eq(g, Arc::as_ptr(&st.group)));
        if st.writing || st.lines == 0 || !ours {
            return None;
        }
        st.writing = true;
        let spare = std::mem::take(&mut st.spare);
        Some(Batch {
            buf: std::mem::replace(&mut st.buf, spare),
            lines: std::mem::take(&mut st.lines),
            group: std::mem::take(&mut st.group),
            chain: st.prev,
        })
    }

    /// Writes a batch (one system call, outside the state lock), settles its
    /// group and hands the writing to the next group, if one is waiting.
    fn write(&self, mut batch: Batch) {
        let result = {
            let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let result = writer.append(&batch.buf);
            if result.is_ok() {
                writer.count_lines(batch.lines);
            }
            result
        };
        let mut failed_after = None;
        let next = {
            let mut st = self.state();
            st.writing = false;
            batch.buf.clear();
            st.spare = std::mem::take(&mut batch.buf);
            if result.is_ok() {
                st.written = batch.chain;
            } else if st.lines > 0 {
                // Chained onto lines the file does not hold: they fail too.
                st.buf.clear();
                st.lines = 0;
                st.prev = st.written;
                failed_after = Some(std::mem::take(&mut st.group));
            } else {
                st.prev = st.written;
            }
            (st.lines > 0).then(|| st.group.clone())
        };
        settle(&batch.group, result.clone());
        if let Some(group) = failed_after {
            settle(&group, result);
        }
        if let Some(next) = next {
            next.changed.notify_one();
        }
        self.idle.notify_waiters();
    }

    /// Refuses new lines, writes those already added, and retires the
    /// writer; returns its syncer, to be stopped off the runtime.
    pub(crate) async fn close(&self) -> Option<Syncer> {
        self.state().closed = true;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if let Some(batch) = self.take_if_idle(None) {
                self.write(batch);
                continue;
            }
            let done = {
                let st = self.state();
                !st.writing && st.lines == 0
            };
            if done {
                return self
                    .writer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retire();
            }
            idle.await;
        }
    }
}

#[cfg(test)]
impl GroupWriter {
    /// The flag that stops the writer, to make its next write fail.
    pub(super) fn poisoned_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .poisoned
            .clone()
    }
}

fn settle(group: &Group, outcome: Result<(), WriteError>) {
    let _ = group.outcome.set(outcome);
    group.changed.notify_waiters();
}
