//! A record of every request the test API server answered, in RBAC terms.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// One request, with the attributes Kubernetes authorisation sees.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestRecord {
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection
    /// (for non-resource requests: the lower-case HTTP method).
    pub verb: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// Plural resource (`""` for non-resource requests).
    pub resource: String,
    /// Subresource (`""` if none), e.g. `status`, `token`.
    pub subresource: String,
    /// Namespace (`""` for cluster-scoped or all-namespace requests).
    pub namespace: String,
    /// Object name (`""` for collections).
    pub name: String,
    /// For non-resource requests (discovery, `/version`): the path; `""` otherwise.
    pub path: String,
    /// `system:serviceaccount:<ns>:<sa>` when the bearer token is one this server issued.
    pub user: Option<String>,
    /// HTTP status answered.
    pub status: u16,
}

impl RequestRecord {
    /// Whether this was a resource request (not discovery or `/version`).
    pub fn is_resource(&self) -> bool {
        self.path.is_empty()
    }

    /// Whether this request writes (create, update, patch, delete, deletecollection).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && self.is_resource()
    }

    /// The RBAC-relevant call.
    pub fn call(&self) -> Call {
        Call {
            verb: self.verb.clone(),
            api_group: self.api_group.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// `(verb, apiGroup, resource, subresource, namespace)`: what an RBAC rule must allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// RBAC verb.
    pub verb: String,
    /// API group.
    pub api_group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource or `""`.
    pub subresource: String,
    /// Namespace or `""`.
    pub namespace: String,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        let sub = if self.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", self.subresource)
        };
        let ns = if self.namespace.is_empty() {
            String::new()
        } else {
            format!(" in {}", self.namespace)
        };
        write!(f, "{} {group}/{}{sub}{ns}", self.verb, self.resource)
    }
}

/// The shared, append-only request log.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<RequestRecord>>>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        match self.log.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Append one record.
    pub fn record(&self, r: RequestRecord) {
        self.lock().push(r);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().clone()
    }

    /// Requests after the first `mark` (a mark is a previous [`Recorder::len`]).
    pub fn since(&self, mark: usize) -> Vec<RequestRecord> {
        self.lock().iter().skip(mark).cloned().collect()
    }

    /// Number of requests so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No request yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forget everything recorded.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The distinct resource calls (discovery excluded), optionally only those of `user`.
    pub fn calls(&self, user: Option<&str>) -> BTreeSet<Call> {
        self.lock()
            .iter()
            .filter(|r| r.is_resource() && user.is_none_or(|u| r.user.as_deref() == Some(u)))
            .map(RequestRecord::call)
            .collect()
    }

    /// Writes (create/update/patch/delete) after `mark`.
    pub fn writes_since(&self, mark: usize) -> Vec<RequestRecord> {
        self.since(mark)
            .into_iter()
            .filter(RequestRecord::is_write)
            .collect()
    }
}
