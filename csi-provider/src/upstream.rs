//! The provider's side of the core's API: log in with a pod's token, read
//! or issue secrets, renew and revoke leases, find a pod's leases. Every
//! request is counted by operation (the rotation figures rely on it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Auth, Client, ClientError, ClientOptions, LeaseOwner, Secret, MAX_BATCH_PATHS};
use serde_json::{Map, Value};

use crate::error::{from_client, MountError};
use crate::metrics::{CoreOp, Metrics};
use crate::object::{Method, ObjectSpec};

/// What reading one object's path gave.
pub type ReadResult = Result<Secret<Map<String, Value>>, MountError>;

/// A core at one address (with one CA), shared by every pod mounting from it.
pub struct Upstream {
    client: Client,
    metrics: Arc<Metrics>,
}

/// A renewal that did not extend the lease.
#[derive(Debug)]
pub enum RenewError {
    /// The lease is gone or cannot be renewed: issue a new credential.
    Gone,
    /// Anything else (core unavailable, denied).
    Failed(MountError),
}

impl Upstream {
    /// A core at `address`, trusting `ca_cert` when given.
    pub fn new(
        address: &str,
        ca_cert: Option<PathBuf>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MountError> {
        let options = ClientOptions {
            ca_cert,
            timeout,
            ..ClientOptions::default()
        };
        let client = Client::with_options(address, None, &options)
            .map_err(|e| from_client("connect to the core", e))?;
        Ok(Self { client, metrics })
    }

    /// The address, as the client normalised it.
    pub fn address(&self) -> &str {
        self.client.address()
    }

    /// Kubernetes login with the pod's service-account token.
    pub async fn login(
        &self,
        mount: &str,
        role: Option<&str>,
        jwt: &str,
    ) -> Result<Auth, MountError> {
        self.metrics.core_request(CoreOp::login);
        self.client
            .login_kubernetes(mount, role, jwt)
            .await
            .map_err(|e| from_client(&format!("log in at auth/{mount}"), e))
    }

    /// A session acting with `token`.
    pub fn session(&self, token: &str) -> Result<Session, MountError> {
        let mut client = self.client.clone();
        client
            .set_token(Some(token.to_owned()))
            .map_err(|e| from_client("use the login token", e))?;
        Ok(Session {
            client,
            metrics: self.metrics.clone(),
        })
    }
}

/// Requests made with one pod's core token.
pub struct Session {
    client: Client,
    metrics: Arc<Metrics>,
}

impl Session {
    /// Reads `spec`'s path; a dynamic engine issues a credential whose
    /// lease is owned by `owner` (a static read ignores the owner).
    pub async fn fetch(
        &self,
        spec: &ObjectSpec,
        owner: &LeaseOwner,
    ) -> Result<Secret<Map<String, Value>>, MountError> {
        self.metrics.core_request(CoreOp::read);
        let (method, body) = match spec.method {
            Method::Get => (reqwest::Method::GET, Map::new()),
            Method::Post => (
                reqwest::Method::POST,
                spec.args.clone().into_iter().collect(),
            ),
        };
        self.client
            .write_leased(method, &spec.path, &body, Some(owner))
            .await
            .map_err(|e| from_client(&format!("read {}", spec.path), e))
    }

    /// Reads every spec's path (all `GET` reads) with one batch request per
    /// [`MAX_BATCH_PATHS`]; a result per spec, in order. `None` when the core
    /// has no batch endpoint or the pod's policies do not grant it: the
    /// caller then reads one by one.
    pub async fn fetch_many(
        &self,
        specs: &[&ObjectSpec],
        owner: &LeaseOwner,
    ) -> Result<Option<Vec<ReadResult>>, MountError> {
        let mut results = Vec::with_capacity(specs.len());
        for chunk in specs.chunks(MAX_BATCH_PATHS) {
            self.metrics.core_request(CoreOp::read_batch);
            let paths: Vec<&str> = chunk.iter().map(|s| s.path.as_str()).collect();
            match self.client.read_many(&paths, Some(owner)).await {
                Ok(answers) => results.extend(answers.into_iter().zip(chunk).map(|(r, spec)| {
                    r.map_err(|e| from_client(&format!("read {}", spec.path), e))
                })),
                // Denied (403), unknown path (404) or method (405): an
                // older core, or a policy without the batch endpoint.
                Err(ClientError::Api {
                    status: 403..=405, ..
                }) if results.is_empty() => {
                    tracing::debug!("the core refused a batch read; reading one by one");
                    return Ok(None);
                }
                Err(e) => return Err(from_client("read a batch of secrets", e)),
            }
        }
        Ok(Some(results))
    }

    /// Renews a lease by its own TTL; the seconds it has left after.
    pub async fn renew(&self, lease_id: &str) -> Result<u64, RenewError> {
        self.metrics.core_request(CoreOp::renew);
        match self.client.renew_lease(lease_id, 0).await {
            Ok(renewal) => Ok(renewal.lease_duration),
            Err(ClientError::Api { status: 400, .. })
            | Err(ClientError::Api { status: 404, .. }) => Err(RenewError::Gone),
            Err(e) => Err(RenewError::Failed(from_client("renew a lease", e))),
        }
    }

    /// Revokes a lease.
    pub async fn revoke(&self, lease_id: &str) -> Result<(), MountError> {
        self.metrics.core_request(CoreOp::revoke);
        self.client
            .revoke_lease(lease_id)
            .await
            .map_err(|e| from_client("revoke a lease", e))
    }

    /// The ids of the leases `owner` holds (`sys/cairn/leases/owner`).
    pub async fn owner_leases(&self, owner: &LeaseOwner) -> Result<Vec<String>, MountError> {
        self.metrics.core_request(CoreOp::owner_leases);
        let mut body = Map::new();
        body.insert("owner".into(), Value::String(owner.header_value()));
        let envelope = self
            .client
            .write("sys/cairn/leases/owner", &body)
            .await
            .map_err(|e| from_client("look up the pod's leases", e))?;
        let leases = envelope
            .as_ref()
            .and_then(|e| e.pointer("/data/leases"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|l| l.get("id").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(leases)
    }
}
