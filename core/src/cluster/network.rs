//! openraft's network over the cluster port: append-entries, vote and
//! install-snapshot RPCs as POSTs to the peer's cluster listener; entries in
//! the log's binary form, everything else JSON.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{PeerClient, PeerError};
use super::peer_conn::{IdleConns, PeerConn};
use crate::storage::raft::{codec, typ, NodeInfo, TypeConfig};

/// Cluster paths of the Raft RPCs.
pub const APPEND_PATH: &str = "/cluster/raft/append";
pub const VOTE_PATH: &str = "/cluster/raft/vote";
pub const SNAPSHOT_PATH: &str = "/cluster/raft/snapshot";

/// Makes one [`PeerConnection`] per target.
#[derive(Clone)]
pub struct Network {
    client: PeerClient,
    idle: IdleConns,
}

impl Network {
    /// A network over `client`.
    pub fn new(client: PeerClient) -> Self {
        Network {
            client,
            idle: IdleConns::default(),
        }
    }
}

/// The RPC client for one peer. openraft gives each replication task its
/// own and sends appends through it one at a time, so appends go over a
/// connection this client owns (see [`PeerConn`]); votes and snapshots use
/// the shared pool.
pub struct PeerConnection {
    client: PeerClient,
    /// Taken only when this client is dropped.
    appends: Option<PeerConn>,
    /// Where `appends` goes back to when this client is dropped.
    idle: IdleConns,
    target: u64,
    addr: String,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.appends.take() {
            self.idle.put(conn);
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            appends: Some(
                self.idle
                    .take(&node.cluster_addr)
                    .unwrap_or_else(|| self.client.conn(&node.cluster_addr)),
            ),
            idle: self.idle.clone(),
            target,
            addr: node.cluster_addr.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<u64, NodeInfo, RaftError<u64, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer = self
            .client
            .post(&self.addr, path, req, option.hard_ttl())
            .await;
        self.outcome(answer)
    }

    /// openraft's view of a peer's answer.
    // openraft's RaftNetwork fixes the error type (RPCError, ~300 bytes).
    #[allow(clippy::result_large_err)]
    fn outcome<Resp, E: std::error::Error>(
        &self,
        answer: Result<Result<Resp, RaftError<u64, E>>, PeerError>,
    ) -> RpcResult<Resp, E> {
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            // Unreachable makes openraft back off instead of retrying at once.
            Err(e @ (PeerError::Unreachable { .. } | PeerError::Connect { .. })) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: typ::AppendEntriesRequest,
        option: RPCOption,
    ) -> RpcResult<typ::AppendEntriesResponse, openraft::error::Infallible> {
        // Entries travel in the log's binary form (see `codec`), not JSON.
        let body =
            codec::encode_append(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let (client, addr) = (&self.client, &self.addr);
        let answer = self
            .appends
            .get_or_insert_with(|| client.conn(addr))
            .post(
                APPEND_PATH,
                codec::APPEND_CONTENT_TYPE,
                body,
                option.hard_ttl(),
            )
            .await;
        self.outcome(answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: typ::InstallSnapshotRequest,
        option: RPCOption,
    ) -> RpcResult<typ::InstallSnapshotResponse, InstallSnapshotError> {
        self.call(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: typ::VoteRequest,
        option: RPCOption,
    ) -> RpcResult<typ::VoteResponse, openraft::error::Infallible> {
        self.call(VOTE_PATH, &rpc, &option).await
    }
}
