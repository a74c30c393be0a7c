//! The Raft type configuration: what a log entry carries (barrier ciphertext
//! only), what a node is, and the `typ` aliases the rest of the code uses.

use std::fmt;
use std::io::Cursor;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::Op;

openraft::declare_raft_types!(
    /// Cairn's Raft types: a log entry is one [`Request`] (a batch of storage
    /// writes); nodes are numbered by [`node_id_of`] and described by [`NodeInfo`].
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Short names for openraft's generic types over [`TypeConfig`].
pub mod typ {
    use super::TypeConfig;

    pub type Raft = openraft::Raft<TypeConfig>;
    pub type Entry = openraft::Entry<TypeConfig>;
    pub type LogId = openraft::LogId<u64>;
    pub type Vote = openraft::Vote<u64>;
    pub type StoredMembership = openraft::StoredMembership<u64, super::NodeInfo>;
    pub type SnapshotMeta = openraft::SnapshotMeta<u64, super::NodeInfo>;
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    pub type StorageError = openraft::StorageError<u64>;
    pub type RaftMetrics = openraft::RaftMetrics<u64, super::NodeInfo>;
    pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<u64>;
    pub type VoteRequest = openraft::raft::VoteRequest<u64>;
    pub type VoteResponse = openraft::raft::VoteResponse<u64>;
    pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<u64>;
}

/// A peer as the membership config records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The operator's name for the node (`node_id` in the config).
    pub name: String,
    /// `host:port` of the node's cluster (peer TLS) listener.
    pub cluster_addr: String,
    /// The node's client API address (`api_addr`), reported by `sys/leader`.
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.cluster_addr)
    }
}

/// The Raft node id of a node name: the first 8 bytes of its SHA-256. Names
/// are what operators pick (Vault's `node_id`); openraft wants an integer.
pub fn node_id_of(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One storage write as it travels in the log (values are base64 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum WireOp {
    /// Store a value.
    Put {
        key: String,
        #[serde(with = "b64")]
        value: Vec<u8>,
    },
    /// Remove a key.
    Delete { key: String },
}

impl From<Op> for WireOp {
    fn from(op: Op) -> Self {
        match op {
            Op::Put { key, value } => WireOp::Put { key, value },
            Op::Delete { key } => WireOp::Delete { key },
        }
    }
}

impl WireOp {
    /// The key this op writes.
    pub fn key(&self) -> &str {
        match self {
            WireOp::Put { key, .. } | WireOp::Delete { key } => key,
        }
    }
}

/// A log entry's application payload: storage writes applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Applied in order, all in one state-machine transaction.
    pub ops: Vec<WireOp>,
    /// The leader term the proposer read its state in. A read-modify-write
    /// (a KV version, a check-and-set) is only correct in the term it read:
    /// the entry applies only if it was appended in that same term, so a
    /// deposed leader's late write, or one a new leader received from it, is
    /// refused instead of overwriting what the new leader wrote meanwhile.
    /// `None`: a blind write that applies in any term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
}

/// What applying a [`Request`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The entry was appended in another term than it was read in, so its
    /// writes were skipped (see [`Request::term`]).
    #[serde(default)]
    pub stale_term: bool,
}

/// Serde helper: bytes as standard base64 text.
pub mod b64 {
    use super::*;

    /// Serialize bytes as base64.
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Deserialize base64 text into bytes.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id_of("node1"), node_id_of("node1"));
        assert_ne!(node_id_of("node1"), node_id_of("node2"));
    }

    #[test]
    fn wire_ops_round_trip_through_json() {
        let req = Request {
            ops: vec![
                WireOp::Put {
                    key: "a/b".into(),
                    value: vec![0, 255, 7],
                },
                WireOp::Delete { key: "c".into() },
            ],
            term: Some(3),
        };
        let text = serde_json::to_string(&req).unwrap();
        assert!(text.contains("AP8H"), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), req);
    }
}
