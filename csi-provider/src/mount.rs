//! The Mount operation: log in as the pod, fetch every object (issuing
//! leased credentials owned by the pod, or renewing the ones issued on an
//! earlier poll), and turn them into files and versions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::LeaseOwner;
use prost::Message as _;
use serde_json::{Map, Value};
use tracing::Instrument as _;
use zeroize::Zeroizing;

use crate::cache::{CachedToken, Leased, PodCache, PodState, SourceKey, TokenKey};
use crate::error::MountError;
use crate::metrics::Metrics;
use crate::object::{Method, ObjectSpec};
use crate::params::{self, MountParams};
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
use crate::upstream::{ReadResult, RenewError, Session, Upstream};
use crate::version::{Source, Versioner};

/// The driver's gRPC message limit (its default receive size).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How the provider reaches the core when a SecretProviderClass says nothing.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// Core address (`--cairn-addr`).
    pub address: String,
    /// CA certificate file (`--cairn-ca-cert`).
    pub ca_cert: Option<PathBuf>,
    /// Timeout of each request to the core.
    pub timeout: Duration,
}

/// A core address and the CA file trusted for it.
type UpstreamKey = (String, Option<PathBuf>);

/// The provider: settings, per-core clients, per-pod cache, versions.
pub struct Provider {
    settings: CoreSettings,
    upstreams: Mutex<HashMap<UpstreamKey, Arc<Upstream>>>,
    cache: PodCache,
    versions: Versioner,
    metrics: Arc<Metrics>,
}

/// One source's data as fetched for this Mount.
struct Fetched {
    data: Map<String, Value>,
    kind: FetchedKind,
}

enum FetchedKind {
    Kv2 { version: u64 },
    Lease { lease_id: String },
    Plain,
}

impl Provider {
    /// A provider with `settings`, recording into `metrics`.
    pub fn new(settings: CoreSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            settings,
            upstreams: Mutex::default(),
            cache: PodCache::default(),
            versions: Versioner::default(),
            metrics,
        }
    }

    /// Answers one MountRequest.
    pub async fn mount(&self, request: MountRequest) -> Result<MountResponse, MountError> {
        let params = params::parse(&request.attributes, &request.permission)?;
        let span = tracing::info_span!(
            "mount",
            namespace = %params.pod.namespace,
            pod = %params.pod.name,
            uid = %params.pod.uid,
            objects = params.objects.len(),
        );
        self.mount_params(params).instrument(span).await
    }

    async fn mount_params(&self, params: MountParams) -> Result<MountResponse, MountError> {
        let upstream = self.upstream(&params)?;
        let owner = params.pod.owner();
        let pod = self.cache.pod(&owner.header_value());
        self.metrics.set_cached_pods(self.cache.len());
        let mut state = pod.lock().await;
        let token_key = TokenKey {
            address: upstream.address().to_owned(),
            auth_mount: params.auth_mount.clone(),
            role: params.role.clone(),
            jwt_mac: self.cache.jwt_mac(&params.jwt),
        };
        let cached = state.tokens.get(&token_key).is_some_and(CachedToken::fresh);
        match self
            .mount_pod(&params, &upstream, &owner, &mut state, &token_key)
            .await
        {
            // A cached token may have been revoked since: log in again once.
            Err(MountError::PermissionDenied(_)) if cached => {
                tracing::info!("the cached login was refused; logging in again");
                state.tokens.remove(&token_key);
                self.mount_pod(&params, &upstream, &owner, &mut state, &token_key)
                    .await
            }
            other => other,
        }
    }

    /// The client of the core the parameters name (or the default one).
    fn upstream(&self, params: &MountParams) -> Result<Arc<Upstream>, MountError> {
        let address = params
            .address
            .clone()
            .unwrap_or_else(|| self.settings.address.clone());
        let ca = match &params.ca_cert {
            Some(path) => Some(PathBuf::from(path)),
            None if params.address.is_none() => self.settings.ca_cert.clone(),
            None => None,
        };
        let key = (address, ca);
        let mut upstreams = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = upstreams.get(&key) {
            return Ok(found.clone());
        }
        let upstream = Arc::new(Upstream::new(
            &key.0,
            key.1.clone(),
            self.settings.timeout,
            self.metrics.clone(),
        )?);
        upstreams.insert(key, upstream.clone());
        Ok(upstream)
    }

    async fn mount_pod(
        &self,
        params: &MountParams,
        upstream: &Upstream,
        owner: &LeaseOwner,
        state: &mut PodState,
        token_key: &TokenKey,
    ) -> Result<MountResponse, MountError> {
        let token = match state.tokens.get(token_key).filter(|t| t.fresh()) {
            Some(cached) => cached.token.clone(),
            None => {
                let auth = upstream
                    .login(&params.auth_mount, params.role.as_deref(), &params.jwt)
                    .await?;
                let cached = CachedToken::new(auth.client_token, auth.lease_duration);
                let token = cached.token.clone();
                state.tokens.insert(token_key.clone(), cached);
                token
            }
        };
        let session = upstream.session(&token)?;
        let stale = self
            .leftover_leases(&session, upstream, owner, state)
            .await?;

        // Each distinct source once (objects of one credential share its
        // lease), all of them concurrently.
        let mut sources: Vec<(SourceKey, &ObjectSpec)> = Vec::new();
        for spec in &params.objects {
            let key = SourceKey::new(upstream.address(), spec);
            if !sources.iter().any(|(k, _)| k == &key) {
                sources.push((key, spec));
            }
        }
        // Plain reads of two or more sources share one batch request.
        let fresh: Vec<usize> = (0..sources.len())
            .filter(|&i| {
                let (key, spec) = &sources[i];
                spec.method == Method::Get && !state.leases.contains_key(key)
            })
            .collect();
        let mut prefetched: Vec<Option<ReadResult>> = sources.iter().map(|_| None).collect();
        if fresh.len() >= 2 {
            let specs: Vec<&ObjectSpec> = fresh.iter().map(|&i| sources[i].1).collect();
            if let Some(results) = session.fetch_many(&specs, owner).await? {
                for (i, result) in fresh.into_iter().zip(results) {
                    prefetched[i] = Some(result);
                }
            }
        }
        let outcomes = futures::future::join_all(sources.iter().zip(prefetched).map(
            |((key, spec), prefetched)| {
                self.fetch(&session, owner, spec, state.leases.get(key), prefetched)
            },
        ))
        .await;
        // Record every lease issued before failing on any error, so a retry
        // renews it rather than issuing again.
        let mut fetched: HashMap<SourceKey, Fetched> = HashMap::new();
        let mut failure = None;
        for ((key, _), outcome) in sources.into_iter().zip(outcomes) {
            match outcome {
                Ok(outcome) => {
                    if outcome.drop_cached {
                        state.leases.remove(&key);
                    }
                    if let Some(leased) = outcome.issued {
                        state.leases.insert(key.clone(), leased);
                    }
                    fetched.insert(key, outcome.fetched);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }

        let mut response = MountResponse::default();
        for spec in &params.objects {
            let source = fetched
                .get(&SourceKey::new(upstream.address(), spec))
                .ok_or_else(|| MountError::Internal("a fetched source went missing".into()))?;
            let contents = file_bytes(&source.data, spec)?;
            let mode = spec.mode.unwrap_or(params.default_mode);
            let version_source = match &source.kind {
                FetchedKind::Kv2 { version } => Source::Kv2 {
                    path: &spec.path,
                    version: *version,
                },
                FetchedKind::Lease { lease_id } => Source::Lease { lease_id },
                FetchedKind::Plain => Source::Content,
            };
            response.object_version.push(ObjectVersion {
                id: spec.file_name.clone(),
                version: self.versions.version(spec, mode, version_source, &contents),
            });
            response.files.push(File {
                path: spec.file_name.clone(),
                mode: mode as i32,
                contents: contents.to_vec(),
            });
        }
        let size = response.encoded_len();
        if size > MAX_RESPONSE_BYTES {
            return Err(MountError::TooLarge {
                size,
                limit: MAX_RESPONSE_BYTES,
            });
        }

        // The new credentials exist: those of an earlier provider process
        // (whose passwords are lost) can go.
        for lease_id in stale {
            match session.revoke(&lease_id).await {
                Ok(()) => tracing::info!(
                    lease_id,
                    "revoked a lease left by an earlier provider process"
                ),
                Err(e) => {
                    tracing::warn!(lease_id, error = %e, "could not revoke a leftover lease; it ends at its TTL or when the pod is deleted")
                }
            }
        }
        state.recovered.insert(upstream.address().to_owned());
        tracing::info!(files = response.files.len(), bytes = size, "mounted");
        Ok(response)
    }

    /// On the first Mount of a pod by this process: the pod's leases this
    /// process did not issue (a restarted provider cannot give their
    /// passwords again, so they are replaced and revoked).
    async fn leftover_leases(
        &self,
        session: &Session,
        upstream: &Upstream,
        owner: &LeaseOwner,
        state: &PodState,
    ) -> Result<Vec<String>, MountError> {
        if state.recovered.contains(upstream.address()) {
            return Ok(Vec::new());
        }
        match session.owner_leases(owner).await {
            Ok(ids) => Ok(ids
                .into_iter()
                .filter(|id| !state.leases.values().any(|l| &l.lease_id == id))
                .collect()),
            Err(MountError::PermissionDenied(_)) => {
                tracing::warn!("the pod's policies do not allow sys/cairn/leases/owner; leases of an earlier provider process are left to their TTL and to pod garbage collection");
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// One source: a renewed cached lease, or a fresh read or issue (done
    /// already when `prefetched`, by a batch). The pod's state is changed by
    /// the caller from the outcome.
    async fn fetch(
        &self,
        session: &Session,
        owner: &LeaseOwner,
        spec: &ObjectSpec,
        cached: Option<&Leased>,
        prefetched: Option<ReadResult>,
    ) -> Result<FetchOutcome, MountError> {
        let mut drop_cached = false;
        if let Some(leased) = cached {
            match session.renew(&leased.lease_id).await {
                // Renewed with a useful TTL left: the same credential again.
                Ok(left) if left > 0 && left * 3 >= leased.issued_ttl => {
                    let data = serde_json::from_slice(&leased.data).map_err(|_| {
                        MountError::Internal("a cached credential is corrupt".into())
                    })?;
                    return Ok(FetchOutcome {
                        fetched: Fetched {
                            data,
                            kind: FetchedKind::Lease {
                                lease_id: leased.lease_id.clone(),
                            },
                        },
                        issued: None,
                        drop_cached,
                    });
                }
                // Near its max TTL, expired or revoked: issue a new one. The
                // old lease (if any) ends at its max TTL.
                Ok(_) | Err(RenewError::Gone) => {
                    tracing::info!(path = %spec.path, "lease at its end; issuing a new credential");
                    drop_cached = true;
                }
                Err(RenewError::Failed(e)) => return Err(e),
            }
        }
        let secret = match prefetched {
            Some(result) => result?,
            None => session.fetch(spec, owner).await?,
        };
        let data = secret.data.unwrap_or_default();
        if !secret.lease_id.is_empty() {
            let json = Zeroizing::new(
                serde_json::to_vec(&data)
                    .map_err(|_| MountError::Internal("cannot keep a credential".into()))?,
            );
            tracing::info!(path = %spec.path, lease_id = %secret.lease_id, ttl = secret.lease_duration, "issued a credential owned by the pod");
            return Ok(FetchOutcome {
                issued: Some(Leased {
                    lease_id: secret.lease_id.clone(),
                    issued_ttl: secret.lease_duration,
                    data: json,
                }),
                fetched: Fetched {
                    data,
                    kind: FetchedKind::Lease {
                        lease_id: secret.lease_id,
                    },
                },
                drop_cached,
            });
        }
        Ok(FetchOutcome {
            fetched: kv2_or_plain(data, spec)?,
            issued: None,
            drop_cached,
        })
    }
}

/// What fetching one source produced, and how the pod's state changes.
struct FetchOutcome {
    fetched: Fetched,
    /// A credential issued now, to cache.
    issued: Option<Leased>,
    /// The cached credential ended: forget it.
    drop_cached: bool,
}

/// A KV v2 read answers `{data: {...}, metadata: {version, ...}}`.
fn kv2_or_plain(mut data: Map<String, Value>, spec: &ObjectSpec) -> Result<Fetched, MountError> {
    let version = data
        .get("metadata")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_u64);
    match (version, data.get("data")) {
        (Some(version), Some(Value::Object(_))) => {
            let Some(Value::Object(inner)) = data.remove("data") else {
                return Err(MountError::Internal("KV data vanished".into()));
            };
            Ok(Fetched {
                data: inner,
                kind: FetchedKind::Kv2 { version },
            })
        }
        (Some(version), Some(Value::Null)) => Err(MountError::NotFound(format!(
            "{}: version {version} is deleted or destroyed",
            spec.path
        ))),
        _ => Ok(Fetched {
            data,
            kind: FetchedKind::Plain,
        }),
    }
}

/// The bytes of one file: the key's value (strings as they are, anything
/// else as JSON) or the whole data as JSON, then decoded.
fn file_bytes(
    data: &Map<String, Value>,
    spec: &ObjectSpec,
) -> Result<Zeroizing<Vec<u8>>, MountError> {
    let raw = Zeroizing::new(match &spec.key {
        None => serde_json::to_vec(data)
            .map_err(|_| MountError::Internal("cannot encode a secret".into()))?,
        Some(key) => match data.get(key) {
            None => {
                return Err(MountError::NotFound(format!(
                    "{}: no key {key:?} (object {})",
                    spec.path, spec.file_name
                )))
            }
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(other) => other.to_string().into_bytes(),
        },
    });
    spec.encoding.decode(&raw).map(Zeroizing::new).map_err(|_| {
        MountError::FailedPrecondition(format!(
            "object {}: the value at {} is not valid {}",
            spec.file_name,
            spec.path,
            spec.encoding.name()
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::object::parse_objects;
    use serde_json::json;

    fn spec(yaml: &str) -> ObjectSpec {
        parse_objects(yaml).unwrap().remove(0)
    }

    #[test]
    fn kv2_answers_are_unwrapped() {
        let data = json!({"data": {"password": "p"}, "metadata": {"version": 3}});
        let f = kv2_or_plain(
            data.as_object().unwrap().clone(),
            &spec("- {fileName: a, path: s/data/x}"),
        )
        .unwrap();
        assert!(matches!(f.kind, FetchedKind::Kv2 { version: 3 }));
        assert_eq!(f.data["password"], "p");
        let deleted = json!({"data": null, "metadata": {"version": 4}});
        assert!(matches!(
            kv2_or_plain(
                deleted.as_object().unwrap().clone(),
                &spec("- {fileName: a, path: s/data/x}")
            ),
            Err(MountError::NotFound(_))
        ));
        let plain = json!({"password": "p"});
        let f = kv2_or_plain(
            plain.as_object().unwrap().clone(),
            &spec("- {fileName: a, path: kv1/x}"),
        )
        .unwrap();
        assert!(matches!(f.kind, FetchedKind::Plain));
    }

    #[test]
    fn file_bytes_select_and_decode() {
        let data = json!({"s": "aGk=", "n": 5, "h": "6869"});
        let data = data.as_object().unwrap();
        let b = file_bytes(
            data,
            &spec("- {fileName: a, path: p, key: s, encoding: base64}"),
        )
        .unwrap();
        assert_eq!(b.as_slice(), b"hi");
        let b = file_bytes(data, &spec("- {fileName: a, path: p, key: n}")).unwrap();
        assert_eq!(b.as_slice(), b"5");
        let b = file_bytes(
            data,
            &spec("- {fileName: a, path: p, key: h, encoding: hex}"),
        )
        .unwrap();
        assert_eq!(b.as_slice(), b"hi");
        let whole = file_bytes(data, &spec("- {fileName: a, path: p}")).unwrap();
        let back: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(&back, &Value::Object(data.clone()));
        assert!(matches!(
            file_bytes(data, &spec("- {fileName: a, path: p, key: missing}")),
            Err(MountError::NotFound(_))
        ));
        assert!(matches!(
            file_bytes(
                data,
                &spec("- {fileName: a, path: p, key: n, encoding: base64}")
            ),
            Err(MountError::FailedPrecondition(_))
        ));
    }
}
