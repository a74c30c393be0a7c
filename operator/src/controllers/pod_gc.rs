//! Garbage collection of pod-owned leases (issued by the CSI provider):
//! a pod that is gone cannot use its credentials, so the operator revokes
//! every lease owned by it. Two triggers:
//!
//! - a pod delete event (immediate, the uid is known);
//! - a periodic sweep comparing `sys/cairn/leases/owners?kind=Pod` with the
//!   pods in the cache, which catches deletions missed while no leader ran.
//!   A sweep revokes an owner only when two sweeps in a row missed its pod,
//!   so a lease issued for a pod the cache has not seen yet is spared.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use serde::Deserialize;

use crate::core_session::CoreSession;
use crate::metrics::Metrics;

/// The kind pods have in lease owners.
pub const POD_KIND: &str = "Pod";

#[derive(Debug, Deserialize)]
struct Owners {
    #[serde(default)]
    owners: Vec<OwnerEntry>,
}

#[derive(Debug, Deserialize)]
struct OwnerEntry {
    owner: String,
    namespace: String,
    name: String,
    uid: String,
}

/// The collector's state.
pub struct PodGc {
    core: Arc<CoreSession>,
    metrics: Arc<Metrics>,
    /// Owners missing from the cache at the last sweep.
    suspects: tokio::sync::Mutex<HashSet<String>>,
}

impl PodGc {
    /// A collector.
    pub fn new(core: Arc<CoreSession>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            core,
            metrics,
            suspects: tokio::sync::Mutex::new(HashSet::new()),
        })
    }

    /// Watches pods (metadata only) and sweeps every `interval`, until
    /// `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        client: kube::Client,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (reader, writer) = reflector::store();
        let api: Api<PartialObjectMeta<Pod>> = Api::all(client);
        let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        let on_delete = {
            let gc = self.clone();
            events.for_each(move |event| {
                let gc = gc.clone();
                async move {
                    match event {
                        Ok(watcher::Event::Delete(pod)) => {
                            if let (Some(ns), Some(uid)) = (pod.namespace(), pod.uid()) {
                                gc.revoke(&format!("{ns}/{POD_KIND}/{}/{uid}", pod.name_any()))
                                    .await;
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(error = %error, "pod watch failed"),
                    }
                }
            })
        };
        let sweeps = {
            let gc = self.clone();
            async move {
                if reader.wait_until_ready().await.is_err() {
                    return;
                }
                let mut ticker = tokio::time::interval(interval);
                loop {
                    ticker.tick().await;
                    if let Err(error) = gc.sweep(&reader).await {
                        tracing::warn!(error = %error, "pod lease sweep failed");
                    }
                }
            }
        };
        tokio::select! {
            _ = on_delete => {}
            _ = sweeps => {}
            _ = shutdown => {}
        }
    }

    /// One sweep: revokes the owners whose pod (namespace, name and uid) was
    /// missing now and at the previous sweep.
    pub async fn sweep(
        &self,
        pods: &Store<PartialObjectMeta<Pod>>,
    ) -> Result<usize, cairn_client::ClientError> {
        let client = self.core.client().await;
        let answer = client
            .read_with_query("sys/cairn/leases/owners", &[("kind", POD_KIND.to_string())])
            .await?;
        let owners: Owners = answer
            .and_then(|v| v.get("data").cloned())
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or(Owners { owners: Vec::new() });
        let live: HashMap<(String, String), String> = pods
            .state()
            .iter()
            .filter_map(|p| Some(((p.namespace()?, p.name_any()), p.uid()?)))
            .collect();
        let mut suspects = self.suspects.lock().await;
        let mut now_missing = HashSet::new();
        let mut revoked = 0;
        for entry in owners.owners {
            let key = (entry.namespace.clone(), entry.name.clone());
            if live.get(&key) == Some(&entry.uid) {
                continue;
            }
            if suspects.contains(&entry.owner) {
                if self.revoke(&entry.owner).await {
                    revoked += 1;
                }
            } else {
                now_missing.insert(entry.owner);
            }
        }
        *suspects = now_missing;
        Ok(revoked)
    }

    /// Revokes every lease of `owner`; answers whether it worked.
    async fn revoke(&self, owner: &str) -> bool {
        let client = self.core.client().await;
        let mut body = serde_json::Map::new();
        body.insert("owner".into(), owner.into());
        match client.write("sys/cairn/leases/revoke-owner", &body).await {
            Ok(answer) => {
                let count = answer
                    .as_ref()
                    .and_then(|v| v.pointer("/data/revoked"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                if count > 0 {
                    self.metrics.pod_gc_revoked.inc();
                    tracing::info!(
                        owner,
                        revoked = count,
                        "revoked the leases of a deleted pod"
                    );
                }
                true
            }
            Err(error) => {
                tracing::warn!(owner, error = %error, "failed to revoke a deleted pod's leases");
                false
            }
        }
    }
}
