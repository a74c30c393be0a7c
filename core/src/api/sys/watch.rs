//! `GET sys/cairn/watch/<path>?index=<i>&wait=<d>`: Cairn's change stream, a
//! long poll on one KV v2 secret. It answers at once when the secret's state
//! differs from `index` (what the caller saw last), else when it changes, or
//! after `wait` (default 30 s, at most 60 s) with `changed: false`. The agent
//! keeps one poll per watched secret, so a `kv put` reaches its files within
//! a round trip.
//!
//! The caller needs `read` on the watched path itself (checked here; the
//! default policy lets any token reach this endpoint). The index is a hash of
//! what a read of the path returns, so it never leaks more than a read would,
//! and it is the same on every node, so a poll may move between nodes.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::auth::token::DurationParam;
use crate::engines::{EngineError, Operation, Request};
use crate::policy::Capabilities;

const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Answer one watch; `target` is the watched API path (`secret/data/app/db`).
pub async fn watch(ctx: &Ctx<'_>, call: &Call, target: &str) -> Result<Reply, ApiError> {
    if call.operation != Operation::Read {
        return Err(ApiError::method_not_allowed());
    }
    let target = target.trim_matches('/');
    if !ctx.caller.acl.allows(target, Capabilities::READ) {
        return Err(ApiError::denied());
    }
    let (mount, rest) = ctx
        .unsealed
        .mounts
        .route(target)
        .filter(|(m, rest)| m.entry.kind == "kv" && rest.starts_with("data/"))
        .ok_or_else(|| {
            ApiError::bad_request("only KV v2 data paths (<mount>/data/<path>) can be watched")
        })?;
    let seen = call.query("index").unwrap_or("");
    let wait = match call.query("wait") {
        None | Some("") => DEFAULT_WAIT,
        Some(w) => Duration::from_secs(
            DurationParam::parse(&json!(w))
                .map_err(|e| ApiError::bad_request(format!("wait: {e}")))?
                .0 as u64,
        )
        .min(MAX_WAIT),
    };
    // Subscribe before the first look, so a change in between is not missed.
    let mut changes = ctx.state.node.barrier().subscribe_changes();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let index = state_of(&mount, rest).await?;
        let now = tokio::time::Instant::now();
        if index != seen || now >= deadline {
            return Ok(Reply::data(json!({
                "path": target,
                "index": index,
                "changed": index != seen,
            })));
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The barrier went away (seal): answer what we know.
                    return Err(ApiError::sealed());
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// A hash of what reading `rest` on `mount` answers (status and data), or of
/// "nothing there".
async fn state_of(mount: &crate::node::mounts::Mount, rest: &str) -> Result<String, ApiError> {
    let mut request = Request::new(Operation::Read, rest);
    request.mount_point = mount.entry.path.clone();
    let mut hasher = Sha256::new();
    match mount.engine.handle(request, &mount.view).await {
        Ok(response) => {
            hasher.update(response.status.to_be_bytes());
            let body = serde_json::to_vec(&response.data).unwrap_or_default();
            hasher.update(&body);
        }
        Err(EngineError::NotFound) => hasher.update(b"absent"),
        Err(e) => return Err(e.into()),
    }
    Ok(hex::encode(&hasher.finalize()[..16]))
}
