//! The transit secrets engine: encryption as a service with Vault's API.
//! Named keys (`aes256-gcm96`, `chacha20-poly1305`, optionally derived per
//! context) are created, read, configured, rotated and deleted under
//! `keys/`; `encrypt/`, `decrypt/`, `rewrap/`, `datakey/`, `hmac/` and
//! `verify/` use them; `random/` hands out random bytes. Key material never
//! leaves the engine.
//!
//! Ciphertexts read `cairn:v<N>:<base64(nonce || ciphertext || tag)>`;
//! Vault's `vault:v<N>:` prefix is accepted on input. Keys are stored sealed
//! in the mount's view (see [`store`]) and cached parsed, with each version's
//! cipher built once (see [`cache`]).

mod aead;
mod batch;
mod cache;
mod crypt;
mod datakey;
mod error;
mod format;
mod input;
mod keys;
mod mac;
mod policy;
mod random;
mod store;

#[cfg(test)]
mod tests;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};

pub use aead::KeyType;
pub use error::TransitError;
pub use format::{PREFIX, VAULT_PREFIX};

use self::cache::KeyCache;
use self::policy::KeyPolicy;
use super::{Engine, EngineError, Operation, Request, Response};
use crate::barrier::View;

/// Number of write-lock stripes (as in the KV engine): key changes are rare,
/// so a few stripes make unrelated keys almost never wait for each other.
const LOCK_STRIPES: usize = 64;

/// The transit engine. All durable state lives in the [`View`] of each call;
/// the engine holds the parsed-key cache and the writers' locks.
pub struct TransitEngine {
    cache: KeyCache,
    /// Everything that changes a key (create, config, rotate, delete, the
    /// first encrypt that creates it) holds its stripe, so changes are
    /// read-modify-write without lost updates, and cache fills cannot race a
    /// change.
    stripes: Vec<Mutex<()>>,
}

impl Default for TransitEngine {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Vault's rule for names: word characters, with `-` and `.` allowed inside.
fn valid_name(name: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            word(first) && word(last) && bytes.iter().all(|&b| word(b) || b == b'-' || b == b'.')
        }
        _ => false,
    }
}

fn key_name(name: &str) -> Result<&str, EngineError> {
    if valid_name(name) {
        Ok(name)
    } else {
        Err(EngineError::BadRequest(
            "invalid key name: use letters, digits, '_', '-' and '.'".into(),
        ))
    }
}

impl TransitEngine {
    /// A new engine.
    pub fn new() -> Self {
        TransitEngine {
            cache: KeyCache::default(),
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The write lock of key `name` in this mount.
    async fn lock(&self, view: &View, name: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        view.prefix().hash(&mut h);
        name.hash(&mut h);
        self.stripes[(h.finish() % LOCK_STRIPES as u64) as usize]
            .lock()
            .await
    }

    /// The key `name`, from the cache or else from storage (then cached).
    async fn policy(
        &self,
        view: &View,
        name: &str,
    ) -> Result<Option<Arc<KeyPolicy>>, TransitError> {
        if let Some(p) = self.cache.get(view.prefix(), name) {
            return Ok(Some(p));
        }
        // Fill under the key's lock: a fill that read storage before a change
        // must not overwrite the changed entry afterwards.
        let _guard = self.lock(view, name).await;
        if let Some(p) = self.cache.get(view.prefix(), name) {
            return Ok(Some(p));
        }
        let since = self.cache.epoch();
        match store::load(view, name).await? {
            Some(p) => {
                let p = Arc::new(p);
                self.cache.fill(since, view.prefix(), p.clone());
                Ok(Some(p))
            }
            None => Ok(None),
        }
    }

    /// Forget the cached copy of a stored key that changed without passing
    /// through this engine: a replicated write applied from another node.
    /// `mount_prefix` is the mount's view prefix, `key` the storage key
    /// relative to it (`policy/<name>`); other keys are ignored.
    pub fn invalidate(&self, mount_prefix: &str, key: &str) {
        if let Some(name) = key.strip_prefix(store::POLICY_PREFIX) {
            self.cache.remove(mount_prefix, name);
        }
    }

    /// Forget every cached key (e.g. when this node becomes leader, or its
    /// storage was restored from a snapshot).
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// Store `policy` and publish it to the cache. The caller holds the lock.
    async fn commit(&self, view: &View, policy: KeyPolicy) -> Result<Arc<KeyPolicy>, TransitError> {
        store::save(view, &policy).await?;
        let policy = Arc::new(policy);
        self.cache.put(view.prefix(), policy.clone());
        Ok(policy)
    }
}

#[async_trait]
impl Engine for TransitEngine {
    fn invalidate(&self, view: &View, key: &str) {
        if key.is_empty() {
            self.invalidate_all();
        } else {
            TransitEngine::invalidate(self, view.prefix(), key);
        }
    }

    async fn handle(&self, req: Request, view: &View) -> Result<Response, EngineError> {
        use Operation::*;
        let op = req.operation;
        let write = matches!(op, Create | Update);
        let body = &req.data;
        let path = req.path.as_str();
        let (head, rest) = match path.split_once('/') {
            Some((head, rest)) => (head, Some(rest)),
            None => (path, None),
        };
        match (head, rest) {
            ("keys", None | Some("")) => match op {
                List => keys::list(view).await,
                _ => Err(EngineError::UnsupportedOperation),
            },
            ("keys", Some(rest)) => {
                let (name, action) = match rest.split_once('/') {
                    Some((name, action)) => (name, Some(action)),
                    None => (rest, None),
                };
                let name = key_name(name)?;
                match (action, op) {
                    (None, Read) => keys::read(self, view, name).await,
                    (None, Create | Update) => keys::create(self, view, name, body).await,
                    (None, Delete) => keys::delete(self, view, name).await,
                    (Some("config"), Create | Update) => {
                        keys::configure(self, view, name, body).await
                    }
                    (Some("rotate"), Create | Update) => keys::rotate(self, view, name).await,
                    (Some("config" | "rotate"), _) | (None, _) => {
                        Err(EngineError::UnsupportedOperation)
                    }
                    (Some(_), _) => Err(EngineError::NotFound),
                }
            }
            ("encrypt" | "decrypt" | "rewrap", Some(name)) => {
                let name = key_name(name)?;
                if !write {
                    return Err(EngineError::UnsupportedOperation);
                }
                match head {
                    "encrypt" => crypt::encrypt(self, view, name, op, body).await,
                    "decrypt" => crypt::decrypt(self, view, name, body).await,
                    _ => crypt::rewrap(self, view, name, body).await,
                }
            }
            ("datakey", Some(rest)) => {
                let Some((kind, name)) = rest.split_once('/') else {
                    return Err(EngineError::NotFound);
                };
                let name = key_name(name)?;
                if !write {
                    return Err(EngineError::UnsupportedOperation);
                }
                datakey::generate(self, view, kind, name, body).await
            }
            ("hmac" | "verify", Some(rest)) => {
                let (name, algorithm) = match rest.split_once('/') {
                    Some((name, algorithm)) => (name, Some(algorithm)),
                    None => (rest, None),
                };
                let name = key_name(name)?;
                if !write {
                    return Err(EngineError::UnsupportedOperation);
                }
                if head == "hmac" {
                    mac::hmac(self, view, name, algorithm, body).await
                } else {
                    mac::verify(self, view, name, algorithm, body).await
                }
            }
            ("random", rest) => {
                if !write {
                    return Err(EngineError::UnsupportedOperation);
                }
                Ok(random::generate(rest, body)?)
            }
            _ => Err(EngineError::NotFound),
        }
    }

    /// `encrypt/<name>` exists when the key does: a first encrypt creates the
    /// key, which needs the `create` capability (as in Vault); with only
    /// `update` it fails with "encryption key not found". Every other path
    /// counts as existing.
    async fn exists(&self, path: &str, view: &View) -> Result<bool, EngineError> {
        match path.split_once('/') {
            Some(("encrypt", name)) if valid_name(name) => {
                Ok(self.policy(view, name).await?.is_some())
            }
            _ => Ok(true),
        }
    }
}
