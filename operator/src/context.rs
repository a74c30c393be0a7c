//! What every reconcile shares: the Kubernetes client, the core session,
//! the configuration, metrics, the event recorder and per-object backoff.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use crate::core_session::CoreSession;
use crate::crd::SecretPolicy;
use crate::error::backoff;
use crate::metrics::Metrics;
use crate::templates::PathTemplates;

/// The controllers' shared state.
pub struct Context {
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// The operator's session with the core.
    pub core: Arc<CoreSession>,
    /// Path templates confining SecretPolicies.
    pub templates: PathTemplates,
    /// Audience of workload tokens requested for DynamicCredentials.
    pub audience: String,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Every SecretPolicy, as the SecretPolicy controller's cache holds them
    /// (roles are unions over them).
    pub policies: Store<SecretPolicy>,
    /// Serialises "compute a role union, write it" so a stale union never
    /// overwrites a fresher one.
    pub role_lock: tokio::sync::Mutex<()>,
    /// DynamicCredentials (by uid) whose leases were checked against the
    /// core since this process became leader.
    pub adopted: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context.
    pub fn new(
        kube: kube::Client,
        core: Arc<CoreSession>,
        templates: PathTemplates,
        audience: String,
        metrics: Arc<Metrics>,
        policies: Store<SecretPolicy>,
    ) -> Self {
        let reporter = Reporter {
            controller: "cairn-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(kube.clone(), reporter),
            kube,
            core,
            templates,
            audience,
            metrics,
            policies,
            role_lock: tokio::sync::Mutex::new(()),
            adopted: Mutex::new(HashSet::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The wait before retrying object `key` after another failure.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = failures.entry(key.to_owned()).or_insert(0);
        *attempt = attempt.saturating_add(1);
        backoff(*attempt, Duration::from_secs(300))
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Whether the DynamicCredential `uid` was adopted already; marks it.
    pub fn first_sight(&self, uid: &str) -> bool {
        self.adopted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_owned())
    }

    /// Forgets an adoption (the object is gone, or adoption failed).
    pub fn forget(&self, uid: &str) {
        self.adopted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}
