//! The barrier: everything above it sees plaintext, everything below it sees
//! AES-256-GCM ciphertext bound to its storage key.
//!
//! While sealed the barrier holds no keyring and refuses every read and write.

mod decoded;
pub mod keyring;
pub mod view;

use std::sync::Arc;

use arc_swap_lite::Slot;
use zeroize::Zeroizing;

pub use keyring::{Key, Keyring, OpenError};
pub use view::View;

use crate::storage::{Op, Storage, StorageError};

/// Storage key of the keyring, sealed with the root key.
pub const KEYRING_PATH: &str = "core/keyring";

/// Failures of barrier reads and writes.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// The node is sealed; nothing can be read or written.
    #[error("Vault is sealed")]
    Sealed,
    /// A stored value failed to decrypt: tampering, or a value moved between keys.
    #[error("stored value at {key} failed integrity check")]
    Corrupt { key: String },
    /// The value could not be sealed.
    #[error("value is too large to seal")]
    TooLarge,
    /// The storage below failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One write through the barrier.
pub enum BarrierOp<'a> {
    Put { key: String, value: &'a [u8] },
    Delete { key: String },
}

/// Encrypting wrapper around the storage.
pub struct Barrier {
    storage: Arc<dyn Storage>,
    keyring: Slot<Keyring>,
    /// A generation number bumped after every write that reached storage
    /// (here, or replicated from the Raft leader): watchers of secrets
    /// (`sys/cairn/watch`) wake on it and re-check what they watch.
    changes: tokio::sync::watch::Sender<u64>,
    /// Parsed token entries and KV metadata (see `decoded.rs`).
    decoded: decoded::DecodedCache,
}

impl Barrier {
    /// A sealed barrier over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Barrier {
            storage,
            keyring: Slot::empty(),
            changes: tokio::sync::watch::channel(0).0,
            decoded: decoded::DecodedCache::default(),
        }
    }

    /// The raw storage (for the seal's plaintext bootstrap records only).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Whether a keyring is loaded.
    pub fn is_unsealed(&self) -> bool {
        self.keyring.get().is_some()
    }

    /// The loaded keyring.
    pub fn keyring(&self) -> Result<Arc<Keyring>, BarrierError> {
        self.keyring.get().ok_or(BarrierError::Sealed)
    }

    /// Install a keyring (unseal) or drop it (seal).
    pub fn set_keyring(&self, keyring: Option<Keyring>) {
        self.keyring.set(keyring.map(Arc::new));
        self.decoded.invalidate([""]);
    }

    /// Read `key` and parse it as JSON into a shared value, kept in memory
    /// until `key` is written. Only for records that hold no secret.
    pub async fn get_json_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>, BarrierError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(value) = self.decoded.get::<T>(key) {
            self.keyring()?;
            return Ok(Some(value));
        }
        let since = self.decoded.epoch();
        let Some(bytes) = self.get(key).await? else {
            return Ok(None);
        };
        let value: Arc<T> =
            serde_json::from_slice(&bytes)
                .map(Arc::new)
                .map_err(|_| BarrierError::Corrupt {
                    key: key.to_owned(),
                })?;
        self.decoded.insert(since, key, value.clone());
        Ok(Some(value))
    }

    /// Forget what is kept in memory of `keys`, which a write from another
    /// node changed (the storage's apply hook); an empty key means all.
    pub fn forget(&self, keys: &[String]) {
        self.decoded.invalidate(keys.iter().map(String::as_str));
    }

    /// Read and decrypt `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, BarrierError> {
        let ring = self.keyring()?;
        let Some(sealed) = self.storage.get(key).await? else {
            return Ok(None);
        };
        ring.open(key.as_bytes(), &sealed)
            .map(Some)
            .map_err(|_| BarrierError::Corrupt {
                key: key.to_owned(),
            })
    }

    /// Encrypt and write `value` under `key`.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BarrierError> {
        self.batch(vec![BarrierOp::Put {
            key: key.to_owned(),
            value,
        }])
        .await
    }

    /// Remove `key`.
    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.batch(vec![BarrierOp::Delete {
            key: key.to_owned(),
        }])
        .await
    }

    /// Encrypt and apply several writes atomically.
    pub async fn batch(&self, ops: Vec<BarrierOp<'_>>) -> Result<(), BarrierError> {
        let ring = self.keyring()?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                BarrierOp::Put { key, value } => {
                    let value = ring
                        .seal(key.as_bytes(), value)
                        .map_err(|_| BarrierError::TooLarge)?;
                    Op::Put { key, value }
                }
                BarrierOp::Delete { key } => Op::Delete { key },
            });
        }
        let keys: Vec<String> = out
            .iter()
            .map(|op| match op {
                Op::Put { key, .. } | Op::Delete { key } => key.clone(),
            })
            .collect();
        let written = self.storage.batch(out).await;
        // Even a failed write may have reached storage (a proposal whose
        // answer was lost): forget the keys either way.
        self.decoded.invalidate(keys.iter().map(String::as_str));
        written?;
        self.notify_changed();
        Ok(())
    }

    /// Tell watchers that stored data changed (called after local writes,
    /// and by a Raft follower when it applies replicated ones).
    pub fn notify_changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// A receiver that wakes after each change (see [`Barrier::notify_changed`]).
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Direct children of `prefix` (names are not secret; values are).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.keyring()?;
        Ok(self.storage.list(prefix).await?)
    }

    /// Every full key under `prefix`.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.keyring()?;
        Ok(self.storage.keys_with_prefix(prefix).await?)
    }
}

/// A tiny lock-light `Option<Arc<T>>` cell: readers clone the `Arc` under a
/// short read lock, so the keyring can be swapped on rotate or seal.
mod arc_swap_lite {
    use std::sync::{Arc, RwLock};

    pub struct Slot<T>(RwLock<Option<Arc<T>>>);

    impl<T> Slot<T> {
        pub fn empty() -> Self {
            Slot(RwLock::new(None))
        }
        pub fn get(&self) -> Option<Arc<T>> {
            match self.0.read() {
                Ok(g) => g.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            }
        }
        pub fn set(&self, v: Option<Arc<T>>) {
            match self.0.write() {
                Ok(mut g) => *g = v,
                Err(poisoned) => *poisoned.into_inner() = v,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    #[tokio::test]
    async fn sealed_barrier_refuses_everything() {
        let b = Barrier::new(Arc::new(MemoryStorage::new()));
        assert!(matches!(b.get("a").await, Err(BarrierError::Sealed)));
        assert!(matches!(b.put("a", b"x").await, Err(BarrierError::Sealed)));
        assert!(matches!(b.list("").await, Err(BarrierError::Sealed)));
    }

    #[tokio::test]
    async fn storage_sees_ciphertext_and_tampering_is_refused() {
        let storage = Arc::new(MemoryStorage::new());
        let b = Barrier::new(storage.clone());
        b.set_keyring(Some(Keyring::generate(0)));
        b.put("secret/a", b"plaintext-value").await.unwrap();
        let raw = storage.get("secret/a").await.unwrap().unwrap();
        assert!(!raw.windows(15).any(|w| w == b"plaintext-value"));
        assert_eq!(
            &*b.get("secret/a").await.unwrap().unwrap(),
            b"plaintext-value"
        );

        // A flipped bit is detected.
        let mut flipped = raw.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        storage.put("secret/a", flipped).await.unwrap();
        assert!(matches!(
            b.get("secret/a").await,
            Err(BarrierError::Corrupt { .. })
        ));

        // A value copied to another key is detected.
        storage.put("secret/b", raw).await.unwrap();
        assert!(matches!(
            b.get("secret/b").await,
            Err(BarrierError::Corrupt { .. })
        ));
    }
}
