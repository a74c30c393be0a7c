//! RBAC rules from (Cluster)Role YAML, and whether they allow the calls a program made.

use serde_json::Value;

use crate::apiserver::{Call, RequestRecord};

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources` (`plural`, `plural/sub`, `*`, `*/sub`).
    pub resources: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `resourceNames`.
    pub resource_names: Vec<String>,
    /// `nonResourceURLs`.
    pub non_resource_urls: Vec<String>,
}

/// A rule with where it applies: a Role's rules only in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedRule {
    /// `Some(ns)` for a Role, `None` for a ClusterRole.
    pub namespace: Option<String>,
    /// Name of the role it came from.
    pub role: String,
    /// The rule.
    pub rule: PolicyRule,
}

/// Rules of every Role and ClusterRole in a YAML stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<ScopedRule>);

/// Failure to read RBAC YAML.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// Not YAML.
    #[error("RBAC YAML does not parse: {0}")]
    Yaml(String),
    /// No Role or ClusterRole in it.
    #[error("no Role or ClusterRole in the YAML")]
    NoRoles,
    /// A binding refers to a role the YAML does not hold.
    #[error("a binding refers to the role {0}, which is not in the YAML")]
    MissingRole(String),
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn collect(doc: &Value, out: &mut Vec<ScopedRule>) {
    match doc.get("kind").and_then(Value::as_str) {
        Some("List") => {
            for item in doc
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect(item, out);
            }
        }
        Some(kind @ ("ClusterRole" | "Role")) => {
            let namespace = if kind == "Role" {
                Some(
                    doc.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        .to_string(),
                )
            } else {
                None
            };
            let role = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            for r in doc
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(ScopedRule {
                    namespace: namespace.clone(),
                    role: role.clone(),
                    rule: PolicyRule {
                        api_groups: strings(r, "apiGroups"),
                        resources: strings(r, "resources"),
                        verbs: strings(r, "verbs"),
                        resource_names: strings(r, "resourceNames"),
                        non_resource_urls: strings(r, "nonResourceURLs"),
                    },
                });
            }
        }
        _ => {}
    }
}

/// The ClusterRoleBindings and RoleBindings of a document (or of a `List`).
fn flatten<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    match doc.get("kind").and_then(Value::as_str) {
        Some("List") => {
            for item in doc
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                flatten(item, out);
            }
        }
        Some("ClusterRoleBinding" | "RoleBinding") => out.push(doc),
        _ => {}
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl PolicyRule {
    fn resource_matches(&self, resource: &str, sub: &str) -> bool {
        self.resources.iter().any(|r| {
            if sub.is_empty() {
                r == "*" || r == resource
            } else {
                r == "*" || *r == format!("{resource}/{sub}") || *r == format!("*/{sub}")
            }
        })
    }

    /// Whether this rule allows the call on an object named `name` (`""` for collections).
    pub fn allows(&self, call: &Call, name: &str) -> bool {
        has(&self.verbs, &call.verb)
            && has(&self.api_groups, &call.api_group)
            && self.resource_matches(&call.resource, &call.subresource)
            && (self.resource_names.is_empty()
                || (!name.is_empty() && self.resource_names.iter().any(|n| n == name)))
    }

    /// Whether this rule allows a non-resource request.
    pub fn allows_path(&self, verb: &str, path: &str) -> bool {
        has(&self.verbs, verb)
            && self
                .non_resource_urls
                .iter()
                .any(|u| match u.strip_suffix('*') {
                    Some(prefix) => path.starts_with(prefix),
                    None => u == path,
                })
    }
}

impl Rules {
    /// Every Role and ClusterRole of a (multi-document) YAML stream, e.g. `helm template` output.
    pub fn from_yaml(yaml: &str) -> Result<Rules, RbacError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| RbacError::Yaml(e.to_string()))?;
        let mut out = Vec::new();
        for d in &docs {
            collect(d, &mut out);
        }
        if out.is_empty()
            && !docs.iter().any(|d| {
                matches!(
                    d.get("kind").and_then(Value::as_str),
                    Some("ClusterRole" | "Role")
                )
            })
        {
            return Err(RbacError::NoRoles);
        }
        Ok(Rules(out))
    }

    /// The rules a YAML stream (e.g. `helm template` output) grants the service account
    /// `namespace/name`, following its ClusterRoleBindings and RoleBindings (subjects of kind
    /// ServiceAccount, its `system:serviceaccount:` user, or a group it is in). A ClusterRole
    /// bound by a RoleBinding, and a Role, apply only in the binding's namespace. Empty when
    /// nothing is bound to it; a binding to a role the stream does not hold is an error, as
    /// the grant could not be checked.
    pub fn bound_to(yaml: &str, namespace: &str, name: &str) -> Result<Rules, RbacError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| RbacError::Yaml(e.to_string()))?;
        let mut roles = Vec::new();
        let mut bindings = Vec::new();
        for d in &docs {
            flatten(d, &mut bindings);
            collect(d, &mut roles);
        }
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let groups = [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_string(),
        ];
        let mut out = Vec::new();
        for b in bindings {
            let kind = b.get("kind").and_then(Value::as_str);
            let binding_ns = match kind {
                Some("RoleBinding") => Some(
                    b.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        .to_string(),
                ),
                _ => None,
            };
            let names_us = b
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|s| {
                    let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default();
                    match field("kind") {
                        "ServiceAccount" => {
                            let sa_ns = match field("namespace") {
                                "" => binding_ns.as_deref().unwrap_or_default(),
                                ns => ns,
                            };
                            field("name") == name && sa_ns == namespace
                        }
                        "User" => field("name") == user,
                        "Group" => groups.iter().any(|g| g == field("name")),
                        _ => false,
                    }
                });
            if !names_us {
                continue;
            }
            let ref_kind = b.pointer("/roleRef/kind").and_then(Value::as_str);
            let ref_name = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role_ns = match ref_kind {
                Some("Role") => binding_ns.clone(),
                _ => None,
            };
            let granted: Vec<&ScopedRule> = roles
                .iter()
                .filter(|r| r.role == ref_name && r.namespace == role_ns)
                .collect();
            let declared = docs.iter().any(|d| {
                d.get("kind").and_then(Value::as_str) == ref_kind
                    && d.pointer("/metadata/name").and_then(Value::as_str) == Some(ref_name)
            });
            if granted.is_empty() && !declared {
                return Err(RbacError::MissingRole(ref_name.to_string()));
            }
            for r in granted {
                out.push(ScopedRule {
                    namespace: binding_ns.clone(),
                    role: r.role.clone(),
                    rule: r.rule.clone(),
                });
            }
        }
        Ok(Rules(out))
    }

    /// Whether no rule is granted at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn scoped<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a PolicyRule> + 'a {
        self.0
            .iter()
            .filter(move |s| s.namespace.as_deref().is_none_or(|n| n == ns))
            .map(|s| &s.rule)
    }

    /// Whether some rule allows the call on any object (rules limited by `resourceNames` do not count).
    pub fn allows(&self, call: &Call) -> bool {
        self.scoped(&call.namespace).any(|r| r.allows(call, ""))
    }

    /// Whether some rule allows the recorded request, its object name included.
    pub fn allows_request(&self, r: &RequestRecord) -> bool {
        if !r.is_resource() {
            return self
                .scoped("")
                .any(|rule| rule.allows_path(&r.verb, &r.path));
        }
        self.scoped(&r.namespace)
            .any(|rule| rule.allows(&r.call(), &r.name))
    }

    /// The calls no rule allows.
    pub fn uncovered<'a>(&self, calls: impl IntoIterator<Item = &'a Call>) -> Vec<Call> {
        calls
            .into_iter()
            .filter(|c| !self.allows(c))
            .cloned()
            .collect()
    }

    /// The resource requests no rule allows (names considered).
    pub fn uncovered_requests<'a>(
        &self,
        requests: impl IntoIterator<Item = &'a RequestRecord>,
    ) -> Vec<RequestRecord> {
        requests
            .into_iter()
            .filter(|r| r.is_resource() && !self.allows_request(r))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
# Source: cairn/templates/operator-rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cairn-operator
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "patch"]
  - apiGroups: ["cairn.dev"]
    resources: ["dynamiccredentials/status"]
    verbs: ["patch"]
  - apiGroups: [""]
    resources: ["serviceaccounts/token"]
    verbs: ["create"]
    resourceNames: ["app"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader, namespace: cairn}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["*"]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: x}
"#;

    fn call(verb: &str, group: &str, res: &str, sub: &str, ns: &str) -> Call {
        Call {
            verb: verb.into(),
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            namespace: ns.into(),
        }
    }

    #[test]
    fn rules_cover_calls() {
        let rules = Rules::from_yaml(YAML).unwrap();
        assert_eq!(rules.0.len(), 4);
        assert!(rules.allows(&call("patch", "", "secrets", "", "a")));
        assert!(!rules.allows(&call("delete", "", "secrets", "", "a")));
        assert!(!rules.allows(&call("patch", "cairn.dev", "dynamiccredentials", "", "a")));
        assert!(rules.allows(&call(
            "patch",
            "cairn.dev",
            "dynamiccredentials",
            "status",
            "a"
        )));
        assert!(rules.allows(&call(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "cairn"
        )));
        assert!(!rules.allows(&call(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "other"
        )));
        // resourceNames: only the named object.
        let c = call("create", "", "serviceaccounts", "token", "a");
        assert!(!rules.allows(&c));
        let mut r = RequestRecord {
            verb: c.verb.clone(),
            api_group: String::new(),
            resource: c.resource.clone(),
            subresource: c.subresource.clone(),
            namespace: "a".into(),
            name: "app".into(),
            path: String::new(),
            user: None,
            status: 201,
        };
        assert!(rules.allows_request(&r));
        r.name = "other".into();
        assert_eq!(rules.uncovered_requests([&r]).len(), 1);
        assert!(matches!(
            Rules::from_yaml("kind: ServiceAccount\n"),
            Err(RbacError::NoRoles)
        ));
    }

    const BOUND: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader, namespace: cairn}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: ServiceAccount, name: op, namespace: cairn}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader, namespace: cairn}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader}
subjects: [{kind: ServiceAccount, name: op}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-here, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: Group, name: "system:serviceaccounts:cairn"}]
"#;

    #[test]
    fn bindings_decide_what_a_service_account_gets() {
        let op = Rules::bound_to(BOUND, "cairn", "op").unwrap();
        assert!(op.allows(&call("get", "", "secrets", "", "x")));
        assert!(op.allows(&call(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "cairn"
        )));
        assert!(!op.allows(&call("update", "coordination.k8s.io", "leases", "", "x")));
        // Another service account of the namespace: only the group's binding, in team-a.
        let other = Rules::bound_to(BOUND, "cairn", "other").unwrap();
        assert!(other.allows(&call("get", "", "secrets", "", "team-a")));
        assert!(!other.allows(&call("get", "", "secrets", "", "x")));
        assert!(!other.allows(&call(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "cairn"
        )));
        // Nothing bound: no rules.
        assert!(Rules::bound_to(BOUND, "elsewhere", "op")
            .unwrap()
            .is_empty());
        // A binding to a role that is not there cannot be checked.
        let dangling = BOUND.replace("name: leader}\nsubjects", "name: gone}\nsubjects");
        assert!(matches!(
            Rules::bound_to(&dangling, "cairn", "op"),
            Err(RbacError::MissingRole(r)) if r == "gone"
        ));
    }
}
