//! Per-identity Kubernetes-auth roles: the role `<namespace>.<sa>` holds the
//! union of the policies of every SecretPolicy that names the service
//! account and passes confinement. Pure: computed from the SecretPolicies the
//! controller's cache holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cairn_client::KubernetesRole;
use kube::ResourceExt;

use crate::crd::SecretPolicy;
use crate::policy_hcl::policy_name;
use crate::templates::PathTemplates;

/// The audience the operator requires of service-account tokens at login.
pub const AUDIENCE: &str = "cairn";

/// Name of the role of service account `sa` in `namespace`.
pub fn role_name(namespace: &str, sa: &str) -> String {
    format!("{namespace}.{sa}")
}

/// Why a SecretPolicy's spec cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A rule path is outside the templates or malformed.
    #[error("{0}")]
    Path(String),
    /// `tokenTTL` is not a duration.
    #[error("tokenTTL {0:?} is not a duration such as 30m or 1h")]
    TokenTtl(String),
    /// A service account name is not a Kubernetes name.
    #[error("service account name {0:?} is not a valid name")]
    ServiceAccount(String),
}

/// Checks a SecretPolicy's spec: every path confined, the TTL parsable,
/// service account names valid. Answers the token TTL.
pub fn validate(
    policy: &SecretPolicy,
    templates: &PathTemplates,
) -> Result<Option<Duration>, SpecError> {
    let namespace = policy.namespace().unwrap_or_default();
    for rule in &policy.spec.rules {
        templates
            .check(&namespace, &rule.path)
            .map_err(|e| SpecError::Path(e.to_string()))?;
    }
    for sa in &policy.spec.service_accounts {
        let valid = !sa.is_empty()
            && sa.len() <= 253
            && sa
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !sa.starts_with(['-', '.']);
        if !valid {
            return Err(SpecError::ServiceAccount(sa.clone()));
        }
    }
    match &policy.spec.token_ttl {
        None => Ok(None),
        Some(text) => humantime::parse_duration(text)
            .map(Some)
            .map_err(|_| SpecError::TokenTtl(text.clone())),
    }
}

/// The roles of the service accounts `accounts` of `namespace`, computed from
/// `policies` (all SecretPolicies known, any namespace). `None` for an
/// account no valid policy names: its role should not exist. A policy being
/// deleted counts as absent.
pub fn desired_roles(
    namespace: &str,
    accounts: &BTreeSet<String>,
    policies: &[&SecretPolicy],
    templates: &PathTemplates,
) -> BTreeMap<String, Option<KubernetesRole>> {
    let mut union: BTreeMap<&str, (BTreeSet<String>, Option<Duration>)> = BTreeMap::new();
    for p in policies {
        if p.namespace().as_deref() != Some(namespace) || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(ttl) = validate(p, templates) else {
            continue;
        };
        for sa in &p.spec.service_accounts {
            if !accounts.contains(sa) {
                continue;
            }
            let entry = union.entry(sa.as_str()).or_default();
            entry.0.insert(policy_name(namespace, &p.name_any()));
            entry.1 = match (entry.1, ttl) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    accounts
        .iter()
        .map(|sa| {
            let role = union.get(sa.as_str()).map(|(names, ttl)| KubernetesRole {
                bound_service_account_names: vec![sa.clone()],
                bound_service_account_namespaces: vec![namespace.to_owned()],
                token_policies: names.iter().cloned().collect(),
                token_ttl: ttl.map(|d| d.as_secs()).unwrap_or(0),
                token_max_ttl: 0,
                audience: AUDIENCE.to_owned(),
            });
            (sa.clone(), role)
        })
        .collect()
}

/// Whether the role read back from the core already is the desired one
/// (the core may add defaults; compare what the operator sets).
pub fn role_matches(current: &KubernetesRole, desired: &KubernetesRole) -> bool {
    let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    sorted(&current.bound_service_account_names) == sorted(&desired.bound_service_account_names)
        && sorted(&current.bound_service_account_namespaces)
            == sorted(&desired.bound_service_account_namespaces)
        && sorted(&current.token_policies) == sorted(&desired.token_policies)
        && current.token_ttl == desired.token_ttl
        && current.audience == desired.audience
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Capability, PolicyRule, SecretPolicySpec};
    use crate::templates::DEFAULT_TEMPLATES;

    fn sp(ns: &str, name: &str, sas: &[&str], path: &str, ttl: Option<&str>) -> SecretPolicy {
        let mut p = SecretPolicy::new(
            name,
            SecretPolicySpec {
                service_accounts: sas.iter().map(|s| s.to_string()).collect(),
                rules: vec![PolicyRule {
                    path: path.into(),
                    capabilities: vec![Capability::Read],
                }],
                token_ttl: ttl.map(str::to_owned),
            },
        );
        p.metadata.namespace = Some(ns.into());
        p
    }

    fn accounts(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn roles_hold_the_union_of_the_policies_naming_them() {
        let t = PathTemplates::parse(DEFAULT_TEMPLATES).unwrap();
        let a = sp(
            "team-a",
            "kv",
            &["web", "worker"],
            "secret/data/team-a/*",
            Some("1h"),
        );
        let b = sp(
            "team-a",
            "db",
            &["web"],
            "database/creds/team-a_ro",
            Some("20m"),
        );
        let other_ns = sp("team-b", "kv", &["web"], "secret/data/team-b/*", None);
        let refused = sp("team-a", "evil", &["web"], "secret/data/team-b/*", None);
        let roles = desired_roles(
            "team-a",
            &accounts(&["web", "worker", "gone"]),
            &[&a, &b, &other_ns, &refused],
            &t,
        );
        let web = roles["web"].clone().unwrap();
        assert_eq!(web.token_policies, vec!["k8s.team-a.db", "k8s.team-a.kv"]);
        assert_eq!(web.token_ttl, 1200);
        assert_eq!(web.bound_service_account_names, vec!["web"]);
        assert_eq!(web.bound_service_account_namespaces, vec!["team-a"]);
        assert_eq!(web.audience, "cairn");
        let worker = roles["worker"].clone().unwrap();
        assert_eq!(worker.token_policies, vec!["k8s.team-a.kv"]);
        assert_eq!(worker.token_ttl, 3600);
        assert_eq!(roles["gone"], None);
    }

    #[test]
    fn a_deleted_policy_leaves_the_union() {
        let t = PathTemplates::parse(DEFAULT_TEMPLATES).unwrap();
        let a = sp("team-a", "kv", &["web"], "secret/data/team-a/*", None);
        let mut b = sp("team-a", "db", &["web"], "database/creds/team-a_ro", None);
        b.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        let roles = desired_roles("team-a", &accounts(&["web"]), &[&a, &b], &t);
        assert_eq!(
            roles["web"].clone().unwrap().token_policies,
            vec!["k8s.team-a.kv"]
        );
        let roles = desired_roles("team-a", &accounts(&["web"]), &[&b], &t);
        assert_eq!(roles["web"], None);
    }

    #[test]
    fn invalid_specs_are_explained() {
        let t = PathTemplates::parse(DEFAULT_TEMPLATES).unwrap();
        let p = sp("team-a", "x", &["web"], "secret/data/team-b/x", None);
        assert!(matches!(validate(&p, &t), Err(SpecError::Path(_))));
        let p = sp(
            "team-a",
            "x",
            &["web"],
            "secret/data/team-a/x",
            Some("soon"),
        );
        assert_eq!(validate(&p, &t), Err(SpecError::TokenTtl("soon".into())));
        let p = sp("team-a", "x", &["Web!"], "secret/data/team-a/x", None);
        assert!(matches!(
            validate(&p, &t),
            Err(SpecError::ServiceAccount(_))
        ));
        let p = sp("team-a", "x", &["web"], "secret/data/team-a/x", Some("90s"));
        assert_eq!(validate(&p, &t), Ok(Some(Duration::from_secs(90))));
    }
}
