//! The DynamicCredential controller: issue, renew, rotate in two phases,
//! revoke on delete. Each reconcile asks [`crate::rotation::plan`] for the
//! next step, performs it, and records the outcome in the status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::controllers::adoption::adopt;
use crate::controllers::credential::{
    apply_secret, clear_rotation_marks, is_gone, issue, issued_for, owner, revoke, secret_holds,
    Issued,
};
use crate::controllers::events::publish;
use crate::controllers::rollout::{restart_and_check, TargetState};
use crate::controllers::status::patch_status;
use crate::crd::{
    ready_condition, ConditionReason, DynamicCredential, DynamicCredentialStatus, RotationStatus,
    SecretPolicy, FINALIZER,
};
use crate::error::ReconcileError;
use crate::metrics::ControllerName;
use crate::rotation::{must_rotate_after_renewal, plan, LeaseClock, Observed, Rotation, Step};

/// How often a rollout is looked at while a rotation waits for it.
const ROLLOUT_POLL: Duration = Duration::from_secs(2);
/// Slow retry of a permanently failing object (an edit retries at once).
const PERMANENT_RETRY: Duration = Duration::from_secs(600);

/// The controller over every namespace's DynamicCredentials (and the
/// Secrets they own, so a deleted or edited Secret is repaired). A change
/// of a SecretPolicy also reconciles the DynamicCredentials of the service
/// accounts it names: one refused because their identity had no role (the
/// SecretPolicy applied in the same `kubectl apply` was not reconciled yet)
/// gets its credential as soon as the role is written.
///
/// The Secrets are watched as metadata only (`PartialObjectMeta`): owner
/// references are all a trigger needs, and the credentials never reach the
/// operator's memory. At most `concurrency` objects are reconciled at once.
pub fn controller(client: kube::Client, concurrency: u16) -> Controller<DynamicCredential> {
    let controller = Controller::new(
        Api::<DynamicCredential>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(concurrency))
    .owns(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default().labels("app.kubernetes.io/managed-by=cairn-operator"),
    );
    let credentials = controller.store();
    controller.watches(
        Api::<SecretPolicy>::all(client),
        watcher::Config::default(),
        move |policy| {
            let accounts = named_accounts(&policy);
            credentials
                .state()
                .into_iter()
                .filter(|dc| {
                    dc.namespace() == policy.namespace()
                        && accounts.contains(&dc.spec.service_account_name)
                })
                .map(|dc| ObjectRef::from_obj(dc.as_ref()))
                .collect::<Vec<_>>()
        },
    )
}

/// The service accounts a SecretPolicy names now or named at its last
/// reconcile (a role it no longer grants changes too).
fn named_accounts(policy: &SecretPolicy) -> BTreeSet<String> {
    policy
        .spec
        .service_accounts
        .iter()
        .chain(policy.status.iter().flat_map(|s| s.service_accounts.iter()))
        .cloned()
        .collect()
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    controller: Controller<DynamicCredential>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(error = %error, "DynamicCredential reconcile did not complete");
            }
        })
        .await;
}

#[tracing::instrument(skip_all, fields(namespace = dc.namespace(), name = %dc.name_any()))]
async fn reconcile(
    dc: Arc<DynamicCredential>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let api: Api<DynamicCredential> = Api::namespaced(ctx.kube.clone(), &namespace);
    // The status is the operator's record of which credential is live. The
    // cache may not hold this controller's last status write yet (the Secret
    // written just before it can trigger the next reconcile first), and a
    // stale status would issue or rotate a second time: read it fresh.
    let Some(dc) = api.get_opt(&dc.name_any()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let uid = dc.uid().unwrap_or_default();
    let result = finalizer(&api, FINALIZER, dc, |event| async {
        match event {
            Finalizer::Apply(dc) => apply(&dc, &ctx, &api).await,
            Finalizer::Cleanup(dc) => cleanup(&dc, &ctx).await,
        }
    })
    .await;
    ctx.metrics
        .reconciled(ControllerName::DynamicCredential, started.elapsed());
    result.map_err(|e| {
        // After any failure, check the object against the core again.
        ctx.forget(&uid);
        match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            kube::runtime::finalizer::Error::AddFinalizer(e)
            | kube::runtime::finalizer::Error::RemoveFinalizer(e) => ReconcileError::Kube(e),
            kube::runtime::finalizer::Error::UnnamedObject => ReconcileError::Metadata("name"),
            kube::runtime::finalizer::Error::InvalidFinalizer => {
                ReconcileError::Metadata("finalizer")
            }
        }
    })
}

fn error_policy(dc: Arc<DynamicCredential>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .failed(ControllerName::DynamicCredential, error.reason());
    tracing::warn!(error = %error, name = %dc.name_any(), "DynamicCredential reconcile failed");
    Action::requeue(ctx.next_backoff(&dc.uid().unwrap_or_default()))
}

async fn apply(
    dc: &DynamicCredential,
    ctx: &Context,
    api: &Api<DynamicCredential>,
) -> Result<Action, ReconcileError> {
    let original = dc.status.clone().unwrap_or_default();
    let mut status = original.clone();
    let uid = dc.uid().ok_or(ReconcileError::Metadata("uid"))?;
    let outcome = async {
        let adopted = ctx.first_sight(&uid);
        if adopted {
            status = adopt(dc, ctx, status.clone()).await?;
        }
        drive(dc, ctx, &mut status, !adopted).await
    }
    .await;
    let now = Time(Timestamp::now());
    let action = match outcome {
        Ok(action) => {
            let (reason, message) = match &status.rotation {
                Some(r) => (
                    ConditionReason::RotationInProgress,
                    format!(
                        "Secret {} holds a live credential; the previous one ({}) is revoked after the rollouts",
                        dc.spec.secret_name, r.previous_lease_id
                    ),
                ),
                None => (
                    ConditionReason::Reconciled,
                    format!("Secret {} holds a live credential", dc.spec.secret_name),
                ),
            };
            status.conditions = vec![ready_condition(
                &original.conditions,
                true,
                reason,
                message,
                dc.metadata.generation,
                now,
            )];
            status.observed_generation = dc.metadata.generation;
            ctx.succeeded(&uid);
            action
        }
        Err(error) if error.is_permanent() => {
            let reason = match error.reason() {
                crate::error::ErrorReason::CoreDenied => ConditionReason::PermissionDenied,
                _ => ConditionReason::InvalidSpec,
            };
            let condition = ready_condition(
                &original.conditions,
                false,
                reason,
                error.to_string(),
                dc.metadata.generation,
                now,
            );
            if original.conditions.first() != Some(&condition) {
                publish(ctx, dc, true, reason.as_str(), error.to_string()).await;
            }
            status.conditions = vec![condition];
            status.observed_generation = dc.metadata.generation;
            ctx.metrics
                .failed(ControllerName::DynamicCredential, error.reason());
            tracing::warn!(error = %error, "DynamicCredential refused");
            Action::requeue(PERMANENT_RETRY)
        }
        Err(error) => {
            // Keep what was achieved before the failure, then retry.
            patch_status(api, dc, Some(&original), &status).await?;
            return Err(error);
        }
    };
    patch_status(api, dc, Some(&original), &status).await?;
    Ok(action)
}

/// Performs steps until the plan says to wait. `check_secret`: whether to
/// look at the Secret first (adoption just did).
async fn drive(
    dc: &DynamicCredential,
    ctx: &Context,
    status: &mut DynamicCredentialStatus,
    check_secret: bool,
) -> Result<Action, ReconcileError> {
    let wanted = issued_for(&dc.spec);
    if let (Some(lease_id), None) = (status.lease_id.as_deref(), &status.rotation) {
        // A changed path, identity, Secret or template needs a new
        // credential; so does a Secret deleted or overwritten by someone
        // else (the operator keeps no copy of the credential to re-apply,
        // and a rotation restarts the pods still using the old one before
        // it is revoked).
        if status.issued_for.as_deref() != Some(wanted.as_str())
            || (check_secret && !secret_holds(dc, ctx, lease_id).await?)
        {
            rotate(dc, ctx, status).await?;
        }
    }
    for _ in 0..8 {
        let observed = Observed {
            now: Timestamp::now(),
            lease: clock(status),
            renewal_percent: dc.spec.renewal_percent,
            rotation: status.rotation.as_ref().map(|r| Rotation {
                rollouts_completed_at: r.rollouts_completed_at.as_ref().map(|t| t.0),
            }),
            grace: Duration::from_secs(u64::from(dc.spec.revoke_grace_period_seconds)),
        };
        match plan(&observed) {
            Step::Issue => first_issue(dc, ctx, status).await?,
            Step::Renew => renew(dc, ctx, status).await?,
            Step::Rotate => rotate(dc, ctx, status).await?,
            Step::AwaitRollouts => {
                if !rollouts_done(dc, ctx, status).await? {
                    return Ok(Action::requeue(ROLLOUT_POLL));
                }
            }
            Step::RevokePrevious => revoke_previous(dc, ctx, status).await?,
            Step::WaitUntil(at) => {
                let wait = at.duration_since(Timestamp::now());
                let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
                return Ok(Action::requeue(wait.max(Duration::from_secs(1))));
            }
        }
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

fn clock(status: &DynamicCredentialStatus) -> Option<LeaseClock> {
    status.lease_id.as_ref()?;
    let renewed_at = status.last_renewed_at.as_ref()?.0;
    let expires_at = status.lease_expires_at.as_ref()?.0;
    let ttl = expires_at.duration_since(renewed_at).as_secs().max(0);
    Some(LeaseClock {
        renewed_at,
        ttl_seconds: u64::try_from(ttl).unwrap_or(0),
        expires_at,
        renewable: status.lease_renewable.unwrap_or(true),
    })
}

/// Records a new lease; `asked` is the time the credential was asked for,
/// before the core computed its expiry, so the recorded expiry is never
/// later than the core's.
fn record_new_lease(
    dc: &DynamicCredential,
    status: &mut DynamicCredentialStatus,
    issued: &Issued,
    version: String,
    asked: Timestamp,
) {
    let now = asked;
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(issued.lease_duration).unwrap_or(i64::MAX / 2),
        ))
        .unwrap_or(now);
    status.lease_id = Some(issued.lease_id.clone());
    status.lease_duration_seconds = Some(issued.lease_duration);
    status.lease_renewable = Some(issued.renewable);
    status.lease_expires_at = Some(Time(expires));
    status.last_renewed_at = Some(Time(now));
    status.secret_version = Some(version);
    status.issued_for = Some(issued_for(&dc.spec));
}

/// No live credential: issue one. A rotation whose new credential died
/// goes on with this one.
async fn first_issue(
    dc: &DynamicCredential,
    ctx: &Context,
    status: &mut DynamicCredentialStatus,
) -> Result<(), ReconcileError> {
    let asked = Timestamp::now();
    let issued = issue(dc, ctx).await?;
    let rotated_at = Timestamp::now().to_string();
    let previous = status
        .rotation
        .as_ref()
        .map(|r| r.previous_lease_id.clone());
    let version = apply_secret(
        dc,
        ctx,
        &issued,
        previous.as_deref(),
        previous.as_ref().map(|_| rotated_at.as_str()),
    )
    .await?;
    let replaced = status.lease_id.is_some() || previous.is_some();
    record_new_lease(dc, status, &issued, version, asked);
    if let Some(rotation) = status.rotation.as_mut() {
        rotation.started_at = Some(Time(Timestamp::now()));
        rotation.rollouts_completed_at = None;
    }
    if replaced {
        status.last_rotated_at = Some(Time(Timestamp::now()));
    }
    tracing::info!(lease = %issued.lease_id, "credential issued");
    publish(
        ctx,
        dc,
        false,
        "Issued",
        format!("credential written to Secret {}", dc.spec.secret_name),
    )
    .await;
    Ok(())
}

async fn renew(
    dc: &DynamicCredential,
    ctx: &Context,
    status: &mut DynamicCredentialStatus,
) -> Result<(), ReconcileError> {
    let Some(lease_id) = status.lease_id.clone() else {
        return Ok(());
    };
    let issued_ttl = status.lease_duration_seconds.unwrap_or(0);
    let client = ctx.core.client().await;
    // Counted from before the request: never later than the core's expiry.
    let asked = Timestamp::now();
    match client.renew_lease(&lease_id, issued_ttl).await {
        Ok(renewal) => {
            let now = asked;
            status.last_renewed_at = Some(Time(now));
            status.lease_renewable = Some(renewal.renewable);
            status.lease_expires_at = now
                .checked_add(jiff::SignedDuration::from_secs(
                    i64::try_from(renewal.lease_duration).unwrap_or(0),
                ))
                .ok()
                .map(Time);
            tracing::info!(lease = %lease_id, granted = renewal.lease_duration, "lease renewed");
            if must_rotate_after_renewal(issued_ttl, renewal.lease_duration, renewal.renewable)
                && status.rotation.is_none()
            {
                rotate(dc, ctx, status).await?;
            }
            Ok(())
        }
        Err(e) if is_gone(&e) => {
            tracing::warn!(lease = %lease_id, "the lease is gone; issuing a new credential");
            status.lease_id = None;
            Ok(())
        }
        Err(e) => Err(ReconcileError::core("renew the lease")(e)),
    }
}

/// Phase one of a rotation: a new credential, the Secret switched to it
/// (with the previous lease recorded in the Secret itself).
async fn rotate(
    dc: &DynamicCredential,
    ctx: &Context,
    status: &mut DynamicCredentialStatus,
) -> Result<(), ReconcileError> {
    let Some(previous) = status.lease_id.clone() else {
        return first_issue(dc, ctx, status).await;
    };
    let asked = Timestamp::now();
    let issued = issue(dc, ctx).await?;
    let now = Timestamp::now();
    let version = apply_secret(dc, ctx, &issued, Some(&previous), Some(&now.to_string())).await?;
    record_new_lease(dc, status, &issued, version, asked);
    status.last_rotated_at = Some(Time(now));
    status.rotation = Some(RotationStatus {
        previous_lease_id: previous,
        started_at: Some(Time(now)),
        rollouts_completed_at: None,
    });
    tracing::info!(lease = %issued.lease_id, "credential rotated; restarting targets");
    publish(
        ctx,
        dc,
        false,
        "Rotated",
        format!("Secret {} holds a new credential", dc.spec.secret_name),
    )
    .await;
    Ok(())
}

/// Restarts the targets (idempotently) and answers whether every rollout
/// completed; records when.
async fn rollouts_done(
    dc: &DynamicCredential,
    ctx: &Context,
    status: &mut DynamicCredentialStatus,
) -> Result<bool, ReconcileError> {
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let Some(rotation) = status.rotation.as_mut() else {
        return Ok(true);
    };
    let stamp = rotation
        .started_at
        .get_or_insert_with(|| Time(Timestamp::now()))
        .0
        .to_string();
    let mut done = true;
    for target in &dc.spec.rollout_restart_targets {
        match restart_and_check(&ctx.kube, &namespace, target, &stamp).await? {
            TargetState::Complete => {}
            TargetState::Missing => {
                tracing::warn!(target = %target.name, "rollout target does not exist");
            }
            TargetState::Progressing => done = false,
        }
    }
    if done {
        rotation.rollouts_completed_at = Some(Time(Timestamp::now()));
        tracing::info!("rollouts completed");
    }
    Ok(done)
}

/// Phase two: the old credential is revoked, then the Secret's marks go.
async fn revoke_previous(
    dc: &DynamicCredential,
    ctx: &Context,
    status: &mut DynamicCredentialStatus,
) -> Result<(), ReconcileError> {
    let Some(rotation) = status.rotation.clone() else {
        return Ok(());
    };
    revoke(ctx, &rotation.previous_lease_id).await?;
    clear_rotation_marks(dc, ctx).await?;
    status.rotation = None;
    tracing::info!(lease = %rotation.previous_lease_id, "previous credential revoked");
    publish(
        ctx,
        dc,
        false,
        "RevokedPrevious",
        "the replaced credential was revoked after the rollouts".into(),
    )
    .await;
    Ok(())
}

async fn cleanup(dc: &DynamicCredential, ctx: &Context) -> Result<Action, ReconcileError> {
    if dc.spec.revoke_on_delete {
        let owner = owner(dc)?;
        let client = ctx.core.client().await;
        let mut body = serde_json::Map::new();
        body.insert("owner".into(), owner.header_value().into());
        client
            .write("sys/cairn/leases/revoke-owner", &body)
            .await
            .map_err(ReconcileError::core("revoke the object's leases"))?;
        tracing::info!("credentials revoked on delete");
    }
    ctx.forget(&dc.uid().unwrap_or_default());
    Ok(Action::await_change())
}
