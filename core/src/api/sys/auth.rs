//! `sys/auth`: list, enable, read and disable auth methods. The token method
//! is always there; others (`kubernetes`) are mounted under `auth/`.

use serde_json::{json, Map};

use super::mounts::mount_config;
use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::engines::Operation;
use crate::node::mounts::{normalize_path, AUTH_PREFIX};

fn token_method() -> serde_json::Value {
    json!({
        "type": "token",
        "description": "token based credentials",
        "accessor": "auth_token",
        "uuid": "auth_token",
        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false, "token_type": "default-service"},
        "options": null,
        "local": false,
        "seal_wrap": false,
    })
}

/// `sys/auth[/<path>]`; `tail` is the path after `sys/auth/`.
pub async fn route(ctx: &Ctx<'_>, call: &Call, tail: &str) -> Result<Reply, ApiError> {
    let mounts = &ctx.unsealed.mounts;
    if tail.is_empty() {
        if !matches!(call.operation, Operation::Read | Operation::List) {
            return Err(ApiError::method_not_allowed());
        }
        let mut data = Map::new();
        data.insert("token/".into(), token_method());
        for m in mounts.snapshot().iter().filter(|m| m.entry.is_auth()) {
            let key = m.entry.path[AUTH_PREFIX.len()..].to_owned();
            data.insert(key, m.entry.to_json());
        }
        return Ok(Reply::listing(data));
    }
    let path = normalize_path(tail)?;
    let full = format!("{AUTH_PREFIX}{path}");
    match call.operation {
        Operation::Read => {
            if path == "token/" {
                return Ok(Reply::data(token_method()));
            }
            let m = mounts.mount_at(&full).ok_or_else(ApiError::not_found)?;
            Ok(Reply::data(m.entry.to_json()))
        }
        Operation::Create | Operation::Update => {
            let kind = call
                .str_param("type")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::bad_request("missing 'type' of the auth method"))?;
            let config = mount_config(call.param("config"))?.unwrap_or_default();
            let at = mounts
                .enable_auth(
                    tail,
                    &kind,
                    call.str_param("description").unwrap_or_default(),
                    config,
                )
                .await?;
            tracing::info!(path = %at, kind = %kind, "auth method enabled");
            Ok(Reply::empty())
        }
        Operation::Delete => {
            if mounts.mount_at(&full).is_none() {
                // Vault answers success for a path with nothing mounted.
                return Ok(Reply::empty());
            }
            // What the method issued goes with it: its tokens (and so the
            // leases they own), then its roles and config.
            ctx.unsealed.tokens.revoke_issued_by(&full).await?;
            mounts.disable_auth(tail).await?;
            tracing::info!(path = %full, "auth method disabled");
            Ok(Reply::empty())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
