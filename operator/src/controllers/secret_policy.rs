//! The SecretPolicy controller: core ACL policy `k8s.<ns>.<name>` and the
//! roles `<ns>.<sa>` of the service accounts it names.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{self, Action};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::runtime::Controller;
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::controllers::events::publish;
use crate::controllers::status::patch_status;
use crate::crd::{ready_condition, ConditionReason, SecretPolicy, SecretPolicyStatus, FINALIZER};
use crate::error::ReconcileError;
use crate::metrics::ControllerName;
use crate::policy_hcl::{policy_hcl, policy_name};
use crate::roles::{desired_roles, role_matches, role_name, validate};

/// How often an accepted policy is checked against the core anyway (drift).
const RESYNC: Duration = Duration::from_secs(600);

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    controller: Controller<SecretPolicy>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(error = %error, "SecretPolicy reconcile did not complete");
            }
        })
        .await;
}

/// The controller over every namespace's SecretPolicies; its store is the
/// one the role unions read.
pub fn controller(client: kube::Client, concurrency: u16) -> Controller<SecretPolicy> {
    Controller::new(Api::<SecretPolicy>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(concurrency))
}

#[tracing::instrument(skip_all, fields(namespace = policy.namespace(), name = %policy.name_any()))]
async fn reconcile(policy: Arc<SecretPolicy>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = policy
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let api: Api<SecretPolicy> = Api::namespaced(ctx.kube.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            Finalizer::Apply(p) => apply(&p, &ctx, &api).await,
            Finalizer::Cleanup(p) => cleanup(&p, &ctx).await,
        }
    })
    .await;
    ctx.metrics
        .reconciled(ControllerName::SecretPolicy, started.elapsed());
    result.map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        kube::runtime::finalizer::Error::AddFinalizer(e)
        | kube::runtime::finalizer::Error::RemoveFinalizer(e) => ReconcileError::Kube(e),
        kube::runtime::finalizer::Error::UnnamedObject => ReconcileError::Metadata("name"),
        kube::runtime::finalizer::Error::InvalidFinalizer => ReconcileError::Metadata("finalizer"),
    })
}

fn error_policy(policy: Arc<SecretPolicy>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .failed(ControllerName::SecretPolicy, error.reason());
    tracing::warn!(error = %error, name = %policy.name_any(), "SecretPolicy reconcile failed");
    let key = policy.uid().unwrap_or_default();
    if error.is_permanent() {
        // A condition explains it; an edit of the object retries at once.
        Action::requeue(RESYNC)
    } else {
        Action::requeue(ctx.next_backoff(&key))
    }
}

async fn apply(
    policy: &SecretPolicy,
    ctx: &Context,
    api: &Api<SecretPolicy>,
) -> Result<Action, ReconcileError> {
    let namespace = policy
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let name = policy.name_any();
    let core_name = policy_name(&namespace, &name);
    let previous = policy.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());

    let verdict = validate(policy, &ctx.templates);
    // Roles of the accounts named now and of those named before (shrunk).
    let accounts: BTreeSet<String> = policy
        .spec
        .service_accounts
        .iter()
        .chain(previous.service_accounts.iter())
        .cloned()
        .collect();

    let status = match verdict {
        Err(refusal) => {
            // Refused: whatever an earlier accepted version granted goes.
            sync_roles(ctx, &namespace, &accounts).await?;
            let client = ctx.core.client().await;
            if previous.policy_name.is_some() {
                client
                    .delete_policy(&core_name)
                    .await
                    .map_err(ReconcileError::core("delete a refused policy"))?;
            }
            let reason = match refusal {
                crate::roles::SpecError::Path(_) => ConditionReason::PathNotAllowed,
                _ => ConditionReason::InvalidSpec,
            };
            let condition = ready_condition(
                &previous.conditions,
                false,
                reason,
                refusal.to_string(),
                policy.metadata.generation,
                now,
            );
            if previous.conditions.first() != Some(&condition) {
                publish(ctx, policy, true, "Refused", refusal.to_string()).await;
            }
            SecretPolicyStatus {
                conditions: vec![condition],
                observed_generation: policy.metadata.generation,
                policy_name: None,
                service_accounts: Vec::new(),
            }
        }
        Ok(_) => {
            let desired = policy_hcl(policy)?;
            let client = ctx.core.client().await;
            let current = match client.read_policy(&core_name).await {
                Ok(p) => Some(p.policy),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(ReconcileError::core("read the policy")(e)),
            };
            if current.as_deref() != Some(desired.as_str()) {
                client
                    .write_policy(&core_name, &desired)
                    .await
                    .map_err(ReconcileError::core("write the policy"))?;
                tracing::info!(policy = %core_name, "policy written");
            }
            sync_roles(ctx, &namespace, &accounts).await?;
            let message = format!(
                "policy {core_name} granted to {}",
                policy.spec.service_accounts.join(", ")
            );
            let condition = ready_condition(
                &previous.conditions,
                true,
                ConditionReason::Reconciled,
                message.clone(),
                policy.metadata.generation,
                now,
            );
            if previous.conditions.first() != Some(&condition) {
                publish(ctx, policy, false, "Accepted", message).await;
            }
            let mut sas = policy.spec.service_accounts.clone();
            sas.sort();
            sas.dedup();
            SecretPolicyStatus {
                conditions: vec![condition],
                observed_generation: policy.metadata.generation,
                policy_name: Some(core_name),
                service_accounts: sas,
            }
        }
    };
    patch_status(api, policy, policy.status.as_ref(), &status).await?;
    ctx.succeeded(&policy.uid().unwrap_or_default());
    Ok(Action::requeue(RESYNC))
}

async fn cleanup(policy: &SecretPolicy, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = policy
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let accounts: BTreeSet<String> = policy
        .spec
        .service_accounts
        .iter()
        .chain(policy.status.iter().flat_map(|s| s.service_accounts.iter()))
        .cloned()
        .collect();
    // The object carries a deletionTimestamp, so the unions leave it out.
    sync_roles(ctx, &namespace, &accounts).await?;
    let core_name = policy_name(&namespace, &policy.name_any());
    let client = ctx.core.client().await;
    match client.delete_policy(&core_name).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(ReconcileError::core("delete the policy")(e)),
    }
    tracing::info!(policy = %core_name, "policy removed");
    Ok(Action::await_change())
}

/// Brings the roles of `accounts` in `namespace` to the union of the
/// SecretPolicies in the cache, writing only those that differ.
async fn sync_roles(
    ctx: &Context,
    namespace: &str,
    accounts: &BTreeSet<String>,
) -> Result<(), ReconcileError> {
    let _guard = ctx.role_lock.lock().await;
    let cached = ctx.policies.state();
    let policies: Vec<&SecretPolicy> = cached.iter().map(|p| p.as_ref()).collect();
    let desired = desired_roles(namespace, accounts, &policies, &ctx.templates);
    let client = ctx.core.client().await;
    let mount = ctx.core.mount().to_owned();
    for (sa, role) in desired {
        let name = role_name(namespace, &sa);
        let current = client
            .read_kubernetes_role(&mount, &name)
            .await
            .map_err(ReconcileError::core("read a role"))?;
        match (current, role) {
            (Some(current), Some(role)) if role_matches(&current, &role) => {}
            (_, Some(role)) => {
                client
                    .write_kubernetes_role(&mount, &name, &role)
                    .await
                    .map_err(ReconcileError::core("write a role"))?;
                tracing::info!(role = %name, policies = ?role.token_policies, "role written");
            }
            (Some(_), None) => {
                client
                    .delete_kubernetes_role(&mount, &name)
                    .await
                    .map_err(ReconcileError::core("delete a role"))?;
                tracing::info!(role = %name, "role deleted");
            }
            (None, None) => {}
        }
    }
    Ok(())
}
