//! The storage layer: an ordered map of key -> bytes. It only ever sees barrier
//! ciphertext (except for the few plaintext bootstrap records the seal keeps).
//!
//! Backends: [`memory::MemoryStorage`] (tests and `--dev`) and
//! [`redb::RedbStorage`] (durable, one node). The Raft backend implements the same
//! trait so the layers above never learn how data is replicated.

pub mod memory;
pub mod raft;
pub mod redb;

use async_trait::async_trait;

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `value` under `key`, replacing what was there.
    Put { key: String, value: Vec<u8> },
    /// Remove `key`; removing a missing key is not an error.
    Delete { key: String },
}

/// Failures of a storage backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The backend could not read or write its files.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// The backend is shutting down or its writer task is gone.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

/// An ordered key -> bytes map. Keys are `/`-separated paths without a leading `/`.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Apply every op atomically and durably: when this returns `Ok`, all ops are
    /// on stable storage; on `Err`, none are.
    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError>;

    /// Every key that starts with `prefix`, in order (full keys).
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Store one value.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.batch(vec![Op::Put {
            key: key.to_owned(),
            value,
        }])
        .await
    }

    /// Remove one key.
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.batch(vec![Op::Delete {
            key: key.to_owned(),
        }])
        .await
    }

    /// The direct children of `prefix`, as Vault lists them: leaf names, and
    /// sub-folders with a trailing `/`, each once, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let keys = self.keys_with_prefix(prefix).await?;
        Ok(children(prefix, keys.iter().map(String::as_str)))
    }
}

/// Reduce full keys under `prefix` to the direct children of `prefix`.
pub fn children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        // Keys arrive sorted, so duplicates of a folder are adjacent.
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::children;

    #[test]
    fn children_are_leaves_and_folders_once() {
        let keys = ["a/b", "a/c/d", "a/c/e", "a/f", "b/x"];
        assert_eq!(children("a/", keys.into_iter()), vec!["b", "c/", "f"]);
        assert_eq!(children("", keys.into_iter()), vec!["a/", "b/"]);
        assert!(children("z/", keys.into_iter()).is_empty());
    }
}
