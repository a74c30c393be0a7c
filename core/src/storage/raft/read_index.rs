//! Read-index rounds shared by concurrent readers.
//!
//! A linearizable read needs the leader's commit index from a round that
//! started after the read arrived (the leader confirms its leadership with a
//! quorum, then answers its commit index). Run one round per read and 32
//! concurrent readers cost 32 quorum round trips; here every reader joins the
//! next round that has not started yet, and one round answers all of them.
//! That is still linearizable: the round a reader gets started after the
//! reader arrived, so its index covers every write acknowledged before.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::storage::{no_leader, LeaderLink};
use super::types::{typ, NodeInfo};
use crate::storage::StorageError;

type Outcome = Option<Result<u64, StorageError>>;

/// The shared rounds of one node.
pub struct ReadIndexRounds {
    raft: typ::Raft,
    link: Arc<dyn LeaderLink>,
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The round readers join now; it starts when the running one ends.
    next: Option<watch::Sender<Outcome>>,
    /// Whether a driver task is running rounds.
    driving: bool,
}

impl ReadIndexRounds {
    pub fn new(raft: typ::Raft, link: Arc<dyn LeaderLink>, timeout: Duration) -> Arc<Self> {
        Arc::new(ReadIndexRounds {
            raft,
            link,
            timeout,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The read index of a round that starts after this call.
    pub async fn read_index(self: &Arc<Self>) -> Result<u64, StorageError> {
        let mut outcome = {
            let mut state = self.lock();
            let rx = match &state.next {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    state.next = Some(tx);
                    rx
                }
            };
            if !state.driving {
                state.driving = true;
                tokio::spawn(self.clone().drive());
            }
            rx
        };
        loop {
            if let Some(result) = outcome.borrow_and_update().clone() {
                return result;
            }
            if outcome.changed().await.is_err() {
                return Err(no_leader());
            }
        }
    }

    /// Run rounds while readers wait for one, then stop.
    async fn drive(self: Arc<Self>) {
        loop {
            let round = {
                let mut state = self.lock();
                match state.next.take() {
                    Some(tx) => tx,
                    None => {
                        state.driving = false;
                        return;
                    }
                }
            };
            let result = self.one_round().await;
            // Nobody listening (every reader gave up) is fine.
            let _ = round.send(Some(result));
        }
    }

    /// One round through whoever leads now, retried until the timeout while
    /// leadership is changing (an election, a leader's death).
    async fn one_round(&self) -> Result<u64, StorageError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let attempt = async {
                let (leader_id, leader) = current_leader(&self.raft, self.timeout).await?;
                if leader_id == self.raft.metrics().borrow().id {
                    local_read_index(&self.raft, self.timeout).await
                } else {
                    self.link.read_index(&leader).await
                }
            };
            match attempt.await {
                Ok(index) => return Ok(index),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// The current leader's id and description, waiting up to `timeout` for an
/// election to finish.
pub async fn current_leader(
    raft: &typ::Raft,
    timeout: Duration,
) -> Result<(u64, NodeInfo), StorageError> {
    let deadline = Instant::now() + timeout;
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            if let Some(id) = m.current_leader {
                if let Some(node) = m.membership_config.membership().get_node(&id) {
                    return Ok((id, node.clone()));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, metrics.changed()).await.is_err() {
            return Err(no_leader());
        }
    }
}

/// On the leader: confirm leadership with a quorum, then the index reads must
/// wait for.
pub async fn local_read_index(raft: &typ::Raft, timeout: Duration) -> Result<u64, StorageError> {
    match tokio::time::timeout(timeout, raft.get_read_log_id()).await {
        Ok(Ok((read, _applied))) => Ok(read.map(|id| id.index).unwrap_or(0)),
        Ok(Err(_)) | Err(_) => Err(no_leader()),
    }
}
