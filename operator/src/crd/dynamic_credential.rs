//! `DynamicCredential`: a leased credential from a dynamic engine (e.g.
//! `database/creds/<role>`) kept in a Secret, renewed and rotated.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A credential issued by Cairn for a service account of this namespace and
/// kept in a Secret. Its lease is owned by this object (it survives operator
/// restarts), renewed at `renewalPercent` of its TTL, and at its max TTL
/// rotated in two phases: new credential, Secret updated, targets restarted,
/// old lease revoked once the rollouts completed.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "DynamicCredential",
    namespaced,
    status = "DynamicCredentialStatus",
    shortname = "dc",
    category = "cairn",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.leaseExpiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DynamicCredentialSpec {
    /// The core path that issues the credential, e.g.
    /// `database/creds/team-a_readonly`. It must be granted (`read`) to the
    /// service account by a SecretPolicy.
    #[schemars(length(min = 1))]
    pub path: String,
    /// The service account of this namespace whose identity requests the
    /// credential (the operator asks the API server for a token of it).
    #[schemars(length(min = 1))]
    pub service_account_name: String,
    /// Name of the Secret (in this namespace) that holds the credential. The
    /// operator creates it, owned by this object.
    #[schemars(length(min = 1))]
    pub secret_name: String,
    /// Renew the lease when this percentage of its TTL has passed.
    #[serde(default = "default_renewal_percent")]
    #[schemars(range(min = 10, max = 90))]
    pub renewal_percent: u8,
    /// Keys of the Secret mapped to fields of the credential (e.g.
    /// `PGUSER: username`). Unset: every field under its own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<BTreeMap<String, String>>,
    /// Workloads restarted (pod-template annotation) after a rotation; the
    /// old credential is revoked only once their rollouts completed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout_restart_targets: Vec<RestartTarget>,
    /// Revoke the credential when this object is deleted.
    #[serde(default = "default_true")]
    pub revoke_on_delete: bool,
    /// Seconds to wait after the rollouts completed before the old
    /// credential is revoked.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 0, max = 86400))]
    pub revoke_grace_period_seconds: u32,
}

fn default_renewal_percent() -> u8 {
    67
}

fn default_true() -> bool {
    true
}

fn default_grace() -> u32 {
    30
}

/// A workload in this namespace to restart after a rotation.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct RestartTarget {
    /// `Deployment`, `StatefulSet` or `DaemonSet` (group `apps`).
    pub kind: RestartTargetKind,
    /// The workload's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Kinds of workloads that can be restarted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestartTargetKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

/// The credential's lease and rotation, as last observed. Never holds a
/// secret value.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicCredentialStatus {
    /// `Ready` is `True` while the Secret holds a live credential.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The id of the lease of the credential in the Secret (an identifier,
    /// not a secret: using it needs the operator's rights in the core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// The TTL the lease was issued with, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<u64>,
    /// Whether the core lets the lease be renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_renewable: Option<bool>,
    /// A digest of the spec fields the credential was issued for (path,
    /// service account, Secret name, template): when they change, the
    /// credential is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_for: Option<String>,
    /// When the lease expires unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Time>,
    /// When the lease was last renewed (or issued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewed_at: Option<Time>,
    /// When the credential was last replaced by a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_at: Option<Time>,
    /// An HMAC of the credential in the Secret: changes when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
    /// A rotation waiting to revoke the previous credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
}

/// The second phase of a rotation: the Secret already holds the new
/// credential; the previous one is revoked after the rollouts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// The lease of the credential being replaced.
    pub previous_lease_id: String,
    /// When the Secret was switched to the new credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When every restart target had completed its rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts_completed_at: Option<Time>,
}
