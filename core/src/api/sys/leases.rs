//! `sys/leases/*` (and the legacy `sys/renew`, `sys/revoke`): lookup, list,
//! renew, revoke, revoke-prefix, revoke-force.

use serde_json::json;

use crate::api::call::Call;
use crate::api::pipeline::{may_act_in_namespace, Ctx};
use crate::api::reply::{ApiError, Reply};
use crate::auth::token::DurationParam;
use crate::engines::Operation;
use crate::lease::{LeaseError, Owner};

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::NotFound => ApiError::bad_request("lease not found"),
            LeaseError::NotRenewable => ApiError::bad_request("lease is not renewable"),
            LeaseError::BadRequest(m) => ApiError::bad_request(m),
            LeaseError::Revoke(m) => ApiError::bad_request(format!("failed to revoke lease: {m}")),
            LeaseError::Barrier(b) => b.into(),
        }
    }
}

/// `head` is `leases`, `renew` or `revoke`; `tail` what follows it.
pub async fn route(ctx: &Ctx<'_>, call: &Call, head: &str, tail: &str) -> Result<Reply, ApiError> {
    let op = call.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    let (verb, rest) = match head {
        "leases" => tail.split_once('/').unwrap_or((tail, "")),
        legacy => (legacy, tail),
    };
    match verb {
        "lookup" if op == Operation::List => {
            let keys = ctx.unsealed.leases.list(rest).await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Reply::data(json!({ "keys": keys })))
        }
        "lookup" if write => {
            let id = lease_id(call, rest)?;
            let entry = ctx
                .unsealed
                .leases
                .lookup(&id)
                .await?
                .ok_or(LeaseError::NotFound)?;
            Ok(Reply::data(entry.lookup_data(now_ms())))
        }
        "renew" if write => {
            let id = lease_id(call, rest)?;
            let leases = &ctx.unsealed.leases;
            let entry = leases.lookup(&id).await?.ok_or(LeaseError::NotFound)?;
            check_namespace(ctx, &call.path, &entry.owner)?;
            let increment = match call.param("increment") {
                None => 0,
                Some(v) => DurationParam::parse(&v).map_err(ApiError::bad_request)?.0,
            };
            let renewed = leases.renew(&id, increment).await?;
            let duration = renewed.ttl_left(now_ms());
            Ok(Reply {
                lease: Some((renewed.id, duration, renewed.renewable)),
                ..Reply::default()
            })
        }
        "revoke" if write => {
            let id = lease_id(call, rest)?;
            if let Some(entry) = ctx.unsealed.leases.lookup(&id).await? {
                check_namespace(ctx, &call.path, &entry.owner)?;
            }
            ctx.unsealed.leases.revoke(&id).await?;
            Ok(Reply::empty())
        }
        "revoke-prefix" if write => {
            ctx.unsealed.leases.revoke_prefix(rest, false).await?;
            Ok(Reply::empty())
        }
        "revoke-force" if write => {
            ctx.unsealed.leases.revoke_prefix(rest, true).await?;
            Ok(Reply::empty())
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

/// An object-owned lease belongs to its namespace's identities: renewing or
/// revoking it takes root or a token of that namespace.
fn check_namespace(ctx: &Ctx<'_>, path: &str, owner: &Owner) -> Result<(), ApiError> {
    match owner {
        Owner::Object { namespace, .. } if !may_act_in_namespace(ctx, path, namespace) => {
            Err(ApiError::denied())
        }
        _ => Ok(()),
    }
}

fn lease_id(call: &Call, in_path: &str) -> Result<String, ApiError> {
    match call.str_param("lease_id").filter(|s| !s.is_empty()) {
        Some(id) => Ok(id),
        None if !in_path.is_empty() => Ok(in_path.to_owned()),
        None => Err(ApiError::bad_request("missing lease_id")),
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
