//! `sys/` endpoints.

mod audit;
mod auth;
mod batch_read;
mod capabilities;
mod keys;
mod lease_owners;
mod leases;
mod mounts;
mod policies;
mod raft;
mod seal;
mod watch;

use serde_json::json;

use super::call::Call;
use super::pipeline::Ctx;
use super::reply::{ApiError, Reply};
use super::AppState;
use crate::engines::Operation;

/// Endpoints that need no token and answer on a sealed node.
pub async fn unauthenticated(state: &AppState, call: &Call) -> Result<Reply, ApiError> {
    match (call.path.as_str(), call.operation) {
        ("sys/health", Operation::Read) => seal::health(state, call).await,
        ("sys/seal-status", Operation::Read) => seal::seal_status(state).await,
        ("sys/init", Operation::Read) => seal::init_status(state).await,
        ("sys/init", Operation::Update) => seal::init(state, call).await,
        ("sys/unseal", Operation::Update) => seal::unseal(state, call).await,
        ("sys/leader", Operation::Read) => seal::leader(state).await,
        ("sys/storage/raft/join", Operation::Update | Operation::Create) => {
            raft::join_endpoint(state, call).await
        }
        ("sys/internal/specs/openapi", Operation::Read) => {
            Ok(Reply::bare(200, &super::openapi::document()))
        }
        ("sys/cairn/noop", _) => Ok(Reply::bare(200, &json!({}))),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Endpoints behind a token and the ACL; `rest` is the path after `sys/`.
pub async fn authenticated(
    ctx: &Ctx<'_>,
    call: &Call,
    rest: &str,
    request_id: &str,
) -> Result<Reply, ApiError> {
    let op = call.operation;
    let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match head {
        "seal" if is_write(op) => seal::seal(ctx).await,
        "rotate" if is_write(op) => keys::rotate(ctx).await,
        "key-status" if op == Operation::Read => keys::key_status(ctx),
        "mounts" => mounts::route(ctx, call, tail).await,
        "storage" if tail.starts_with("raft/") => {
            raft::route(ctx, call, &tail["raft/".len()..]).await
        }
        "ha-status" if op == Operation::Read => raft::ha_status(ctx.state),
        "leases" | "renew" | "revoke" => leases::route(ctx, call, head, tail).await,
        "cairn" if tail == "read" && is_write(op) => {
            batch_read::read_many(ctx, call, request_id).await
        }
        "cairn" if tail.starts_with("watch/") => {
            watch::watch(ctx, call, &tail["watch/".len()..]).await
        }
        "cairn" if tail.starts_with("leases/") => {
            lease_owners::route(ctx, call, &tail["leases/".len()..]).await
        }
        "auth" => auth::route(ctx, call, tail).await,
        "policies" => match tail.split_once('/') {
            Some(("acl", name)) => policies::acl(ctx, call, name).await,
            None if tail == "acl" => policies::acl(ctx, call, "").await,
            _ => Err(ApiError::unsupported_path()),
        },
        "policy" => policies::legacy(ctx, call, tail).await,
        "capabilities-self" if is_write(op) => capabilities::self_(ctx, call).await,
        "capabilities" if is_write(op) => capabilities::for_token(ctx, call).await,
        "capabilities-accessor" if is_write(op) => capabilities::for_accessor(ctx, call).await,
        "audit" => audit::route(ctx, call, tail).await,
        "audit-hash" if is_write(op) => audit::hash(ctx, call, tail),
        "metrics" if op == Operation::Read => Ok(ctx
            .state
            .metrics
            .render(call.query("format"), Some(ctx.unsealed.leases.stats()))),
        "internal" if tail.starts_with("ui/mounts/") && op == Operation::Read => {
            mounts::ui_mount(ctx, &tail["ui/mounts/".len()..])
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

fn is_write(op: Operation) -> bool {
    matches!(op, Operation::Update | Operation::Create)
}
