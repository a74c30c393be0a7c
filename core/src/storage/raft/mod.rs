//! Raft-replicated storage: the [`Storage`](super::Storage) map kept identical
//! on every node by openraft. Under the raft `path`, the log is a directory of
//! append-only segment files (`raft-log/`); the state machine is a map in
//! memory with its snapshot file in `raft-sm/`. Log entries and snapshots
//! carry barrier ciphertext only.

pub mod codec;
pub mod log_store;
pub mod proposer;
pub mod read_index;
pub mod state_machine;
pub mod storage;
pub mod types;

pub use log_store::LogStore;
pub use state_machine::{Applied, StateMachine};
pub use storage::{
    leadership_moved, no_leader, LeaderLink, LeaderTerm, ProposeOutcome, RaftStorage, LEADER_TERM,
};
pub use types::{node_id_of, typ, NodeInfo, Request, Response, TypeConfig, WireOp};

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), typ::StorageError> {
            let dir = tempfile::tempdir().map_err(|e| {
                openraft::StorageIOError::write(openraft::AnyError::error(e.to_string()))
            })?;
            let log = LogStore::open(&dir.path().join("raft-log"))?;
            let sm = StateMachine::open(&dir.path().join("raft-sm"))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's storage conformance suite over the segment-file log store and
    /// the in-memory state machine.
    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }
}
