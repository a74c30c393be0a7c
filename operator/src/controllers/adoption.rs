//! Restart safety: the first time a leader sees a DynamicCredential, it
//! compares the leases the core holds for the object with the Secret, the
//! one record written together with a credential.
//!
//! - A lease the Secret does not name (neither current nor previous) was
//!   issued by a run that died before writing the Secret: nobody can use it,
//!   so it is revoked (no leaked lease, no duplicate credential kept).
//! - A Secret naming a lease the core no longer has points at a dead
//!   credential: the status loses its lease and the next step issues one.
//! - A previous lease still alive means a rotation was in flight: it goes
//!   on (restart, wait, revoke) from the Secret's rotation time.

use std::collections::BTreeSet;

use cairn_client::LeaseInfo;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};
use serde::Deserialize;

use crate::context::Context;
use crate::controllers::credential::{
    owner, revoke, LEASE_ANNOTATION, PREVIOUS_ANNOTATION, ROTATED_AT_ANNOTATION,
};
use crate::controllers::events::publish;
use crate::crd::{DynamicCredential, DynamicCredentialStatus, RotationStatus};
use crate::error::ReconcileError;

#[derive(Deserialize)]
struct OwnerLeases {
    #[serde(default)]
    leases: Vec<LeaseInfo>,
}

/// The leases the core holds for `dc`.
pub async fn owned_leases(
    dc: &DynamicCredential,
    ctx: &Context,
) -> Result<Vec<LeaseInfo>, ReconcileError> {
    let owner = owner(dc)?;
    let client = ctx.core.client().await;
    let mut body = serde_json::Map::new();
    body.insert("owner".into(), owner.header_value().into());
    let answer = client
        .write("sys/cairn/leases/owner", &body)
        .await
        .map_err(ReconcileError::core("list the object's leases"))?;
    let data = answer
        .and_then(|v| v.get("data").cloned())
        .unwrap_or(serde_json::Value::Null);
    let parsed: OwnerLeases = serde_json::from_value(data)
        .map_err(|e| ReconcileError::CoreAnswer(format!("owner leases: {e}")))?;
    Ok(parsed.leases)
}

/// Reconciles the status with the core and the Secret; answers the
/// corrected status.
pub async fn adopt(
    dc: &DynamicCredential,
    ctx: &Context,
    mut status: DynamicCredentialStatus,
) -> Result<DynamicCredentialStatus, ReconcileError> {
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let uid = dc.uid().ok_or(ReconcileError::Metadata("uid"))?;
    let live = owned_leases(dc, ctx).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let secret = secrets.get_opt(&dc.spec.secret_name).await?;
    // Only a Secret this object owns speaks for it.
    let annotations = secret
        .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
        .map(|s| s.annotations().clone())
        .unwrap_or_default();
    let is_live = |id: &str| live.iter().any(|l| l.id == id);
    let current = annotations
        .get(LEASE_ANNOTATION)
        .filter(|id| is_live(id))
        .cloned();
    let previous = annotations
        .get(PREVIOUS_ANNOTATION)
        .filter(|id| is_live(id))
        .cloned();
    let keep: BTreeSet<&String> = current.iter().chain(previous.iter()).collect();
    for lease in live.iter().filter(|l| !keep.contains(&l.id)) {
        revoke(ctx, &lease.id).await?;
        tracing::warn!(lease = %lease.id, "revoked a credential that no Secret holds");
        publish(
            ctx,
            dc,
            true,
            "RevokedOrphan",
            "revoked a credential issued by an interrupted run and never stored".into(),
        )
        .await;
    }
    match live.iter().find(|l| Some(&l.id) == current.as_ref()) {
        Some(lease) => {
            let now = Timestamp::now();
            let expires = lease
                .expire_time
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok());
            if status.lease_id.as_ref() != Some(&lease.id) || status.last_renewed_at.is_none() {
                // Unknown clock: count from now with what is left, so the
                // renewal comes early rather than late.
                status.last_renewed_at = Some(Time(now));
                status.lease_duration_seconds = Some(u64::try_from(lease.ttl).unwrap_or(0));
            }
            status.lease_id = Some(lease.id.clone());
            status.lease_expires_at = expires.map(Time).or(status.lease_expires_at);
            status.lease_renewable = Some(lease.renewable);
        }
        None => {
            status.lease_id = None;
            status.lease_expires_at = None;
            status.last_renewed_at = None;
        }
    }
    status.rotation = previous.map(|previous_lease_id| {
        let same = status
            .rotation
            .as_ref()
            .filter(|r| r.previous_lease_id == previous_lease_id);
        RotationStatus {
            started_at: annotations
                .get(ROTATED_AT_ANNOTATION)
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(Time)
                .or_else(|| same.and_then(|r| r.started_at.clone())),
            rollouts_completed_at: same.and_then(|r| r.rollouts_completed_at.clone()),
            previous_lease_id,
        }
    });
    Ok(status)
}
