//! `SecretPolicy`: capabilities on core paths granted to service accounts of
//! the object's own namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Grants the named service accounts of this namespace capabilities on core
/// paths. The operator writes one core ACL policy `k8s.<namespace>.<name>`
/// and adds it to the Kubernetes-auth role `<namespace>.<serviceAccount>` of
/// every named service account. Paths outside the operator's path templates
/// (by default: this namespace's own paths) are refused.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "SecretPolicy",
    namespaced,
    status = "SecretPolicyStatus",
    shortname = "sp",
    category = "cairn",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.policyName"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SecretPolicySpec {
    /// Names of service accounts in this namespace that receive the rules.
    /// Each logs in to Cairn without naming a role (the role
    /// `<namespace>.<serviceAccount>` applies).
    #[schemars(length(min = 1))]
    pub service_accounts: Vec<String>,
    /// Paths in the core and the capabilities granted on them. A `*` suffix
    /// matches any path with that prefix, `+` one path segment.
    #[schemars(length(min = 1))]
    pub rules: Vec<PolicyRule>,
    /// Lifetime of the Cairn tokens these service accounts get at login, as a
    /// duration such as `30m` or `1h`. With several SecretPolicies naming one
    /// service account, the shortest applies. Unset: the core's default.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "tokenTTL")]
    pub token_ttl: Option<String>,
}

/// One ACL rule.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PolicyRule {
    /// A core API path without the `/v1/` prefix, e.g.
    /// `secret/data/team-a/*` or `database/creds/team-a_readonly`.
    #[schemars(length(min = 1))]
    pub path: String,
    /// What the service accounts may do on the path.
    #[schemars(length(min = 1))]
    pub capabilities: Vec<Capability>,
}

/// A capability of an ACL rule. `sudo` and `root` are not offered: a
/// namespace's workloads never need privileged endpoints.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Write to a path that holds nothing yet.
    Create,
    /// Read the path.
    Read,
    /// Write to a path that holds something.
    Update,
    /// Patch the path.
    Patch,
    /// Delete the path.
    Delete,
    /// List the keys under the path.
    List,
    /// Deny, overriding any other grant on the path.
    Deny,
}

impl Capability {
    /// The capability as the core's policy language spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Deny => "deny",
        }
    }
}

/// What the operator last did with a SecretPolicy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretPolicyStatus {
    /// `Ready` is `True` when the policy and the roles are written to the
    /// core; `False` with a reason (e.g. `PathNotAllowed`) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the core ACL policy, `k8s.<namespace>.<name>`, while it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// The service accounts whose roles hold the policy now, so that a
    /// service account removed from the spec gets its role shrunk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
}
