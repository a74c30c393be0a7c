//! `sys/mounts` and `sys/auth` listings, `sys/internal/ui/mounts/<path>`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::auth::token::DurationParam;
use crate::engines::Operation;
use crate::node::mounts::MountConfig;

fn string_map(v: Option<Value>, what: &str) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                Value::Bool(b) => Ok((k, b.to_string())),
                _ => Err(ApiError::bad_request(format!(
                    "{what}.{k} must be a string"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(format!("{what} must be an object"))),
    }
}

pub fn mount_config(v: Option<Value>) -> Result<Option<MountConfig>, ApiError> {
    let Some(Value::Object(m)) = v else {
        return Ok(None);
    };
    let ttl = |name: &str| -> Result<i64, ApiError> {
        match m.get(name) {
            None => Ok(0),
            Some(Value::String(s)) if s == "system" => Ok(0),
            Some(v) => DurationParam::parse(v)
                .map(|d| d.0)
                .map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
        }
    };
    Ok(Some(MountConfig {
        default_lease_ttl: ttl("default_lease_ttl")?,
        max_lease_ttl: ttl("max_lease_ttl")?,
    }))
}

fn tune_params(call: &Call) -> Result<Option<MountConfig>, ApiError> {
    // Tune takes the TTLs at the top level of the body.
    let mut m = Map::new();
    for k in ["default_lease_ttl", "max_lease_ttl"] {
        if let Some(v) = call.data.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    if m.is_empty() {
        return Ok(None);
    }
    mount_config(Some(Value::Object(m)))
}

pub async fn route(ctx: &Ctx<'_>, call: &Call, tail: &str) -> Result<Reply, ApiError> {
    let mounts = &ctx.unsealed.mounts;
    if tail.is_empty() {
        return match call.operation {
            Operation::Read | Operation::List => {
                let mut data = Map::new();
                // The core's own mount, as Vault lists it.
                data.insert(
                    "sys/".into(),
                    json!({
                        "type": "system",
                        "description": "system endpoints used for control, policy and debugging",
                        "accessor": "system",
                        "uuid": "system",
                        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
                        "options": null,
                        "local": false,
                        "seal_wrap": true,
                        "external_entropy_access": false,
                    }),
                );
                for m in mounts.snapshot().iter().filter(|m| !m.entry.is_auth()) {
                    data.insert(m.entry.path.clone(), m.entry.to_json());
                }
                Ok(Reply::listing(data))
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    if let Some(path) = tail.strip_suffix("/tune") {
        return match call.operation {
            Operation::Read => {
                let wanted = format!("{path}/");
                let (m, _) = mounts
                    .route(&wanted)
                    .filter(|(m, _)| m.entry.path == wanted && !m.entry.is_auth())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("cannot fetch sysview for path {path:?}"))
                    })?;
                Ok(Reply::data(tune_json(&m.entry)))
            }
            Operation::Update | Operation::Create => {
                let options = string_map(call.param("options"), "options")?;
                mounts
                    .tune(
                        path,
                        tune_params(call)?,
                        call.str_param("description"),
                        options,
                    )
                    .await?;
                Ok(Reply::empty())
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    match call.operation {
        Operation::Update | Operation::Create => {
            let kind = call
                .str_param("type")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::bad_request("missing 'type' of the secrets engine"))?;
            let options = string_map(call.param("options"), "options")?.unwrap_or_default();
            let config = mount_config(call.param("config"))?.unwrap_or_default();
            let local = matches!(call.param("local"), Some(Value::Bool(true)));
            mounts
                .enable(
                    tail,
                    &kind,
                    call.str_param("description").unwrap_or_default(),
                    config,
                    options,
                    local,
                )
                .await?;
            tracing::info!(path = %tail, kind = %kind, "secrets engine enabled");
            Ok(Reply::empty())
        }
        Operation::Delete => {
            // Vault revokes a mount's leases before unmounting it; a lease that
            // cannot be revoked keeps the mount (and its engine) in place.
            let prefix = crate::node::mounts::normalize_path(tail)?;
            ctx.unsealed
                .leases
                .revoke_prefix(&prefix, false)
                .await
                .map_err(|e| {
                    ApiError::bad_request(format!("failed to revoke the mount's leases: {e}"))
                })?;
            mounts.disable(tail).await?;
            tracing::info!(path = %tail, "secrets engine disabled");
            Ok(Reply::empty())
        }
        Operation::Read => {
            let wanted = format!("{tail}/");
            let (m, _) = mounts.route(&wanted).ok_or_else(ApiError::not_found)?;
            if m.entry.path != wanted || m.entry.is_auth() {
                return Err(ApiError::not_found());
            }
            Ok(Reply::data(m.entry.to_json()))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn tune_json(e: &crate::node::mounts::MountEntry) -> Value {
    json!({
        "default_lease_ttl": if e.config.default_lease_ttl == 0 { crate::auth::token::DEFAULT_TTL } else { e.config.default_lease_ttl },
        "max_lease_ttl": if e.config.max_lease_ttl == 0 { crate::auth::token::DEFAULT_TTL } else { e.config.max_lease_ttl },
        "force_no_cache": false,
        "description": e.description,
        "options": e.options,
    })
}

/// `sys/internal/ui/mounts/<path>`: which mount serves a path (the CLI uses it
/// to find a KV mount and its version).
pub fn ui_mount(ctx: &Ctx<'_>, path: &str) -> Result<Reply, ApiError> {
    let (m, _) = ctx
        .unsealed
        .mounts
        .route(path)
        .ok_or_else(ApiError::not_found)?;
    let mut data = m.entry.to_json();
    data["path"] = json!(m.entry.path);
    Ok(Reply::data(data))
}
