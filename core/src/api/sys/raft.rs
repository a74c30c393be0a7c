//! `sys/storage/raft/*`, `sys/ha-status`, and the cluster parts of
//! `sys/leader` and `sys/health`.

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::api::AppState;
use crate::cluster::{join, Cluster, RetryJoin};
use crate::engines::Operation;
use crate::storage::{Op, Storage};

/// Format marker of a Cairn backup.
const SNAPSHOT_FORMAT: u64 = 1;

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
        ("snapshot", Operation::Read) => snapshot_save(cluster).await,
        ("snapshot", Operation::Update | Operation::Create) => {
            snapshot_restore(ctx, cluster, call).await
        }
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

/// `GET sys/storage/raft/snapshot`: every stored key with its value as
/// stored, so barrier ciphertext (and the sealed keyring) only. Taken after
/// the read barrier, so it holds every write acknowledged before the request.
async fn snapshot_save(cluster: &Cluster) -> Result<Reply, ApiError> {
    let pairs = cluster.storage.export();
    let b64 = base64::engine::general_purpose::STANDARD;
    let pairs: Vec<Value> = pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": b64.encode(v) }))
        .collect();
    Ok(Reply::bare(
        200,
        &json!({ "cairn_snapshot": SNAPSHOT_FORMAT, "pairs": pairs }),
    ))
}

/// `POST sys/storage/raft/snapshot`: replace the whole store with a backup in
/// one log entry, then seal. The backup's keyring opens only with the shares
/// of the cluster it came from, so every node must be unsealed with those.
async fn snapshot_restore(
    ctx: &Ctx<'_>,
    cluster: &Cluster,
    call: &Call,
) -> Result<Reply, ApiError> {
    if call.param("cairn_snapshot").and_then(|v| v.as_u64()) != Some(SNAPSHOT_FORMAT) {
        return Err(ApiError::bad_request(
            "the body is not a Cairn raft snapshot",
        ));
    }
    let Some(Value::Array(items)) = call.param("pairs") else {
        return Err(ApiError::bad_request("the snapshot has no pairs"));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ops = Vec::with_capacity(items.len());
    let mut keep = std::collections::BTreeSet::new();
    for item in &items {
        let (Some(key), Some(value)) = (item["key"].as_str(), item["value"].as_str()) else {
            return Err(ApiError::bad_request("a snapshot pair needs key and value"));
        };
        let value = b64
            .decode(value)
            .map_err(|_| ApiError::bad_request("a snapshot value is not base64"))?;
        keep.insert(key.to_owned());
        ops.push(Op::Put {
            key: key.to_owned(),
            value,
        });
    }
    if !keep.contains(crate::barrier::KEYRING_PATH) {
        return Err(ApiError::bad_request("the snapshot has no keyring"));
    }
    let current = cluster
        .storage
        .keys_with_prefix("")
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut all: Vec<Op> = current
        .into_iter()
        .filter(|k| !keep.contains(k))
        .map(|key| Op::Delete { key })
        .collect();
    all.extend(ops);
    cluster
        .storage
        .batch(all)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::warn!(
        keys = keep.len(),
        "raft snapshot restored; sealing: unseal with the shares of the snapshot's cluster"
    );
    ctx.state.node.seal().await;
    Ok(Reply::empty())
}
