//! `sys/init`, `sys/unseal`, `sys/seal`, `sys/seal-status`, `sys/health`, `sys/leader`.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::api::AppState;

/// The version reported by health and seal-status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn status_json(s: &crate::node::SealStatus, storage_type: &str) -> Value {
    json!({
        "type": s.kind,
        "initialized": s.initialized,
        "sealed": s.sealed,
        "t": s.threshold,
        "n": s.shares,
        "progress": s.progress,
        "nonce": s.nonce,
        "version": VERSION,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": storage_type,
    })
}

pub async fn seal_status(state: &AppState) -> Result<Reply, ApiError> {
    let s = state.node.status().await?;
    Ok(Reply::bare(
        200,
        &status_json(&s, state.node.storage_type()),
    ))
}

pub async fn init_status(state: &AppState) -> Result<Reply, ApiError> {
    let s = state.node.status().await?;
    Ok(Reply::bare(200, &json!({ "initialized": s.initialized })))
}

fn u64_param(call: &Call, name: &str, default: u64) -> Result<u64, ApiError> {
    match call.param(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive integer"))),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{name} must be a positive integer"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{name} must be a positive integer"
        ))),
    }
}

pub async fn init(state: &AppState, call: &Call) -> Result<Reply, ApiError> {
    for unsupported in ["pgp_keys", "root_token_pgp_key"] {
        match call.param(unsupported) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{unsupported} is not supported by Cairn"
                )))
            }
        }
    }
    let shares = u64_param(call, "secret_shares", 5)?;
    let threshold = u64_param(call, "secret_threshold", 3)?;
    let result = state.node.initialize(shares, threshold, None).await?;
    let keys: Vec<String> = result
        .keys
        .iter()
        .map(|k| hex::encode(k.as_slice()))
        .collect();
    let keys_b64: Vec<String> = result
        .keys
        .iter()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_slice()))
        .collect();
    tracing::info!(shares, threshold, "node initialized");
    Ok(Reply::bare(
        200,
        &json!({ "keys": keys, "keys_base64": keys_b64, "root_token": result.root_token.as_str() }),
    ))
}

pub async fn unseal(state: &AppState, call: &Call) -> Result<Reply, ApiError> {
    let reset = matches!(call.param("reset"), Some(Value::Bool(true)))
        || call.str_param("reset").as_deref() == Some("true");
    if reset {
        state.node.reset_progress().await;
    } else {
        let key = call
            .str_param("key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "'key' must be specified in request body as JSON, or 'reset' set to true",
                )
            })?;
        let was_sealed = state.node.is_sealed();
        state.node.submit_share(&key).await?;
        if was_sealed && !state.node.is_sealed() {
            tracing::info!("node unsealed");
        }
    }
    seal_status(state).await
}

pub async fn seal(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    ctx.state.node.seal().await;
    tracing::info!("node sealed by request");
    Ok(Reply::empty())
}

/// Vault's health codes: 200 active, 429 standby, 501 uninitialised, 503 sealed;
/// each overridable by a query parameter.
pub async fn health(state: &AppState, call: &Call) -> Result<Reply, ApiError> {
    let s = state.node.status().await?;
    // Every code parameter is checked, not only the one that applies now.
    for name in [
        "activecode",
        "standbycode",
        "sealedcode",
        "uninitcode",
        "drsecondarycode",
        "perfstandbyactivecode",
        "performancestandbycode",
    ] {
        if let Some(v) = call.query(name) {
            if !v
                .parse::<u16>()
                .map(|c| (100..600).contains(&c))
                .unwrap_or(false)
            {
                return Err(ApiError::bad_request(format!(
                    "{name} must be an HTTP status code"
                )));
            }
        }
    }
    let code = |name: &str, default: u16| -> Result<u16, ApiError> {
        match call.query(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{name} must be an HTTP status code"))
                }),
        }
    };
    let (ha_enabled, is_leader, ..) = super::raft::leader_view(state);
    let standby = ha_enabled && !is_leader && s.initialized && !s.sealed;
    let status = if !s.initialized {
        code("uninitcode", 501)?
    } else if s.sealed {
        code("sealedcode", 503)?
    } else if standby && call.query("standbyok") != Some("true") {
        code("standbycode", 429)?
    } else {
        code("activecode", 200)?
    };
    let body = json!({
        "initialized": s.initialized,
        "sealed": s.sealed,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": crate::time::now(),
        "version": VERSION,
        "cluster_name": "cairn",
        "cluster_id": "",
    });
    let _ = (call.query("standbyok"), call.query("perfstandbyok"));
    Ok(Reply::bare(status, &body))
}

pub async fn leader(state: &AppState) -> Result<Reply, ApiError> {
    let (ha_enabled, is_self, leader_address, leader_cluster_address, committed, applied) =
        super::raft::leader_view(state);
    Ok(Reply::bare(
        200,
        &json!({
            "ha_enabled": ha_enabled,
            "is_self": is_self,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": leader_address,
            "leader_cluster_address": leader_cluster_address,
            "performance_standby": false,
            "raft_committed_index": committed,
            "raft_applied_index": applied,
        }),
    ))
}
