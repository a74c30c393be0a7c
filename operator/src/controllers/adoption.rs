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

/// Slack for the core's expiry being on whole seconds.
const EXPIRY_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// The expiry to keep for the lease the status already records: its own,
/// unless it promises more than the core grants. The operator records an
/// expiry counted from before its request, so it is at most the core's; one
/// earlier than the core's (a renewal the status missed) only brings the
/// next renewal forward. Taking the core's on every adoption rewrote the
/// status of about every other unchanged object after each restart
/// (issue 5's benchmark).
fn adopted_expiry(recorded: Option<Time>, core: Option<Timestamp>) -> Option<Time> {
    match (recorded, core) {
        (Some(recorded), Some(core))
            if core
                .checked_add(EXPIRY_SLACK)
                .is_ok_and(|limit| recorded.0 <= limit) =>
        {
            Some(recorded)
        }
        (recorded, core) => core.map(Time).or(recorded),
    }
}

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
            let same_lease = status.lease_id.as_ref() == Some(&lease.id);
            if !same_lease || status.last_renewed_at.is_none() {
                // Unknown clock: count from now with what is left, so the
                // renewal comes early rather than late.
                status.last_renewed_at = Some(Time(now));
                status.lease_duration_seconds = Some(u64::try_from(lease.ttl).unwrap_or(0));
            }
            status.lease_id = Some(lease.id.clone());
            status.lease_expires_at = if same_lease {
                adopted_expiry(status.lease_expires_at.take(), expires)
            } else {
                expires.map(Time).or(status.lease_expires_at.take())
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_recorded_expiry_before_the_cores_stands() {
        // Counted from before the request and kept at whole seconds: the
        // core's is later and not on a second.
        let recorded = Time(at("2026-11-22T13:00:00Z"));
        let kept = adopted_expiry(Some(recorded.clone()), Some(at("2026-11-22T13:00:00.4Z")));
        assert_eq!(kept, Some(recorded.clone()));
        // A renewal the status missed: the recorded one is far earlier,
        // and still stands (the next renewal merely comes early).
        let kept = adopted_expiry(Some(recorded.clone()), Some(at("2026-11-22T14:00:00Z")));
        assert_eq!(kept, Some(recorded));
    }

    #[test]
    fn a_recorded_expiry_later_than_the_cores_is_corrected() {
        let core = at("2026-11-22T13:00:00Z");
        let kept = adopted_expiry(Some(Time(at("2026-11-22T13:00:02Z"))), Some(core));
        assert_eq!(kept, Some(Time(core)));
    }

    #[test]
    fn a_missing_side_takes_the_other() {
        let t = at("2026-11-22T13:00:00Z");
        assert_eq!(adopted_expiry(None, Some(t)), Some(Time(t)));
        assert_eq!(adopted_expiry(Some(Time(t)), None), Some(Time(t)));
        assert_eq!(adopted_expiry(None, None), None);
    }
}
