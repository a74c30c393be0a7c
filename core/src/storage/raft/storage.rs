//! [`RaftStorage`]: the [`Storage`] trait over openraft. Reads are local
//! state-machine reads (callers that need linearizability first pass a
//! [`RaftStorage::read_barrier`]); writes go through the leader's log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::types::{typ, NodeInfo, WireOp};
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
    sm: StateMachine,
    log: LogStore,
    link: Arc<dyn LeaderLink>,
    timeout: Duration,
    /// Read-index rounds shared by concurrent readers.
    reads: Arc<super::read_index::ReadIndexRounds>,
    /// Group commit of the leader's writes.
    proposer: Arc<super::proposer::Proposer>,
}

tokio::task_local! {
    /// The leader term the current request runs in, set by the cluster router
    /// around a request it serves as the leader. Storage writes made under it
    /// are proposed only here and only apply in that term (see
    /// [`Request::term`]), because they were computed from what this leader
    /// read in it.
    pub static LEADER_TERM: LeaderTerm;
}

/// A request served as the leader of one term (see [`LEADER_TERM`]).
pub struct LeaderTerm {
    term: u64,
    committed: AtomicBool,
}

impl LeaderTerm {
    /// A request about to run as the leader of `term`.
    pub fn new(term: u64) -> Self {
        LeaderTerm {
            term,
            committed: AtomicBool::new(false),
        }
    }

    /// Whether the request committed a write in its term. A quorum accepted
    /// that entry, which proves this node led the term when the request's
    /// reads were current; a request that committed nothing must confirm its
    /// leadership before it answers from what it read.
    pub fn committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }
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
            reads: super::read_index::ReadIndexRounds::new(raft.clone(), link.clone(), timeout),
            proposer: super::proposer::Proposer::new(raft.clone(), timeout),
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

    /// Run `hook` with the keys of every apply before it counts as applied
    /// (see [`StateMachine::set_apply_hook`]).
    pub fn set_apply_hook(&self, hook: super::state_machine::ApplyHook) {
        self.sm.set_apply_hook(hook);
    }

    /// Wake after each apply that changed keys.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sm.subscribe()
    }

    /// (fsynced log appends, entries appended) since start.
    pub fn append_stats(&self) -> (u64, u64) {
        self.log.append_stats()
    }

    /// The current leader's id and description, waiting up to the timeout for
    /// an election to finish.
    pub async fn leader(&self) -> Result<(u64, NodeInfo), StorageError> {
        super::read_index::current_leader(&self.raft, self.timeout).await
    }

    /// Every key and its (ciphertext) value in this node's state machine.
    pub fn export(&self) -> Vec<(String, Vec<u8>)> {
        self.sm.export()
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

    /// Whether this node is the leader and the only voter of the membership
    /// it knows (the latest in its log, committed or not; not a joint one).
    /// No other node can then be elected, as with a read-index round, whose
    /// quorum would be this node alone.
    fn leads_alone(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let voters = m.membership_config.membership().get_joint_config();
        m.current_leader == Some(m.id)
            && voters.len() == 1
            && voters[0].len() == 1
            && voters[0].contains(&m.id)
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
        if self.leads_alone() {
            // The only voter is the leader: a read-index round would ask a
            // quorum of one, itself. Every write it acknowledged was applied
            // here first, so once the entries of earlier terms are applied
            // its state machine is current.
            return self.leader_caught_up().await;
        }
        let index = self.shared_read_index().await?;
        self.wait_applied(index).await
    }

    /// A read index from a round that starts after this call, shared with
    /// every concurrent caller (see [`super::read_index`]).
    pub async fn shared_read_index(&self) -> Result<u64, StorageError> {
        self.reads.read_index().await
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

    /// On the leader: commit `ops` atomically (in a log entry shared with
    /// concurrent writers, see [`super::proposer`]) and wait until it is
    /// applied here.
    pub async fn propose(&self, ops: Vec<WireOp>) -> Result<ProposeOutcome, StorageError> {
        self.proposer.propose(ops, None).await
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

/// What happened to a proposal.
#[derive(Debug, Clone)]
pub enum ProposeOutcome {
    /// Committed by a quorum and applied locally, at this log index.
    Committed(u64),
    /// This node is not the leader; the leader, if known.
    NotLeader(Option<NodeInfo>),
}

#[async_trait]
impl Storage for RaftStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.sm.get(key))
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let ops: Vec<WireOp> = ops.into_iter().map(WireOp::from).collect();
        if let Ok(term) = LEADER_TERM.try_with(|t| t.term) {
            // A read-modify-write commits where and when it read: never
            // forwarded, and only in the term it read in.
            self.proposer.propose(ops, Some(term)).await?;
            LEADER_TERM.with(|t| t.committed.store(true, Ordering::Release));
            return Ok(());
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
        Ok(self.sm.keys_with_prefix(prefix))
    }
}
