//! In-memory storage for tests and `--dev`: a `BTreeMap` behind a lock.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::{Op, Storage, StorageError};

/// Storage that lives and dies with the process.
#[derive(Default)]
pub struct MemoryStorage {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().await.get(key).cloned())
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let mut map = self.map.write().await;
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    map.insert(key, value);
                }
                Op::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read().await;
        Ok(map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}
