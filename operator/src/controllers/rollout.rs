//! Rollout restarts of a DynamicCredential's targets, and whether their
//! rollouts completed. The restart is a patch of a pod-template annotation
//! whose value is the rotation's start time, so repeating it (after a crash)
//! changes nothing and starts no second rollout.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::crd::{RestartTarget, RestartTargetKind};
use crate::error::ReconcileError;

/// The pod-template annotation the operator sets (as `kubectl rollout
/// restart` sets `kubectl.kubernetes.io/restartedAt`).
pub const RESTARTED_AT: &str = "cairn.dev/restartedAt";

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// The rollout is still going.
    Progressing,
    /// Every replica runs the restarted template and is available.
    Complete,
    /// The target does not exist (nothing to restart).
    Missing,
}

/// Patches `target`'s pod template with `restarted_at` (no-op when it
/// already carries it) and answers where its rollout stands.
pub async fn restart_and_check(
    client: &kube::Client,
    namespace: &str,
    target: &RestartTarget,
    restarted_at: &str,
) -> Result<TargetState, ReconcileError> {
    let client = client.clone();
    let name = &target.name;
    match target.kind {
        RestartTargetKind::Deployment => {
            let template: Template<Deployment> = |d| d.spec.as_ref().map(|s| &s.template.metadata);
            restart(
                Api::namespaced(client, namespace),
                name,
                restarted_at,
                template,
                deployment_state,
            )
            .await
        }
        RestartTargetKind::StatefulSet => {
            let template: Template<StatefulSet> = |s| s.spec.as_ref().map(|s| &s.template.metadata);
            restart(
                Api::namespaced(client, namespace),
                name,
                restarted_at,
                template,
                stateful_set_state,
            )
            .await
        }
        RestartTargetKind::DaemonSet => {
            let template: Template<DaemonSet> = |d| d.spec.as_ref().map(|s| &s.template.metadata);
            restart(
                Api::namespaced(client, namespace),
                name,
                restarted_at,
                template,
                daemon_set_state,
            )
            .await
        }
    }
}

type TemplateMeta<'a> = Option<&'a Option<ObjectMeta>>;
/// Where a workload kind keeps its pod template's metadata.
type Template<K> = for<'a> fn(&'a K) -> TemplateMeta<'a>;

/// The restart of one workload kind: read it, patch its pod template's
/// annotation unless it already carries `restarted_at`, judge its rollout.
async fn restart<K>(
    api: Api<K>,
    name: &str,
    restarted_at: &str,
    template: Template<K>,
    state: fn(&K) -> TargetState,
) -> Result<TargetState, ReconcileError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(current) = api.get_opt(name).await? else {
        return Ok(TargetState::Missing);
    };
    let current = if annotation(template(&current)) != Some(restarted_at) {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(restart_patch(restarted_at)),
        )
        .await?
    } else {
        current
    };
    Ok(state(&current))
}

fn annotation(meta: TemplateMeta<'_>) -> Option<&str> {
    meta?
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_AT)
        .map(String::as_str)
}

fn restart_patch(restarted_at: &str) -> serde_json::Value {
    json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: restarted_at } } } } })
}

/// A Deployment's rollout is complete when its controller saw the current
/// generation and every replica is updated and available, with no old ones
/// left (what `kubectl rollout status` waits for).
pub fn deployment_state(d: &Deployment) -> TargetState {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return TargetState::Progressing;
    };
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if observed && updated >= want && total == updated && available >= updated {
        TargetState::Complete
    } else {
        TargetState::Progressing
    }
}

/// A StatefulSet is rolled out when every replica runs the update revision.
pub fn stateful_set_state(s: &StatefulSet) -> TargetState {
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &s.status else {
        return TargetState::Progressing;
    };
    let observed = status.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
    let same_revision =
        status.update_revision.is_some() && status.update_revision == status.current_revision;
    if observed
        && status.updated_replicas.unwrap_or(0) >= want
        && status.ready_replicas.unwrap_or(0) >= want
        && same_revision
    {
        TargetState::Complete
    } else {
        TargetState::Progressing
    }
}

/// A DaemonSet is rolled out when every scheduled pod is updated and
/// available.
pub fn daemon_set_state(d: &DaemonSet) -> TargetState {
    let Some(status) = &d.status else {
        return TargetState::Progressing;
    };
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let desired = status.desired_number_scheduled;
    if observed
        && status.updated_number_scheduled.unwrap_or(0) >= desired
        && status.number_available.unwrap_or(0) >= desired
    {
        TargetState::Complete
    } else {
        TargetState::Progressing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        total: i32,
        available: i32,
    ) -> Deployment {
        let mut d = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                replicas: Some(total),
                available_replicas: Some(available),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.metadata.generation = Some(generation);
        d
    }

    #[test]
    fn deployment_rollout_completes_only_when_old_pods_are_gone() {
        assert_eq!(
            deployment_state(&deployment(2, 1, 2, 2, 2, 2)),
            TargetState::Progressing
        );
        assert_eq!(
            deployment_state(&deployment(2, 2, 2, 1, 3, 2)),
            TargetState::Progressing
        );
        assert_eq!(
            deployment_state(&deployment(2, 2, 2, 2, 3, 2)),
            TargetState::Progressing
        );
        assert_eq!(
            deployment_state(&deployment(2, 2, 2, 2, 2, 1)),
            TargetState::Progressing
        );
        assert_eq!(
            deployment_state(&deployment(2, 2, 2, 2, 2, 2)),
            TargetState::Complete
        );
    }

    #[test]
    fn restart_patch_sets_the_template_annotation() {
        let p = restart_patch("2026-11-22T10:00:00Z");
        assert_eq!(
            p["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
            "2026-11-22T10:00:00Z"
        );
    }
}
