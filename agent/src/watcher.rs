//! One long poll per watched KV v2 secret on the core's change stream
//! (`sys/cairn/watch/<path>`), reporting changes to the agent's loop.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::Client;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::health::HealthState;

/// How long one poll waits for a change (the core caps it at 60 s; the
/// client's request timeout is longer).
pub const WATCH_WAIT: Duration = Duration::from_secs(30);

/// What a watcher tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Source `n` changed (or its state is first known): read it again.
    Changed(usize),
    /// The core refused source `n`'s watch with 403: the token may be gone.
    Denied(usize),
}

/// Watch `path` (source `source`) until the task is aborted or the loop is
/// gone. The first poll asks for the current index and reports a change, so
/// a write between the loop's read and the first poll is not missed.
pub async fn watch_loop(
    source: usize,
    path: String,
    clients: watch::Receiver<Client>,
    events: mpsc::Sender<Event>,
    state: Arc<HealthState>,
) {
    let mut index = String::new();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        // The loop replaces the client when it logs in again.
        let client = clients.borrow().clone();
        let wait = if index.is_empty() {
            Duration::ZERO
        } else {
            WATCH_WAIT
        };
        match client.watch_secret(&path, &index, wait).await {
            Ok(answer) => {
                backoff.reset();
                index = answer.index;
                if answer.changed {
                    state.metrics.change();
                    if events.send(Event::Changed(source)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                match e.status() {
                    Some(400) => {
                        tracing::warn!(path = %path, error = %e, "the core cannot watch this path; changes will not be seen");
                        return;
                    }
                    Some(403) => {
                        tracing::warn!(path = %path, "watch denied");
                        if events.send(Event::Denied(source)).await.is_err() {
                            return;
                        }
                    }
                    _ => {
                        state.metrics.core_error();
                        tracing::debug!(path = %path, error = %e, "watch failed; retrying");
                    }
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
