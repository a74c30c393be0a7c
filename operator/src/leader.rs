//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does it: the holder renews `renewTime`; another replica
//! takes the Lease over only after `leaseDurationSeconds` without renewal,
//! with the Lease's resourceVersion guarding against two takers.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::sync::watch;

/// Where the Lease is and who we are.
#[derive(Debug, Clone)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
}

/// Outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Leading,
    Following,
}

impl Election {
    /// Campaigns and renews forever. `leader` turns true once this replica
    /// holds the Lease, false if it loses it (the caller then stops working:
    /// another replica may have taken over).
    pub async fn run(self, client: kube::Client, leader: watch::Sender<bool>) {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        let retry = self.lease_duration / 3;
        loop {
            let outcome = self.try_acquire_or_renew(&api).await;
            let leading = match outcome {
                Ok(Attempt::Leading) => true,
                Ok(Attempt::Following) => false,
                Err(error) => {
                    tracing::warn!(error = %error, "leader election call failed");
                    // Without a successful renewal the Lease lapses soon:
                    // stop leading before another replica may take it.
                    false
                }
            };
            if *leader.borrow() != leading {
                tracing::info!(leading, identity = %self.identity, "leadership changed");
            }
            leader.send_replace(leading);
            tokio::time::sleep(retry).await;
        }
    }

    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    async fn try_acquire_or_renew(&self, api: &Api<Lease>) -> Result<Attempt, kube::Error> {
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(Self::now()),
                    renew_time: Some(Self::now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.identity;
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(duration)) => {
                let until = renewed
                    .0
                    .checked_add(jiff::SignedDuration::from_secs(i64::from(duration)))
                    .unwrap_or(renewed.0);
                until < Timestamp::now()
            }
            _ => true,
        };
        if !mine && !holder.is_empty() && !expired {
            return Ok(Attempt::Following);
        }
        if !mine {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(Self::now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(Self::now());
        spec.lease_duration_seconds = Some(seconds);
        // replace sends the resourceVersion read above: a concurrent taker
        // makes one of us fail with 409.
        match api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on shutdown) so a standby takes over at once.
    pub async fn release(&self, client: kube::Client) {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        let Ok(Some(mut lease)) = api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(error) = api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %error, "failed to release the leader Lease");
        }
    }
}
