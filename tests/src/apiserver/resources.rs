//! The kinds the test API server serves: one row per kind, so adding a kind is one line.

/// What the server simulates for a kind beyond plain storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Stored as given.
    Plain,
    /// `core/v1` Secret: `stringData` folded into `data`, `data` checked to be base64, `immutable` enforced.
    Secret,
    /// `core/v1` ServiceAccount: has the `token` subresource (TokenRequest).
    ServiceAccount,
    /// `authentication.k8s.io/v1` TokenReview: create-only, answered, never stored.
    TokenReview,
    /// `apps/v1` Deployment: rollout simulated after each generation bump.
    Deployment,
    /// `apps/v1` StatefulSet: rollout simulated after each generation bump.
    StatefulSet,
    /// `apps/v1` DaemonSet: rollout simulated after each generation bump.
    DaemonSet,
}

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind, e.g. `Secret`.
    pub kind: &'static str,
    /// Plural resource name used in URLs and RBAC rules, e.g. `secrets`.
    pub plural: &'static str,
    /// Lower-case singular name.
    pub singular: &'static str,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Has a `/status` subresource (main-resource writes keep the stored status).
    pub status: bool,
    /// `metadata.generation` is kept and bumped when anything but metadata and status changes.
    pub generation: bool,
    /// A PUT without `metadata.resourceVersion` is allowed (false for custom resources, as in Kubernetes).
    pub unconditional_update: bool,
    /// Short names listed in discovery.
    pub short_names: &'static [&'static str],
    /// Special behaviour.
    pub behaviour: Behaviour,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The subresources this type serves.
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut subs = Vec::new();
        if self.status {
            subs.push("status");
        }
        if self.behaviour == Behaviour::ServiceAccount {
            subs.push("token");
        }
        subs
    }

    /// Verbs listed in discovery.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.behaviour == Behaviour::TokenReview {
            &["create"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    /// Whether this is a workload whose rollout the server simulates.
    pub fn is_workload(&self) -> bool {
        matches!(
            self.behaviour,
            Behaviour::Deployment | Behaviour::StatefulSet | Behaviour::DaemonSet
        )
    }
}

macro_rules! kind {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, ns=$ns:expr, status=$status:expr, generation=$gen:expr, unconditional=$uncond:expr, short=$short:expr, $behaviour:ident) => {
        ResourceType {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            status: $status,
            generation: $gen,
            unconditional_update: $uncond,
            short_names: $short,
            behaviour: Behaviour::$behaviour,
        }
    };
}

/// Every kind the server serves.
pub static RESOURCES: &[ResourceType] = &[
    kind!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        ns = false,
        status = true,
        generation = false,
        unconditional = true,
        short = &["ns"],
        Plain
    ),
    kind!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        ns = true,
        status = false,
        generation = false,
        unconditional = true,
        short = &[],
        Secret
    ),
    kind!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        ns = true,
        status = false,
        generation = false,
        unconditional = true,
        short = &["cm"],
        Plain
    ),
    kind!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ns = true,
        status = false,
        generation = false,
        unconditional = true,
        short = &["sa"],
        ServiceAccount
    ),
    kind!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        ns = true,
        status = true,
        generation = true,
        unconditional = true,
        short = &["po"],
        Plain
    ),
    kind!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        ns = true,
        status = false,
        generation = false,
        unconditional = true,
        short = &["ev"],
        Plain
    ),
    kind!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        ns = true,
        status = false,
        generation = false,
        unconditional = true,
        short = &["ev"],
        Plain
    ),
    kind!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ns = true,
        status = true,
        generation = true,
        unconditional = true,
        short = &["deploy"],
        Deployment
    ),
    kind!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        ns = true,
        status = true,
        generation = true,
        unconditional = true,
        short = &["sts"],
        StatefulSet
    ),
    kind!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ns = true,
        status = true,
        generation = true,
        unconditional = true,
        short = &["ds"],
        DaemonSet
    ),
    kind!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        ns = true,
        status = false,
        generation = false,
        unconditional = true,
        short = &[],
        Plain
    ),
    kind!(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        ns = false,
        status = false,
        generation = false,
        unconditional = true,
        short = &[],
        TokenReview
    ),
    kind!(
        "cairn.dev",
        "v1alpha1",
        "SecretPolicy",
        "secretpolicies",
        "secretpolicy",
        ns = true,
        status = true,
        generation = true,
        unconditional = false,
        short = &["sp"],
        Plain
    ),
    kind!(
        "cairn.dev",
        "v1alpha1",
        "DynamicCredential",
        "dynamiccredentials",
        "dynamiccredential",
        ns = true,
        status = true,
        generation = true,
        unconditional = false,
        short = &["dc"],
        Plain
    ),
];

/// The type served under `group`/`version` with plural `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The `(group, versions)` pairs served, in table order, core group first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_unique_and_found() {
        for r in RESOURCES {
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
        }
        assert!(find("", "v1", "nope").is_none());
        assert_eq!(group_versions()[0], ("", "v1"));
    }
}
