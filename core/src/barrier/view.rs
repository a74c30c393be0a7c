//! A [`View`] is the barrier seen through a key prefix: each mount and each
//! subsystem gets its own, so an engine cannot read outside its own space.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Barrier, BarrierError, BarrierOp};

/// The barrier restricted to keys under one prefix.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    /// A view of `barrier` under `prefix` (which should end with `/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }

    /// A narrower view under `sub` inside this one.
    pub fn sub(&self, sub: &str) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: format!("{}{}", self.prefix, sub),
        }
    }

    /// The full prefix of this view.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    /// Read `key` (relative to the view).
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, BarrierError> {
        self.barrier.get(&self.full(key)).await
    }

    /// Read `key` and parse it as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, BarrierError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|_| BarrierError::Corrupt {
                        key: self.full(key),
                    })
            }
        }
    }

    /// Read `key` and parse it as JSON into a shared value that stays in
    /// memory until the key is written. Only for records without secrets.
    pub async fn get_json_shared<T>(
        &self,
        key: &str,
    ) -> Result<Option<std::sync::Arc<T>>, BarrierError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.barrier.get_json_shared(&self.full(key)).await
    }

    /// Write `value` under `key`.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BarrierError> {
        self.barrier.put(&self.full(key), value).await
    }

    /// Serialize `value` as JSON and write it under `key`.
    pub async fn put_json<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), BarrierError> {
        let bytes = Zeroizing::new(serde_json::to_vec(value).map_err(|_| BarrierError::TooLarge)?);
        self.put(key, &bytes).await
    }

    /// Remove `key`.
    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.barrier.delete(&self.full(key)).await
    }

    /// Apply several writes (keys relative to the view) atomically.
    pub async fn batch(&self, ops: Vec<BarrierOp<'_>>) -> Result<(), BarrierError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BarrierOp::Put { key, value } => BarrierOp::Put {
                    key: self.full(&key),
                    value,
                },
                BarrierOp::Delete { key } => BarrierOp::Delete {
                    key: self.full(&key),
                },
            })
            .collect();
        self.barrier.batch(ops).await
    }

    /// Direct children of `prefix` (relative to the view).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.barrier.list(&self.full(prefix)).await
    }

    /// Every key under `prefix`, relative to the view.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let keys = self.barrier.keys_with_prefix(&self.full(prefix)).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_owned())
            .collect())
    }

    /// Remove every key under `prefix` (e.g. when a mount is disabled).
    pub async fn clear(&self, prefix: &str) -> Result<(), BarrierError> {
        let keys = self.keys_with_prefix(prefix).await?;
        for chunk in keys.chunks(256) {
            let ops = chunk
                .iter()
                .map(|k| BarrierOp::Delete { key: k.clone() })
                .collect();
            self.batch(ops).await?;
        }
        Ok(())
    }
}
