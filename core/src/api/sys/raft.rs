//! `sys/storage/raft/*`, `sys/ha-status`, and the cluster parts of
//! `sys/leader` and `sys/health`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::api::AppState;
use crate::cluster::{join, Cluster, RetryJoin};
use crate::engines::Operation;

fn cluster_of(state: &AppState) -> Result<&std::sync::Arc<Cluster>, ApiError> {
    state
        .node
        .cluster()
        .ok_or_else(|| ApiError::bad_request("raft storage is not in use on this node"))
}

/// Routes under `sys/storage/raft/` (authenticated); `tail` is after `raft/`.
pub async fn route(ctx: &Ctx<'_>, call: &Call, tail: &str) -> Result<Reply, ApiError> {
    let cluster = cluster_of(ctx.state)?;
    match (tail, call.operation) {
        ("configuration", Operation::Read) => Ok(configuration(cluster)),
        ("remove-peer", Operation::Update | Operation::Create) => remove_peer(cluster, call).await,
        _ => Err(ApiError::unsupported_path()),
    }
}

fn configuration(cluster: &Cluster) -> Reply {
    let servers: Vec<Value> = cluster
        .peers()
        .into_iter()
        .map(|p| {
            json!({
                "node_id": p.node_id,
                "address": p.address,
                "leader": p.leader,
                "voter": p.voter,
                "protocol_version": "3",
            })
        })
        .collect();
    let (index, _) = cluster.indexes();
    Reply::data(json!({ "config": { "servers": servers, "index": index } }))
}

async fn remove_peer(cluster: &Cluster, call: &Call) -> Result<Reply, ApiError> {
    let name = call
        .str_param("server_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("server_id is required"))?;
    cluster
        .remove_member(&name)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Reply::empty())
}

/// `sys/storage/raft/join` on the joining node (no token: the node may not
/// even be initialised). The leader admits it only over peer TLS.
pub async fn join_endpoint(state: &AppState, call: &Call) -> Result<Reply, ApiError> {
    let cluster = cluster_of(state)?;
    if cluster.is_member() {
        return Err(ApiError::bad_request(
            "this node is already a member of a raft cluster",
        ));
    }
    let leader_api_addr = call
        .str_param("leader_api_addr")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("leader_api_addr is required"))?;
    let ca_file = match call.str_param("leader_ca_cert").filter(|s| !s.is_empty()) {
        // The API takes the PEM itself; keep it in a file beside the raft data
        // so retry logic and the join share one code path.
        Some(pem) => {
            let path = cluster.config().path.join("leader-ca.pem");
            std::fs::write(&path, pem)
                .map_err(|e| ApiError::internal(format!("cannot store leader_ca_cert: {e}")))?;
            Some(path)
        }
        None => None,
    };
    let stanza = RetryJoin {
        leader_api_addr,
        leader_ca_cert_file: ca_file,
    };
    let addr = join::leader_cluster_addr(&stanza).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot find the cluster leader: {e}"),
        )
    })?;
    join::join_via(cluster, &addr).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("failed to join the cluster: {e}"),
        )
    })?;
    Ok(Reply::bare(200, &json!({ "joined": true })))
}

/// `sys/ha-status`: every node of the cluster.
pub fn ha_status(state: &AppState) -> Result<Reply, ApiError> {
    let Some(cluster) = state.node.cluster() else {
        return Ok(Reply::bare(200, &json!({ "nodes": [] })));
    };
    let nodes: Vec<Value> = cluster
        .peers()
        .into_iter()
        .map(|p| {
            json!({
                "hostname": p.node_id,
                "api_address": p.api_address,
                "cluster_address": format!("{}://{}", if cluster.is_tls() { "https" } else { "http" }, p.address),
                "active_node": p.leader,
                "voter": p.voter,
            })
        })
        .collect();
    Ok(Reply::data(json!({ "nodes": nodes })))
}

/// What `sys/leader` and `sys/health` need: (ha_enabled, is_self,
/// leader api address, leader cluster address, committed, applied).
pub fn leader_view(state: &AppState) -> (bool, bool, String, String, u64, u64) {
    let Some(cluster) = state.node.cluster() else {
        return (
            false,
            !state.node.is_sealed(),
            String::new(),
            String::new(),
            0,
            0,
        );
    };
    let (last, applied) = cluster.indexes();
    match cluster.known_leader() {
        Some((id, leader)) => (
            true,
            id == cluster.me().0,
            leader.api_addr.clone(),
            cluster.cluster_url(&leader),
            last,
            applied,
        ),
        None => (true, false, String::new(), String::new(), last, applied),
    }
}
