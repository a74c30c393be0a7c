//! URL paths of the Kubernetes API, parsed into what they address.

use percent_encoding::percent_decode_str;

use super::resources::{find, ResourceType};

/// A resource path: kind, namespace, name and subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Kind addressed.
    pub rt: &'static ResourceType,
    /// Namespace, when the path names one.
    pub namespace: Option<String>,
    /// Object name; `None` for the collection.
    pub name: Option<String>,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/api/v1`, `/apis/<group>/<version>`.
    Resources(String, String),
    /// `/version`.
    Version,
    /// A resource, collection or subresource.
    Resource(Target),
    /// Anything else.
    Unknown,
}

/// Parse a request path.
pub fn parse(path: &str) -> Route {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["version"] => return Route::Version,
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::Unknown,
    };
    if rest.is_empty() {
        return Route::Resources(group.to_string(), version.to_string());
    }
    let (namespace, rt, tail) = match rest {
        ["namespaces", ns, res, tail @ ..]
            if find(group, version, res).is_some_and(|r| r.namespaced) =>
        {
            (Some(ns.to_string()), find(group, version, res), tail)
        }
        [res, tail @ ..] => (None, find(group, version, res), tail),
        [] => return Route::Unknown,
    };
    let Some(rt) = rt else {
        return Route::Unknown;
    };
    // A namespaced kind is addressed by name only inside its namespace.
    if rt.namespaced && namespace.is_none() && !tail.is_empty() {
        return Route::Unknown;
    }
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] if rt.subresources().contains(sub) => {
            (Some(name.to_string()), Some(sub.to_string()))
        }
        _ => return Route::Unknown,
    };
    Route::Resource(Target {
        rt,
        namespace,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(p: &str) -> Target {
        match parse(p) {
            Route::Resource(t) => t,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let t = target("/api/v1/namespaces/ns1/secrets/s1");
        assert_eq!(
            (
                t.rt.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource
            ),
            ("secrets", Some("ns1"), Some("s1"), None)
        );
        let t = target("/api/v1/secrets");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = target("/apis/apps/v1/namespaces/a/deployments/web/status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = target("/api/v1/namespaces/a/serviceaccounts/sa/token");
        assert_eq!(t.subresource.as_deref(), Some("token"));
        let t = target("/api/v1/namespaces/ns1");
        assert_eq!(
            (t.rt.plural, t.name.as_deref()),
            ("namespaces", Some("ns1"))
        );
        let t = target("/apis/cairn.dev/v1alpha1/namespaces/a/dynamiccredentials/x/status");
        assert_eq!(t.rt.kind, "DynamicCredential");
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::Resources("apps".into(), "v1".into())
        );
        assert_eq!(parse("/api"), Route::CoreVersions);
        for bad in [
            "/api/v1/secrets/x",
            "/api/v1/namespaces/a/secrets/s/scale",
            "/apis/apps/v1/nope",
            "/healthz",
            "/api/v1/namespaces/a/secrets/s/status",
        ] {
            assert_eq!(parse(bad), Route::Unknown, "{bad}");
        }
    }
}
