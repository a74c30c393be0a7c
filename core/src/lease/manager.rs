//! Issuing, renewing, revoking and listing leases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use super::entry::{LeaseEntry, Owner};
use super::expiry::ExpiryQueue;
use crate::auth::token::DEFAULT_TTL;
use crate::barrier::{BarrierError, BarrierOp, View};
use crate::engines::{EngineError, LeaseRequest};
use crate::node::mounts::{MountEntry, MountTable};

/// Revocations run at once by the expiry worker.
const REVOKE_CONCURRENCY: usize = 64;
/// Longest wait between retries of a failing revocation.
const MAX_BACKOFF_SECS: i64 = 300;

/// Lease failures.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease not found")]
    NotFound,
    #[error("lease is not renewable")]
    NotRenewable,
    #[error("{0}")]
    BadRequest(String),
    /// The engine refused or failed to revoke; the lease is kept and retried.
    #[error("failed to revoke lease: {0}")]
    Revoke(String),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// What the envelope reports for a new lease.
pub struct Issued {
    pub lease_id: String,
    pub lease_duration: i64,
    pub renewable: bool,
}

/// The lease manager of one node.
pub struct LeaseManager {
    view: View,
    mounts: Arc<MountTable>,
    queue: ExpiryQueue,
    /// Revocations done (Prometheus `cairn_lease_revocations_total`).
    pub revocations: AtomicU64,
    /// Revocation attempts that failed and will be retried.
    pub revocation_failures: AtomicU64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn index_key(token_hash: &str, lease_id: &str) -> String {
    format!(
        "token/{token_hash}/{}",
        hex::encode(Sha256::digest(lease_id.as_bytes()))
    )
}

/// Index of an object owner's leases: `object/<ns>/<kind>/<name>/<uid>/`.
/// Owner parts never hold `/` (see [`Owner::parse_object`]).
fn object_prefix(owner: &Owner) -> Option<String> {
    match owner {
        Owner::Object {
            namespace,
            kind,
            name,
            uid,
        } => Some(format!("object/{namespace}/{kind}/{name}/{uid}/")),
        Owner::Token { .. } => None,
    }
}

/// The owner index key of one lease, for token and object owners alike.
fn owner_index_key(owner: &Owner, lease_id: &str) -> String {
    match owner {
        Owner::Token { hash } => index_key(hash, lease_id),
        object => format!(
            "{}{}",
            object_prefix(object).unwrap_or_default(),
            hex::encode(Sha256::digest(lease_id.as_bytes()))
        ),
    }
}

/// Lease ids as Vault shapes them: `<mount><path>/<random>`.
fn validate_id(id: &str) -> Result<(), LeaseError> {
    if id.is_empty()
        || id.len() > 1024
        || id.contains('\0')
        || id.split('/').any(|s| s.is_empty() || s == ".." || s == ".")
    {
        return Err(LeaseError::BadRequest("invalid lease id".into()));
    }
    Ok(())
}

impl LeaseManager {
    /// A manager over `view` (`sys/expire/`), revoking through `mounts`.
    pub fn new(view: View, mounts: Arc<MountTable>) -> Arc<Self> {
        Arc::new(LeaseManager {
            view,
            mounts,
            queue: ExpiryQueue::default(),
            revocations: AtomicU64::new(0),
            revocation_failures: AtomicU64::new(0),
        })
    }

    /// The counters `sys/metrics` exports.
    pub fn stats(&self) -> LeaseStats {
        LeaseStats {
            queued: self.queue.len() as u64,
            revocations: self.revocations.load(Ordering::Relaxed),
            revocation_failures: self.revocation_failures.load(Ordering::Relaxed),
        }
    }

    /// Leases in the expiry queue (this node's, on the leader every lease).
    pub fn active(&self) -> usize {
        self.queue.len()
    }

    /// Load every stored lease into the expiry queue (at unseal or on
    /// becoming leader); returns how many.
    pub async fn rebuild(&self) -> Result<usize, LeaseError> {
        self.queue.clear();
        let keys = self.view.keys_with_prefix("id/").await?;
        for key in &keys {
            if let Some(e) = self.view.get_json::<LeaseEntry>(key).await? {
                self.queue.schedule(&e.id, e.expire_ms);
            }
        }
        Ok(keys.len())
    }

    /// Record a lease for a secret `mount` just issued at `path`.
    pub async fn issue(
        &self,
        mount: &MountEntry,
        path: &str,
        req: LeaseRequest,
        owner: Owner,
    ) -> Result<Issued, LeaseError> {
        let now = now_ms();
        let mount_default = if mount.config.default_lease_ttl > 0 {
            mount.config.default_lease_ttl
        } else {
            DEFAULT_TTL
        };
        let mount_max = if mount.config.max_lease_ttl > 0 {
            mount.config.max_lease_ttl
        } else {
            DEFAULT_TTL
        };
        let max_ttl = if req.max_ttl > 0 {
            req.max_ttl.min(mount_max)
        } else {
            mount_max
        };
        let ttl = (if req.ttl > 0 { req.ttl } else { mount_default }).min(max_ttl);

        let mut random = [0u8; 18];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let id = format!(
            "{}{}/{}",
            mount.path,
            path.trim_matches('/'),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let entry = LeaseEntry {
            id: id.clone(),
            mount: mount.path.clone(),
            internal: req.internal,
            owner,
            issue_ms: now,
            expire_ms: now + ttl * 1000,
            last_renewal_ms: now,
            max_expire_ms: now + max_ttl * 1000,
            ttl,
            renewable: req.renewable,
            revoke_attempts: 0,
            last_error: None,
        };
        self.save(&entry, true).await?;
        self.queue.schedule(&id, entry.expire_ms);
        Ok(Issued {
            lease_id: id,
            lease_duration: ttl,
            renewable: entry.renewable,
        })
    }

    async fn save(&self, entry: &LeaseEntry, index: bool) -> Result<(), LeaseError> {
        let body = Zeroizing::new(
            serde_json::to_vec(entry).map_err(|e| LeaseError::BadRequest(e.to_string()))?,
        );
        let mut ops = vec![BarrierOp::Put {
            key: format!("id/{}", entry.id),
            value: &body,
        }];
        if index {
            ops.push(BarrierOp::Put {
                key: owner_index_key(&entry.owner, &entry.id),
                value: entry.id.as_bytes(),
            });
        }
        self.view.batch(ops).await?;
        Ok(())
    }

    /// The lease `id`, if it exists.
    pub async fn lookup(&self, id: &str) -> Result<Option<LeaseEntry>, LeaseError> {
        validate_id(id)?;
        Ok(self.view.get_json(&format!("id/{id}")).await?)
    }

    /// Lease ids directly under `prefix` (folders end with `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LeaseError> {
        Ok(self.view.list(&format!("id/{}", folder(prefix)?)).await?)
    }

    /// Extend a lease by `increment` seconds (0 = its original TTL), capped by
    /// its max TTL. The engine is told first, so the secret never expires
    /// before the lease says it does.
    pub async fn renew(&self, id: &str, increment: i64) -> Result<LeaseEntry, LeaseError> {
        let mut entry = self.lookup(id).await?.ok_or(LeaseError::NotFound)?;
        if !entry.renewable {
            return Err(LeaseError::NotRenewable);
        }
        let now = now_ms();
        if now >= entry.expire_ms {
            return Err(LeaseError::NotFound);
        }
        let wanted = if increment > 0 { increment } else { entry.ttl };
        let expire = (now + wanted * 1000).min(entry.max_expire_ms);
        let mount = self
            .mounts
            .mount_at(&entry.mount)
            .ok_or(LeaseError::NotFound)?;
        mount
            .engine
            .renew(&entry.internal, expire / 1000, &mount.view)
            .await
            .map_err(|e| LeaseError::Revoke(engine_message(&e)))?;
        entry.expire_ms = expire;
        entry.last_renewal_ms = now;
        self.save(&entry, false).await?;
        self.queue.schedule(&entry.id, entry.expire_ms);
        Ok(entry)
    }

    /// Revoke now: the engine destroys the secret, then the lease is deleted.
    /// On failure the lease stays, records the error and is retried later.
    pub async fn revoke(&self, id: &str) -> Result<(), LeaseError> {
        let Some(entry) = self.lookup(id).await? else {
            return Ok(());
        };
        self.revoke_entry(entry, false).await
    }

    async fn revoke_entry(&self, mut entry: LeaseEntry, force: bool) -> Result<(), LeaseError> {
        let outcome = match self.mounts.mount_at(&entry.mount) {
            // The mount is gone (it revokes its leases before unmounting, so
            // this is a leftover): nothing is left to destroy.
            None => Ok(()),
            Some(mount) => mount.engine.revoke(&entry.internal, &mount.view).await,
        };
        match outcome {
            Ok(()) => {}
            Err(_) if force => {}
            Err(e) => {
                let message = engine_message(&e);
                self.revocation_failures.fetch_add(1, Ordering::Relaxed);
                entry.revoke_attempts += 1;
                entry.last_error = Some(message.clone());
                let backoff = (1i64 << entry.revoke_attempts.min(16)).min(MAX_BACKOFF_SECS);
                let jitter = (rand::random::<u16>() % 500) as i64;
                tracing::warn!(lease_id = %entry.id, attempts = entry.revoke_attempts, error = %message, "lease revocation failed; will retry");
                self.save(&entry, false).await?;
                self.queue
                    .schedule(&entry.id, now_ms() + backoff * 1000 + jitter);
                return Err(LeaseError::Revoke(message));
            }
        }
        let ops = vec![
            BarrierOp::Delete {
                key: format!("id/{}", entry.id),
            },
            BarrierOp::Delete {
                key: owner_index_key(&entry.owner, &entry.id),
            },
        ];
        self.view.batch(ops).await?;
        self.queue.remove(&entry.id);
        self.revocations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Revoke every lease whose id starts with `prefix`. With `force`, engine
    /// errors are ignored and the leases deleted anyway (Vault's revoke-force).
    pub async fn revoke_prefix(&self, prefix: &str, force: bool) -> Result<usize, LeaseError> {
        // As in Vault, a prefix that names one lease revokes that lease; any
        // other prefix is a folder (`database/creds/app` never matches
        // `database/creds/app-2/...`).
        let exact = prefix.trim_matches('/');
        if !exact.is_empty() && !prefix.ends_with('/') {
            if let Some(entry) = self.lookup(exact).await? {
                self.revoke_entry(entry, force).await?;
                return Ok(1);
            }
        }
        let keys = self
            .view
            .keys_with_prefix(&format!("id/{}", folder(prefix)?))
            .await?;
        let mut revoked = 0;
        let mut first_error = None;
        for key in keys {
            if let Some(entry) = self.view.get_json::<LeaseEntry>(&key).await? {
                match self.revoke_entry(entry, force).await {
                    Ok(()) => revoked += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    /// Revoke the leases a token owned (called when the token is revoked).
    /// Failures stay queued for retry; the token's revocation goes on.
    pub async fn revoke_by_token(&self, token_hash: &str) -> Result<(), LeaseError> {
        for entry in self.indexed(&format!("token/{token_hash}/")).await? {
            // A failed revocation keeps the lease and its retry schedule.
            let _ = self.revoke_entry(entry, false).await;
        }
        Ok(())
    }

    /// The leases an object owns (e.g. a pod's CSI credentials).
    pub async fn by_owner(&self, owner: &Owner) -> Result<Vec<LeaseEntry>, LeaseError> {
        match object_prefix(owner) {
            Some(prefix) => self.indexed(&prefix).await,
            None => Ok(Vec::new()),
        }
    }

    /// Revoke every lease an object owns (it was deleted); returns how many.
    /// Failed revocations stay queued for retry and are reported.
    pub async fn revoke_owner(&self, owner: &Owner) -> Result<usize, LeaseError> {
        let mut revoked = 0;
        let mut first_error = None;
        for entry in self.by_owner(owner).await? {
            match self.revoke_entry(entry, false).await {
                Ok(()) => revoked += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    /// Every object owning at least one lease, with its lease count;
    /// `kind` filters (`Pod`, `DynamicCredential`).
    pub async fn owners(&self, kind: Option<&str>) -> Result<Vec<(Owner, usize)>, LeaseError> {
        let mut owners: Vec<(Owner, usize)> = Vec::new();
        for key in self.view.keys_with_prefix("object/").await? {
            let parts: Vec<&str> = key.split('/').collect();
            let [_, ns, k, name, uid, _] = parts.as_slice() else {
                continue;
            };
            if kind.is_some_and(|want| want != *k) {
                continue;
            }
            let owner = Owner::Object {
                namespace: (*ns).to_owned(),
                kind: (*k).to_owned(),
                name: (*name).to_owned(),
                uid: (*uid).to_owned(),
            };
            // Keys come sorted, so one owner's leases are adjacent.
            match owners.last_mut() {
                Some((last, n)) if *last == owner => *n += 1,
                _ => owners.push((owner, 1)),
            }
        }
        Ok(owners)
    }

    /// The leases an owner index under `prefix` points at; index entries
    /// whose lease is gone are dropped on the way.
    async fn indexed(&self, prefix: &str) -> Result<Vec<LeaseEntry>, LeaseError> {
        let mut out = Vec::new();
        for key in self.view.keys_with_prefix(prefix).await? {
            let Some(id) = self.view.get(&key).await? else {
                continue;
            };
            let id = String::from_utf8_lossy(&id).into_owned();
            match self.lookup(&id).await? {
                Some(entry) => out.push(entry),
                None => self.view.delete(&key).await?,
            }
        }
        Ok(out)
    }

    /// Run the expiry worker until the task is aborted (at seal). It works
    /// only while `active` is true — on the Raft leader, or always on a single
    /// node — and rebuilds its queue from storage each time it becomes active,
    /// so a new leader revokes what the old one had queued.
    pub fn spawn_expiry(
        self: &Arc<Self>,
        active: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.expiry_loop(active).await })
    }

    async fn expiry_loop(self: Arc<Self>, mut active: watch::Receiver<bool>) {
        loop {
            while !*active.borrow_and_update() {
                wait_change(&mut active).await;
            }
            match self.rebuild().await {
                Ok(n) => tracing::debug!(leases = n, "lease expiry queue rebuilt"),
                Err(e) => {
                    tracing::warn!(error = %e, "rebuilding the lease expiry queue failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            self.revoke_due_while_active(&mut active).await;
            // Stepped down: the new leader owns expiry now.
            self.queue.clear();
        }
    }

    /// Revoke leases as they fall due until `active` turns false.
    async fn revoke_due_while_active(self: &Arc<Self>, active: &mut watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(REVOKE_CONCURRENCY));
        let mut running = JoinSet::new();
        loop {
            if !*active.borrow() {
                return;
            }
            let now = now_ms();
            let due = self.queue.take_due(now, 1024);
            for id in due {
                let me = self.clone();
                let permit = permits.clone().acquire_owned().await;
                running.spawn(async move {
                    let _permit = permit;
                    match me.lookup(&id).await {
                        Ok(Some(entry)) if entry.expire_ms <= now_ms() => {
                            let _ = me.revoke_entry(entry, false).await;
                        }
                        // Renewed since it was queued: back in the queue at its new time.
                        Ok(Some(entry)) => me.queue.schedule(&entry.id, entry.expire_ms),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(lease_id = %id, error = %e, "lease lookup failed in expiry; will retry");
                            me.queue.schedule(&id, now_ms() + 1000);
                        }
                    }
                });
            }
            while running.try_join_next().is_some() {}
            let wait = match self.queue.next_due() {
                Some(due) => (due - now_ms()).clamp(0, 1000),
                None => 1000,
            };
            if wait > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                    _ = self.queue.changed.notified() => {}
                    _ = wait_change(active) => {}
                }
            }
        }
    }
}

/// A lease-id prefix as a folder: no leading `/`, a trailing `/` unless it
/// is the root (empty).
fn folder(prefix: &str) -> Result<String, LeaseError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_id(trimmed)?;
    Ok(format!("{trimmed}/"))
}

/// Counters of the lease manager, for `sys/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Leases waiting in the expiry queue.
    pub queued: u64,
    /// Revocations done since unseal.
    pub revocations: u64,
    /// Revocation attempts that failed (each is retried with backoff).
    pub revocation_failures: u64,
}

/// Wait for `rx` to change; a sender that is gone never changes again.
pub async fn wait_change(rx: &mut watch::Receiver<bool>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Engine errors as a lease can record them: the engine's own message for
/// bad input, a generic one for storage faults.
fn engine_message(e: &EngineError) -> String {
    match e {
        EngineError::BadRequest(m)
        | EngineError::Conflict(m)
        | EngineError::Denied(m)
        | EngineError::Upstream(m) => m.clone(),
        EngineError::NotFound => "not found".into(),
        EngineError::UnsupportedOperation => "unsupported operation".into(),
        EngineError::Barrier(b) => b.to_string(),
    }
}

#[async_trait::async_trait]
impl crate::auth::token::RevocationHook for LeaseManager {
    async fn token_revoked(&self, token_hash: &str) {
        if let Err(e) = self.revoke_by_token(token_hash).await {
            tracing::warn!(error = %e, "revoking the leases of a revoked token failed; they stay queued");
        }
    }
}
