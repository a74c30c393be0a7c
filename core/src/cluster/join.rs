//! Reaching the leader: the follower side of forwarded writes and read-index
//! requests, and joining a cluster (`retry_join`, `sys/storage/raft/join`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::client::PeerClient;
use super::peer_conn::IdleConns;
use super::{Cluster, ClusterError, RetryJoin};
use crate::storage::raft::{LeaderLink, NodeInfo, WireOp};
use crate::storage::StorageError;

/// Cluster paths of the leader services.
pub const FORWARD_WRITE_PATH: &str = "/cluster/forward-write";
pub const READ_INDEX_PATH: &str = "/cluster/read-index";
pub const JOIN_PATH: &str = "/cluster/join";

/// How long a join may take: the leader waits for the new node to catch up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between `retry_join` rounds.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// A forwarded write batch.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardWrite {
    pub ops: Vec<WireOp>,
}

/// A join request: the node that wants in.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node: NodeInfo,
}

/// The follower's link to the leader, over peer TLS.
pub struct Link {
    client: PeerClient,
    /// Connections for read-index requests: the shared rounds send one at
    /// a time (`storage::raft::read_index`), so a connection of their own
    /// serves them without the pool's connection task (see `peer_conn`).
    read_index_conns: IdleConns,
}

impl Link {
    /// A link over `client`.
    pub fn new(client: PeerClient) -> Self {
        Link {
            client,
            read_index_conns: IdleConns::default(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("failed to reach the raft leader: {e}"))
}

#[async_trait]
impl LeaderLink for Link {
    async fn forward_batch(
        &self,
        leader: &NodeInfo,
        ops: Vec<WireOp>,
    ) -> Result<u64, StorageError> {
        let answer: Result<u64, String> = self
            .client
            .post(
                &leader.cluster_addr,
                FORWARD_WRITE_PATH,
                &ForwardWrite { ops },
                Duration::from_secs(10),
            )
            .await
            .map_err(unavailable)?;
        answer.map_err(StorageError::Unavailable)
    }

    async fn read_index(&self, leader: &NodeInfo) -> Result<u64, StorageError> {
        let addr = &leader.cluster_addr;
        let mut conn = self
            .read_index_conns
            .take(addr)
            .unwrap_or_else(|| self.client.conn(addr));
        // A read-index request changes nothing, so `post` may send it again.
        let answer: Result<Result<u64, String>, _> = conn
            .post(
                READ_INDEX_PATH,
                "application/json",
                b"null".to_vec(),
                Duration::from_secs(5),
            )
            .await;
        self.read_index_conns.put(conn);
        answer
            .map_err(unavailable)?
            .map_err(StorageError::Unavailable)
    }
}

/// Ask the node whose cluster listener is at `cluster_addr` (`host:port`, a
/// scheme is ignored) to add this node to its cluster.
pub async fn join_via(cluster: &Cluster, cluster_addr: &str) -> Result<(), ClusterError> {
    join_via_node(cluster, cluster_addr, cluster.me().1.clone()).await
}

/// Ask the node at `cluster_addr` to add `node` (a join relayed by a follower).
pub async fn join_via_node(
    cluster: &Cluster,
    cluster_addr: &str,
    node: NodeInfo,
) -> Result<(), ClusterError> {
    let addr = strip_scheme(cluster_addr);
    let request = JoinRequest { node };
    let answer: Result<(), String> = cluster
        .client()
        .post(addr, JOIN_PATH, &request, JOIN_TIMEOUT)
        .await?;
    answer.map_err(ClusterError::Membership)
}

/// `host:port` of an address that may carry a scheme and a trailing slash.
pub fn strip_scheme(addr: &str) -> &str {
    let rest = addr.split_once("://").map(|(_, r)| r).unwrap_or(addr);
    rest.trim_end_matches('/')
}

/// The cluster address of the leader, as the node at `api_addr` reports it in
/// `sys/leader`.
pub async fn leader_cluster_addr(join: &RetryJoin) -> Result<String, String> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ca) = &join.leader_ca_cert_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("bad CA file {}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    let url = format!(
        "{}/v1/sys/leader",
        join.leader_api_addr.trim_end_matches('/')
    );
    let body: serde_json::Value = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match body["leader_cluster_address"].as_str() {
        Some(addr) if !addr.is_empty() => Ok(addr.to_owned()),
        _ => Err("that node knows no leader yet".into()),
    }
}

/// Join through `retry_join` stanzas until this node is a member. Runs in the
/// background from server start; does nothing on a node already in a cluster.
pub async fn retry_join(cluster: Arc<Cluster>) {
    let stanzas = cluster.config().retry_join.clone();
    if stanzas.is_empty() {
        return;
    }
    loop {
        if cluster.is_member() {
            return;
        }
        for stanza in &stanzas {
            let outcome = match leader_cluster_addr(stanza).await {
                Ok(addr) => join_via(&cluster, &addr).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(via = %stanza.leader_api_addr, "joined the raft cluster");
                    return;
                }
                Err(e) => {
                    tracing::info!(via = %stanza.leader_api_addr, error = %e, "join attempt failed; retrying")
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
