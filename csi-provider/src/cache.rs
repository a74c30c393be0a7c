//! What the provider remembers per pod between the driver's rotation polls:
//! the core token of each login and every leased credential it issued, so
//! a poll renews leases instead of issuing new credentials and returns the
//! same bytes and versions. Entries idle for [`IDLE`] are dropped (the
//! provider is never told that a pod is gone); a later Mount of such a pod
//! is handled like one after a provider restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::object::{Method, ObjectSpec};

/// How long a pod's entry outlives its last Mount.
pub const IDLE: Duration = Duration::from_secs(3600);
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Which login a cached token came from. The service-account token is kept
/// only as an HMAC under a per-process key: a poll presenting the same
/// token reuses the login, another token logs in again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// Core address.
    pub address: String,
    /// Auth mount.
    pub auth_mount: String,
    /// Role, if named.
    pub role: Option<String>,
    /// HMAC of the service-account token.
    pub jwt_mac: [u8; 32],
}

/// A core token and when to log in again.
pub struct CachedToken {
    /// The token.
    pub token: Zeroizing<String>,
    /// Log in again from this instant (two thirds of the token's TTL).
    pub refresh_at: Option<Instant>,
}

impl CachedToken {
    /// A token valid for `ttl` seconds (0: no expiry).
    pub fn new(token: String, ttl: u64) -> Self {
        let refresh_at = (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl * 2 / 3));
        Self {
            token: Zeroizing::new(token),
            refresh_at,
        }
    }

    /// Whether it can still be used.
    pub fn fresh(&self) -> bool {
        self.refresh_at.is_none_or(|at| Instant::now() < at)
    }
}

/// Identity of a source read: the same path, method and body at the same
/// core is fetched once per Mount and its lease shared by its objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceKey {
    address: String,
    path: String,
    method: Method,
    args: String,
}

impl SourceKey {
    /// The source of `spec` at `address`.
    pub fn new(address: &str, spec: &ObjectSpec) -> Self {
        Self {
            address: address.to_owned(),
            path: spec.path.clone(),
            method: spec.method,
            // BTreeMap serialises in key order: a canonical form.
            args: serde_json::to_string(&spec.args).unwrap_or_default(),
        }
    }
}

/// A credential issued under a lease owned by the pod.
pub struct Leased {
    /// Lease id.
    pub lease_id: String,
    /// TTL granted at issue, seconds.
    pub issued_ttl: u64,
    /// The secret's data as JSON.
    pub data: Zeroizing<Vec<u8>>,
}

/// One pod's state.
#[derive(Default)]
pub struct PodState {
    /// Core tokens by login.
    pub tokens: HashMap<TokenKey, CachedToken>,
    /// Leased credentials by source.
    pub leases: HashMap<SourceKey, Leased>,
    /// Cores whose leftover leases for this pod were already looked up.
    pub recovered: HashSet<String>,
}

struct Entry {
    state: Arc<tokio::sync::Mutex<PodState>>,
    last_used: Instant,
}

struct Inner {
    pods: HashMap<String, Entry>,
    last_sweep: Instant,
}

/// Per-pod state, keyed by the pod's owner reference (which holds its uid).
pub struct PodCache {
    inner: Mutex<Inner>,
    idle: Duration,
    jwt_key: Zeroizing<[u8; 32]>,
}

impl Default for PodCache {
    fn default() -> Self {
        Self::with_idle(IDLE)
    }
}

impl PodCache {
    /// A cache dropping entries idle for `idle`.
    pub fn with_idle(idle: Duration) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self {
            inner: Mutex::new(Inner {
                pods: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            idle,
            jwt_key: key,
        }
    }

    /// The state of pod `owner`, created when missing. Mounts of one pod
    /// are serialised by its lock, so concurrent polls cannot issue twice.
    pub fn pod(&self, owner: &str) -> Arc<tokio::sync::Mutex<PodState>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(inner.last_sweep) >= SWEEP_EVERY.min(self.idle) {
            let idle = self.idle;
            // An entry in use (locked or held by a Mount) is never dropped.
            inner.pods.retain(|_, e| {
                now.duration_since(e.last_used) < idle || Arc::strong_count(&e.state) > 1
            });
            inner.last_sweep = now;
        }
        let entry = inner.pods.entry(owner.to_owned()).or_insert_with(|| Entry {
            state: Arc::default(),
            last_used: now,
        });
        entry.last_used = now;
        entry.state.clone()
    }

    /// Number of pods held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.pods.len()).unwrap_or(0)
    }

    /// Whether no pod is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// HMAC of a service-account token under the per-process key.
    pub fn jwt_mac(&self, jwt: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.jwt_key.as_ref()) {
            mac.update(jwt.as_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_pod_same_state_and_idle_entries_go() {
        let cache = PodCache::with_idle(Duration::from_millis(0));
        let a = cache.pod("ns/Pod/a/1");
        assert!(Arc::ptr_eq(&a, &cache.pod("ns/Pod/a/1")));
        // Held by `a`: survives a sweep.
        cache.pod("ns/Pod/b/2");
        assert!(Arc::ptr_eq(&a, &cache.pod("ns/Pod/a/1")));
        drop(a);
        cache.pod("ns/Pod/c/3");
        assert_eq!(cache.len(), 1, "idle, unheld entries are dropped");
    }

    #[test]
    fn jwt_macs_distinguish_tokens() {
        let cache = PodCache::default();
        assert_eq!(cache.jwt_mac("a"), cache.jwt_mac("a"));
        assert_ne!(cache.jwt_mac("a"), cache.jwt_mac("b"));
        assert_ne!(cache.jwt_mac("a"), PodCache::default().jwt_mac("a"));
    }

    #[test]
    fn token_freshness() {
        assert!(CachedToken::new("t".into(), 0).fresh());
        assert!(CachedToken::new("t".into(), 3600).fresh());
        let mut stale = CachedToken::new("t".into(), 3);
        stale.refresh_at = Some(Instant::now() - Duration::from_secs(1));
        assert!(!stale.fresh());
    }
}
