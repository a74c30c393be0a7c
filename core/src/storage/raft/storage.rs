//! [`RaftStorage`]: the [`Storage`] trait over openraft. Reads are local
//! state-machine reads (callers that need linearizability first pass a
//! [`RaftStorage::read_barrier`]); writes go through the leader's log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redb::Database;
use async_trait::async_trait;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::broadcast;

use super::state_machine::{export_pairs, read_key, scan_prefix, Changes};
use super::types::{typ, NodeInfo, Request, WireOp};
use super::{LogStore, StateMachine};
use crate::storage::{Op, Storage, StorageError};

/// How a follower reaches the leader: forward a write batch, ask for the read
/// index. Implemented by the cluster transport.
#[async_trait]
pub trait LeaderLink: Send + Sync + 'static {
    /// Have the leader commit `ops` as one log entry; the entry's index.
    async fn forward_batch(&self, leader: &NodeInfo, ops: Vec<WireOp>)
        -> Result<u64, StorageError>;
    /// The leader's commit index once it has confirmed its leadership.
    async fn read_index(&self, leader: &NodeInfo) -> Result<u64, StorageError>;
}

/// Storage replicated by Raft.
pub struct RaftStorage {
    raft: typ::Raft,
    db: Arc<Database>,
    sm: StateMachine,
    log: LogStore,
    link: Arc<dyn LeaderLink>,
    timeout: Duration,
}

tokio::task_local! {
    /// The leader term the current request runs in, set by the cluster router
    /// around a request it serves as the leader. Storage writes made under it
    /// are proposed only here and only apply in that term (see
    /// [`Request::term`]), because they were computed from what this leader
    /// read in it.
    pub static LEADER_TERM: u64;
}

/// The error a node without a reachable leader gives: it cannot know whether
/// a majority elsewhere moved on, so it neither writes nor reads consistently.
pub fn no_leader() -> StorageError {
    StorageError::Unavailable(
        "no raft leader: this node cannot reach a quorum of the cluster; writes are refused and reads need X-Cairn-Consistency: stale"
            .to_owned(),
    )
}

impl RaftStorage {
    /// Storage over a running `raft` whose state machine is `sm`. Writes and
    /// barriers give up after `timeout` without a leader.
    pub fn new(
        raft: typ::Raft,
        log: LogStore,
        sm: StateMachine,
        link: Arc<dyn LeaderLink>,
        timeout: Duration,
    ) -> Self {
        RaftStorage {
            db: sm.database(),
            raft,
            sm,
            log,
            link,
            timeout,
        }
    }

    /// The Raft handle (membership changes, metrics).
    pub fn raft(&self) -> &typ::Raft {
        &self.raft
    }

    /// Subscribe to the keys each applied entry changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Changes> {
        self.sm.subscribe()
    }

    /// (fsynced log appends, entries appended) since start.
    pub fn append_stats(&self) -> (u64, u64) {
        self.log.append_stats()
    }

    /// The current leader's id and description, waiting up to the timeout for
    /// an election to finish.
    pub async fn leader(&self) -> Result<(u64, NodeInfo), StorageError> {
        let deadline = Instant::now() + self.timeout;
        let mut metrics = self.raft.metrics();
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

    /// Every key and its (ciphertext) value in this node's state machine.
    pub async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || export_pairs(&db))
            .await
            .map_err(|e| StorageError::Io(e.to_string()))?
    }

    /// On a leader: wait until its state machine has applied an entry of its
    /// own term, so every entry committed by earlier leaders is applied and a
    /// read-modify-write (check-and-set, versions) reads current state.
    pub async fn leader_caught_up(&self) -> Result<(), StorageError> {
        self.raft
            .wait(Some(self.timeout))
            .metrics(
                |m| m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term),
                "leader applied its own term",
            )
            .await
            .map(|_| ())
            .map_err(|_| no_leader())
    }

    /// Whether this node is the leader right now (no round trip).
    pub fn is_leader(&self) -> bool {
        self.leader_term().is_some()
    }

    /// The term this node leads in, if it is the leader right now.
    pub fn leader_term(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.current_leader == Some(m.id)).then_some(m.current_term)
    }

    /// Wait until this node's state machine reflects every write committed
    /// before the call: the leader confirms its leadership with a quorum and
    /// hands out its commit index (read-index), then this node waits to apply it.
    pub async fn read_barrier(&self) -> Result<(), StorageError> {
        // Leadership may be changing (a restarted node's election, a leader's
        // death): retry until the timeout before calling the cluster unavailable.
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.read_index().await {
                Ok(index) => return self.wait_applied(index).await,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// One read-index round through whoever leads now.
    async fn read_index(&self) -> Result<u64, StorageError> {
        let (leader_id, leader) = self.leader().await?;
        let my_id = self.raft.metrics().borrow().id;
        if leader_id == my_id {
            self.local_read_index().await
        } else {
            self.link.read_index(&leader).await
        }
    }

    /// Wait until the local state machine has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), StorageError> {
        self.raft
            .wait(Some(self.timeout))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|_| {
                StorageError::Unavailable("timed out catching up with the raft leader".to_owned())
            })?;
        Ok(())
    }

    /// On the leader: confirm leadership with a quorum, then the index reads must
    /// wait for.
    pub async fn local_read_index(&self) -> Result<u64, StorageError> {
        match tokio::time::timeout(self.timeout, self.raft.get_read_log_id()).await {
            Ok(Ok((read, _applied))) => Ok(read.map(|id| id.index).unwrap_or(0)),
            Ok(Err(_)) | Err(_) => Err(no_leader()),
        }
    }

    /// A read-modify-write computed by this node as leader of `term`: commit
    /// it here, never forwarded, and only if appended in `term`.
    ///
    /// It returns only once the entry is applied or this node stopped leading
    /// `term` — never on a timeout. The caller holds its key's write lock
    /// until then, and the next writer of the key must not read before this
    /// entry is applied; once the term has ended, nothing of it can be
    /// appended any more, and a new term's writers read after everything
    /// earlier terms committed.
    async fn propose_in_term(&self, ops: Vec<WireOp>, term: u64) -> Result<(), StorageError> {
        let write = self.raft.client_write(Request {
            ops,
            term: Some(term),
        });
        let deposed = async {
            let mut metrics = self.raft.metrics();
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if m.current_leader != Some(m.id) || m.current_term != term {
                        return;
                    }
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            written = write => match written {
                Ok(resp) if resp.data.stale_term => Err(leadership_moved()),
                Ok(_) => Ok(()),
                Err(_) => Err(outcome_unknown()),
            },
            () = deposed => Err(outcome_unknown()),
        }
    }

    /// On the leader: append `ops` as one entry and wait until it is committed
    /// and applied here. With `term`, the entry applies only if appended in
    /// that term; otherwise nothing is written and the caller learns so.
    pub async fn propose(&self, ops: Vec<WireOp>) -> Result<ProposeOutcome, StorageError> {
        let write = self.raft.client_write(Request { ops, term: None });
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(resp)) => Ok(ProposeOutcome::Committed(resp.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Ok(ProposeOutcome::NotLeader(f.leader_node))
            }
            Ok(Err(e)) => Err(StorageError::Unavailable(format!("raft write failed: {e}"))),
            // The entry may still commit later; the caller only learns it did not in time.
            Err(_) => Err(StorageError::Unavailable(
                "timed out waiting for a raft quorum to commit the write".to_owned(),
            )),
        }
    }
}

/// The error for a write refused because leadership changed while its
/// request ran: nothing was written, so the client may safely retry.
pub fn leadership_moved() -> StorageError {
    StorageError::Unavailable(
        "raft leadership changed while the request ran; nothing was written, retry the request"
            .to_owned(),
    )
}

/// The error for a write whose fate this node can no longer learn: its
/// entry may still be committed by the next leader, or dropped.
fn outcome_unknown() -> StorageError {
    StorageError::Unavailable(
        "raft leadership changed before the write was confirmed; it may or may not have been applied"
            .to_owned(),
    )
}

/// What happened to a proposal.
#[derive(Debug)]
pub enum ProposeOutcome {
    /// Committed by a quorum and applied locally, at this log index.
    Committed(u64),
    /// This node is not the leader; the leader, if known.
    NotLeader(Option<NodeInfo>),
}

#[async_trait]
impl Storage for RaftStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let db = Arc::clone(&self.db);
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || read_key(&db, &key))
            .await
            .map_err(|e| StorageError::Io(e.to_string()))?
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let ops: Vec<WireOp> = ops.into_iter().map(WireOp::from).collect();
        if let Ok(term) = LEADER_TERM.try_with(|t| *t) {
            return self.propose_in_term(ops, term).await;
        }
        if self.is_leader() {
            match self.propose(ops.clone()).await? {
                ProposeOutcome::Committed(_) => return Ok(()),
                // Leadership moved between the check and the proposal: forward below.
                ProposeOutcome::NotLeader(_) => {}
            }
        }
        let (_, leader) = self.leader().await?;
        let index = self.link.forward_batch(&leader, ops).await?;
        // Make the write visible here too before answering, so a caller reading
        // back from this node sees its own write.
        self.wait_applied(index).await
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let db = Arc::clone(&self.db);
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || scan_prefix(&db, &prefix))
            .await
            .map_err(|e| StorageError::Io(e.to_string()))?
    }
}
