//! Cairn's lease-owner endpoints, for leases owned by Kubernetes objects:
//!
//! - `GET sys/cairn/leases/owners[?kind=Pod]`: every owning object and its
//!   lease count (the operator's garbage collection compares it with the
//!   objects that still exist);
//! - `PUT sys/cairn/leases/owner {owner}`: the leases of one object (the CSI
//!   provider finds a pod's leases after a restart);
//! - `PUT sys/cairn/leases/revoke-owner {owner}`: revoke them all (the
//!   object is gone).
//!
//! Besides the ACL, a token bound to a namespace (Kubernetes login) may name
//! only objects of its own namespace, as when it binds a lease; `sudo` on the
//! path (the operator's garbage collection) or root reaches every namespace.

use serde_json::{json, Value};

use super::leases::now_ms;
use crate::api::call::Call;
use crate::api::pipeline::{may_act_in_namespace, Ctx};
use crate::api::reply::{ApiError, Reply};
use crate::engines::Operation;
use crate::lease::Owner;

fn owner_json(owner: &Owner) -> Value {
    match owner {
        Owner::Object {
            namespace,
            kind,
            name,
            uid,
        } => json!({
            "owner": format!("{namespace}/{kind}/{name}/{uid}"),
            "namespace": namespace, "kind": kind, "name": name, "uid": uid,
        }),
        Owner::Token { .. } => json!({}),
    }
}

/// The `owner` of the body, checked against the caller's namespace.
fn owner_param(ctx: &Ctx<'_>, call: &Call) -> Result<Owner, ApiError> {
    let text = call
        .str_param("owner")
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing owner (namespace/kind/name/uid)"))?;
    let owner = Owner::parse_object(&text).map_err(ApiError::bad_request)?;
    match &owner {
        Owner::Object { namespace, .. } if !may_act_in_namespace(ctx, &call.path, namespace) => {
            Err(ApiError::denied())
        }
        _ => Ok(owner),
    }
}

/// `sys/cairn/leases/<rest>`.
pub async fn route(ctx: &Ctx<'_>, call: &Call, rest: &str) -> Result<Reply, ApiError> {
    let leases = &ctx.unsealed.leases;
    let write = matches!(call.operation, Operation::Update | Operation::Create);
    match rest {
        "owners" if call.operation == Operation::Read => {
            let kind = call.query("kind").filter(|k| !k.is_empty());
            let owners: Vec<Value> = leases
                .owners(kind)
                .await?
                .into_iter()
                .filter(|(o, _)| match o {
                    Owner::Object { namespace, .. } => {
                        may_act_in_namespace(ctx, &call.path, namespace)
                    }
                    Owner::Token { .. } => false,
                })
                .map(|(o, count)| {
                    let mut v = owner_json(&o);
                    v["leases"] = json!(count);
                    v
                })
                .collect();
            Ok(Reply::data(json!({ "owners": owners })))
        }
        "owner" if write => {
            let owner = owner_param(ctx, call)?;
            let now = now_ms();
            let found: Vec<Value> = leases
                .by_owner(&owner)
                .await?
                .iter()
                .map(|e| e.lookup_data(now))
                .collect();
            Ok(Reply::data(json!({ "leases": found })))
        }
        "revoke-owner" if write => {
            let owner = owner_param(ctx, call)?;
            let revoked = leases.revoke_owner(&owner).await?;
            tracing::info!(revoked, "revoked the leases of a deleted object");
            Ok(Reply::data(json!({ "revoked": revoked })))
        }
        _ => Err(ApiError::unsupported_path()),
    }
}
