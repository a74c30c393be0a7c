//! Path-template confinement: a SecretPolicy of namespace `ns` may only name
//! core paths covered by the operator's templates with `{namespace}` set to
//! `ns`. This is what keeps a namespace admin from granting itself another
//! namespace's secrets.

use std::fmt;

/// The placeholder replaced by the object's namespace.
const NAMESPACE: &str = "{namespace}";

/// The default templates (`--path-templates`).
pub const DEFAULT_TEMPLATES: &str = "secret/data/{namespace}/*,secret/metadata/{namespace}/*,database/creds/{namespace}_*,transit/encrypt/{namespace}_*,transit/decrypt/{namespace}_*";

/// Why a path template or a rule path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A template has no `{namespace}`: it would let every namespace reach
    /// the same paths.
    #[error("path template {0:?} does not contain {{namespace}}")]
    NoNamespace(String),
    /// `{namespace}` is followed by a character a namespace name may hold
    /// (or by `*`), so one namespace's paths would be a prefix of
    /// another's: with `creds/{namespace}-*`, namespace `team` could reach
    /// `creds/team-a-db` of namespace `team-a`.
    #[error("path template {0:?}: {{namespace}} must be followed by `/`, `_`, `.` or the end, not by a letter, digit, `-` or `*` (namespace names hold those, so another namespace's paths would match)")]
    Ambiguous(String),
    /// A template holds a glob before its end.
    #[error("path template {0:?} may hold `*` only at its end and no `+`")]
    Glob(String),
    /// No template was given.
    #[error("no path template given")]
    Empty,
}

/// Why a rule path is not allowed for a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRefusal {
    /// The path is malformed (empty, absolute, `..`, `*` not at the end,
    /// characters the policy language does not take).
    Malformed(String),
    /// The path is well formed but outside every template.
    OutsideTemplates(String),
}

impl fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathRefusal::Malformed(p) => write!(f, "path {p:?} is malformed"),
            PathRefusal::OutsideTemplates(p) => {
                write!(
                    f,
                    "path {p:?} is outside the paths allowed for this namespace"
                )
            }
        }
    }
}

/// The operator's path templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplates {
    templates: Vec<String>,
}

impl PathTemplates {
    /// Parses a comma-separated list; every template must contain
    /// `{namespace}` and may end with `*`.
    pub fn parse(list: &str) -> Result<Self, TemplateError> {
        let templates: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if templates.is_empty() {
            return Err(TemplateError::Empty);
        }
        for t in &templates {
            if !t.contains(NAMESPACE) {
                return Err(TemplateError::NoNamespace(t.clone()));
            }
            let body = t.strip_suffix('*').unwrap_or(t);
            if body.contains('*') || body.contains('+') {
                return Err(TemplateError::Glob(t.clone()));
            }
            // Namespace names are DNS labels: [a-z0-9-]. What follows the
            // placeholder must end the name, or `team` reaches `team-a`'s paths.
            let ambiguous = t.match_indices(NAMESPACE).any(|(at, _)| {
                t[at + NAMESPACE.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
            });
            if ambiguous {
                return Err(TemplateError::Ambiguous(t.clone()));
            }
        }
        Ok(Self { templates })
    }

    /// The templates, as given.
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// Whether `path` may appear in a SecretPolicy of `namespace`.
    pub fn check(&self, namespace: &str, path: &str) -> Result<(), PathRefusal> {
        if !well_formed(path) {
            return Err(PathRefusal::Malformed(path.to_owned()));
        }
        let allowed = self.templates.iter().any(|t| {
            let t = t.replace(NAMESPACE, namespace);
            match t.strip_suffix('*') {
                // The rule may be any path below the prefix, globs included:
                // the prefix itself is literal, so nothing escapes it.
                Some(prefix) => path.starts_with(prefix) && path.len() > prefix.len(),
                None => path == t,
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(PathRefusal::OutsideTemplates(path.to_owned()))
        }
    }
}

/// A path the policy language takes literally: relative, no empty or
/// dot segments, `*` only at the end, a safe character set (which also
/// keeps quotes and escapes out of the generated HCL).
fn well_formed(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') || path.len() > 512 {
        return false;
    }
    let body = path.strip_suffix('*').unwrap_or(path);
    if body.contains('*') {
        return false;
    }
    if !path.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '/' | '-' | '_' | '.' | '+' | '*' | '@' | '=' | ':')
    }) {
        return false;
    }
    // The last segment may be empty only as `prefix/` + `*`.
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, s)| {
        (!s.is_empty() || (i == last && path.ends_with('*'))) && *s != "." && *s != ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn defaults() -> PathTemplates {
        PathTemplates::parse(DEFAULT_TEMPLATES).unwrap()
    }

    #[test]
    fn own_namespace_paths_are_allowed() {
        let t = defaults();
        for p in [
            "secret/data/team-a/*",
            "secret/data/team-a/web",
            "secret/data/team-a/+/config",
            "secret/metadata/team-a/web",
            "database/creds/team-a_readonly",
            "database/creds/team-a_*",
            "transit/encrypt/team-a_orders",
        ] {
            assert_eq!(t.check("team-a", p), Ok(()), "{p}");
        }
    }

    #[test]
    fn other_namespaces_and_wider_globs_are_refused() {
        let t = defaults();
        for p in [
            "secret/data/team-b/web",
            "secret/data/*",
            "secret/data/team-a*",
            "secret/data/+/web",
            "secret/data/team-a",
            "database/creds/team-b_readonly",
            "database/creds/*",
            "sys/policies/acl/k8s.team-a.x",
            "auth/kubernetes/role/team-a.web",
            "transit/keys/team-a_orders",
        ] {
            assert!(
                matches!(t.check("team-a", p), Err(PathRefusal::OutsideTemplates(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn a_namespace_cannot_reach_a_longer_namespace_of_the_same_prefix() {
        let t = defaults();
        for p in [
            "secret/data/team-a/web",
            "database/creds/team-a_ro",
            "database/creds/team_ro-x",
            "transit/encrypt/team-a_orders",
        ] {
            if p == "database/creds/team_ro-x" {
                assert_eq!(t.check("team", p), Ok(()), "{p} is team's own");
            } else {
                assert!(t.check("team", p).is_err(), "{p} belongs to team-a");
            }
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        let t = defaults();
        for p in [
            "",
            "/secret/data/team-a/x",
            "secret/data/team-a/../team-b/x",
            "secret/data/team-a/./x",
            "secret/data/team-a//x",
            "secret/data/team-a/*/x",
            "secret/data/team-a/x\"} path \"*",
            "secret/data/team-a/x\ny",
        ] {
            assert!(
                matches!(t.check("team-a", p), Err(PathRefusal::Malformed(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn templates_must_name_the_namespace() {
        assert_eq!(
            PathTemplates::parse("secret/data/*"),
            Err(TemplateError::NoNamespace("secret/data/*".into()))
        );
        assert!(matches!(
            PathTemplates::parse("secret/*/{namespace}/x"),
            Err(TemplateError::Glob(_))
        ));
        assert_eq!(PathTemplates::parse(" , "), Err(TemplateError::Empty));
        for ambiguous in [
            "database/creds/{namespace}-*",
            "secret/data/{namespace}*",
            "kv/{namespace}x/y",
            "kv/{namespace}/a,db/{namespace}9*",
        ] {
            assert!(
                matches!(
                    PathTemplates::parse(ambiguous),
                    Err(TemplateError::Ambiguous(_))
                ),
                "{ambiguous}"
            );
        }
        let exact = PathTemplates::parse("kv/{namespace}/config").unwrap();
        assert_eq!(exact.check("a", "kv/a/config"), Ok(()));
        assert!(exact.check("a", "kv/a/config2").is_err());
    }

    proptest! {
        /// Whatever a namespace writes, an allowed path starts with one of
        /// its own template prefixes.
        #[test]
        fn allowed_paths_stay_under_the_namespace(path in "[a-z/+*.\\-]{0,40}", ns in "[a-z]{1,8}") {
            let t = defaults();
            if t.check(&ns, &path).is_ok() {
                let prefixes = [
                    format!("secret/data/{ns}/"),
                    format!("secret/metadata/{ns}/"),
                    format!("database/creds/{ns}_"),
                    format!("transit/encrypt/{ns}_"),
                    format!("transit/decrypt/{ns}_"),
                ];
                prop_assert!(prefixes.iter().any(|p| path.starts_with(p.as_str())));
                prop_assert!(!path.split('/').any(|s| s == ".."));
            }
        }
    }
}
