//! The cluster: this node's Raft instance, its peer transport (a separate
//! cluster port with mutual TLS), membership changes and request routing.
//!
//! Every node stores the whole replicated log; the leader serves writes;
//! followers forward write requests to the leader and serve reads after a
//! read-index round, or at once when the client asks for stale reads.

pub mod client;
pub mod join;
pub mod network;
pub mod peer_api;
pub mod peer_conn;
pub mod routing;
pub mod state_sync;
pub mod tls;

pub use state_sync::follow_changes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::{ChangeMembers, SnapshotPolicy};

use crate::storage::raft::{node_id_of, typ, LogStore, NodeInfo, RaftStorage, StateMachine};
use client::PeerClient;
use tls::{PeerTlsError, PeerTlsFiles};

/// How long a write or a read barrier waits for a leader before giving up.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Cluster failures.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Tls(#[from] PeerTlsError),
    #[error("failed to open raft storage: {0}")]
    Storage(String),
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Membership(String),
    #[error(transparent)]
    Peer(#[from] client::PeerError),
}

/// A `retry_join` stanza: where to find a node of the cluster to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryJoin {
    /// The API address of a cluster node (`https://host:8200`).
    pub leader_api_addr: String,
    /// CA certificate for that API address, if it is not publicly trusted.
    pub leader_ca_cert_file: Option<PathBuf>,
}

/// Everything the cluster needs from the configuration.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The operator's node name (`node_id`).
    pub node_name: String,
    /// Directory of the raft files.
    pub path: PathBuf,
    /// `host:port` other nodes reach this node's cluster listener at.
    pub cluster_addr: String,
    /// This node's client API address, as clients should use it.
    pub api_addr: String,
    /// Peer TLS; `None` only under `--insecure-cluster`.
    pub tls: Option<PeerTlsFiles>,
    /// Take a snapshot after this many log entries.
    pub snapshot_threshold: u64,
    /// Keep this many log entries behind a snapshot, for slow followers.
    pub trailing_logs: u64,
    /// Nodes to join at start.
    pub retry_join: Vec<RetryJoin>,
}

/// This node's membership in the cluster.
pub struct Cluster {
    /// The replicated storage the node runs on.
    pub storage: Arc<RaftStorage>,
    config: ClusterConfig,
    id: u64,
    me: NodeInfo,
    client: PeerClient,
    /// The API router, to serve requests forwarded by followers.
    api: OnceLock<axum::Router>,
    /// Whether the node's unsealed state has caught up with the replicated log.
    pub state: state_sync::StateSync,
}

/// One row of `sys/storage/raft/configuration`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Peer {
    pub node_id: String,
    pub address: String,
    pub api_address: String,
    pub leader: bool,
    pub voter: bool,
}

impl Cluster {
    /// Open the raft files under `config.path` and start Raft. The node serves
    /// nothing until the cluster listener is started ([`peer_api::serve`]).
    pub async fn start(config: ClusterConfig) -> Result<Arc<Self>, ClusterError> {
        std::fs::create_dir_all(&config.path).map_err(|e| {
            ClusterError::Storage(format!("cannot create {}: {e}", config.path.display()))
        })?;
        // Before the segment-file log, the log was `raft-log.redb`. Starting
        // beside it with an empty log would forget this node's vote and
        // entries (a node could vote twice in one term): refuse instead.
        let old_log = config.path.join("raft-log.redb");
        if old_log.exists() && !config.path.join("raft-log").exists() {
            return Err(ClusterError::Storage(format!(
                "{} holds a Raft log in the old redb format, which this version does not read; \
                 restore this node from a snapshot (`cairn operator raft snapshot`), or remove \
                 the node's data directory and join it to the cluster again",
                old_log.display()
            )));
        }
        // Likewise the state machine was `raft-sm.redb`, whose contents the log
        // may already be purged behind.
        let old_sm = config.path.join("raft-sm.redb");
        if old_sm.exists() && !config.path.join("raft-sm").exists() {
            return Err(ClusterError::Storage(format!(
                "{} holds the state machine in the old redb format, which this version does \
                 not read; restore this node from a snapshot (`cairn operator raft snapshot`), \
                 or remove the node's data directory and join it to the cluster again",
                old_sm.display()
            )));
        }
        let log = LogStore::open(&config.path.join("raft-log"))
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        let sm = StateMachine::open(&config.path.join("raft-sm"))
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        log.purge_behind(sm.snapshot_on_disk());
        let client = PeerClient::new(config.tls.as_ref())?;
        let raft_config = openraft::Config {
            cluster_name: "cairn".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold.max(1)),
            max_in_snapshot_log_to_keep: config.trailing_logs,
            max_payload_entries: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let id = node_id_of(&config.node_name);
        let network = network::Network::new(client.clone());
        let raft = typ::Raft::new(id, Arc::new(raft_config), network, log.clone(), sm.clone())
            .await
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        let link = Arc::new(join::Link::new(client.clone()));
        let storage = Arc::new(RaftStorage::new(raft, log, sm, link, LEADER_TIMEOUT));
        let me = NodeInfo {
            name: config.node_name.clone(),
            cluster_addr: config.cluster_addr.clone(),
            api_addr: config.api_addr.clone(),
        };
        Ok(Arc::new(Cluster {
            storage,
            config,
            id,
            me,
            client,
            api: OnceLock::new(),
            state: state_sync::StateSync::default(),
        }))
    }

    /// The Raft handle.
    pub fn raft(&self) -> &typ::Raft {
        self.storage.raft()
    }

    /// This node's Raft id and description.
    pub fn me(&self) -> (u64, &NodeInfo) {
        (self.id, &self.me)
    }

    /// Whether peer traffic is TLS.
    pub fn is_tls(&self) -> bool {
        self.config.tls.is_some()
    }

    /// The cluster address as a URL, as `sys/leader` reports it.
    pub fn cluster_url(&self, node: &NodeInfo) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", node.cluster_addr)
    }

    /// Install the API router used to serve forwarded requests.
    pub fn set_api(&self, router: axum::Router) {
        let _ = self.api.set(router);
    }

    /// Whether this node belongs to a cluster (bootstrapped or joined).
    pub fn is_member(&self) -> bool {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&self.id)
            .is_some()
    }

    /// Start a one-node cluster of this node, unless it is already a member.
    /// Called by `sys/init`; a node set up to join (`retry_join`) refuses.
    pub async fn bootstrap(&self) -> Result<(), ClusterError> {
        if self.is_member() {
            return Ok(());
        }
        if !self.config.retry_join.is_empty() {
            return Err(ClusterError::Membership(
                "this node is configured to join a cluster (retry_join) and has not joined yet; initialize the cluster's first node instead".into(),
            ));
        }
        let members = BTreeMap::from([(self.id, self.me.clone())]);
        self.raft().initialize(members).await.map_err(|e| {
            ClusterError::Membership(format!("failed to bootstrap the cluster: {e}"))
        })?;
        self.storage
            .leader()
            .await
            .map_err(|e| ClusterError::Membership(e.to_string()))?;
        tracing::info!(node = %self.me.name, "bootstrapped a new raft cluster");
        Ok(())
    }

    /// On the leader: add `node` as a learner, wait for it to catch up, then
    /// make it a voter (openraft's joint consensus). Idempotent.
    pub async fn add_member(&self, node: NodeInfo) -> Result<(), ClusterError> {
        let id = node_id_of(&node.name);
        let raft = self.raft();
        raft.add_learner(id, node.clone(), true)
            .await
            .map_err(|e| {
                ClusterError::Membership(format!("failed to add {} as a learner: {e}", node.name))
            })?;
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(|e| {
                ClusterError::Membership(format!("failed to make {} a voter: {e}", node.name))
            })?;
        tracing::info!(peer = %node, "peer joined the cluster");
        Ok(())
    }

    /// On the leader: remove the node named `name` from the cluster.
    pub async fn remove_member(&self, name: &str) -> Result<(), ClusterError> {
        let id = node_id_of(name);
        let known = self.peers().iter().any(|p| p.node_id == name);
        if !known {
            return Err(ClusterError::Membership(format!(
                "no peer named {name:?} in the cluster"
            )));
        }
        let raft = self.raft();
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(|e| ClusterError::Membership(format!("failed to remove {name}: {e}")))?;
        // A removed voter is left a learner; drop it entirely.
        if self.peers().iter().any(|p| p.node_id == name) {
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await
                .map_err(|e| ClusterError::Membership(format!("failed to remove {name}: {e}")))?;
        }
        tracing::info!(peer = %name, "peer removed from the cluster");
        Ok(())
    }

    /// The membership as `sys/storage/raft/configuration` lists it.
    pub fn peers(&self) -> Vec<Peer> {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Peer {
                node_id: node.name.clone(),
                address: node.cluster_addr.clone(),
                api_address: node.api_addr.clone(),
                leader: m.current_leader == Some(*id),
                voter: voters.contains(id),
            })
            .collect()
    }

    /// The leader as this node last heard of it, without waiting.
    pub fn known_leader(&self) -> Option<(u64, NodeInfo)> {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| (id, n.clone()))
    }

    /// (commit-ish: last log index, applied index) for `sys/leader`.
    pub fn indexes(&self) -> (u64, u64) {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        (
            m.last_log_index.unwrap_or(0),
            m.last_applied.map(|l| l.index).unwrap_or(0),
        )
    }

    /// Whether this node is the leader and heard from a quorum recently enough
    /// that a write can commit.
    pub fn leader_with_quorum(&self) -> bool {
        let metrics = self.raft().metrics();
        let m = metrics.borrow();
        m.current_leader == Some(self.id)
            && m.millis_since_quorum_ack
                .map(|ms| ms < 2_000)
                .unwrap_or(true)
    }

    /// The peer client (peer TLS).
    pub fn client(&self) -> &PeerClient {
        &self.client
    }

    /// The configuration this cluster started with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }
}

/// The cluster settings of a server config: `cluster_addr` (or the first
/// listener's port + 1, as Vault does), `api_addr`, the raft stanza's options.
/// Without `cluster_addr`, TLS or `retry_join` the node runs as a single-node
/// cluster with no cluster listener at all.
pub fn config_from_server(
    config: &crate::config::ServerConfig,
    path: &std::path::Path,
    node_name: &str,
) -> Result<(ClusterConfig, bool), ClusterError> {
    let first = config
        .listeners
        .first()
        .map(|l| l.address.clone())
        .unwrap_or_default();
    let listens = config.cluster_addr.is_some()
        || config.raft.tls.is_some()
        || !config.raft.retry_join.is_empty();
    let cluster_addr = match &config.cluster_addr {
        Some(a) => join::strip_scheme(a).to_owned(),
        None => {
            let addr: std::net::SocketAddr = first
                .parse()
                .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8200)));
            std::net::SocketAddr::new(addr.ip(), addr.port().wrapping_add(1)).to_string()
        }
    };
    let api_addr = config.api_addr.clone().unwrap_or_else(|| {
        let tls = config
            .listeners
            .first()
            .is_some_and(|l| !l.tls_disable && l.tls_cert_file.is_some());
        format!("{}://{}", if tls { "https" } else { "http" }, first)
    });
    Ok((
        ClusterConfig {
            node_name: node_name.to_owned(),
            path: path.to_owned(),
            cluster_addr,
            api_addr,
            tls: config.raft.tls.clone(),
            snapshot_threshold: config.raft.snapshot_threshold,
            trailing_logs: config.raft.trailing_logs,
            retry_join: config.raft.retry_join.clone(),
        },
        listens,
    ))
}

/// Start serving the cluster: the API router for forwarded requests, the
/// cluster listener (peer TLS unless `insecure`), and `retry_join`. With
/// `listens` false (a lone node) there is no cluster port.
pub async fn launch(
    cluster: Arc<Cluster>,
    api: axum::Router,
    listens: bool,
    insecure: bool,
) -> Result<Option<tokio::task::JoinHandle<()>>, ClusterError> {
    cluster.set_api(api);
    if !listens {
        return Ok(None);
    }
    let acceptor = match (&cluster.config.tls, insecure) {
        (Some(files), _) => Some(files.acceptor()?),
        (None, true) => {
            tracing::warn!("--insecure-cluster: peer traffic is plaintext and unauthenticated; never do this outside tests");
            None
        }
        // A lone node given a cluster_addr but no peer TLS: serve without a
        // cluster port (no peer can join it) rather than refuse to start or
        // fall back to plaintext.
        (None, false) if cluster.config.retry_join.is_empty() => {
            tracing::warn!("no peer TLS configured (cluster_tls_*): running as a single node without a cluster listener");
            return Ok(None);
        }
        (None, false) => {
            return Err(ClusterError::Config(
                "a cluster needs peer TLS: set cluster_tls_cert_file, cluster_tls_key_file and cluster_tls_ca_file in storage \"raft\" (or pass --insecure-cluster in development)".into(),
            ))
        }
    };
    let addr: std::net::SocketAddr = match cluster.config.cluster_addr.parse() {
        Ok(a) => a,
        // A host name: listen on every interface at its port.
        Err(_) => {
            let port = cluster
                .config
                .cluster_addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(8201);
            std::net::SocketAddr::from(([0, 0, 0, 0], port))
        }
    };
    let task = peer_api::serve(cluster.clone(), addr, acceptor)
        .await
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    tokio::spawn(join::retry_join(cluster));
    Ok(Some(task))
}
