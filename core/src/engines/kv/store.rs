//! Where the engine keeps things inside its mount's [`View`]:
//!
//! - `config`: the mount-wide [`super::config::Config`];
//! - `meta/<path>`: one [`KeyMetadata`] per secret (versions, flags, custom metadata);
//! - `data/<path>/<version>`: the data of one version, a JSON object.
//!
//! Metadata and version data are separate keys rather than the latest version
//! living inline in the metadata: metadata-only operations (delete, undelete,
//! metadata writes) then never decrypt or rewrite secret bytes, `destroy` really
//! removes the ciphertext, and a read costs two point lookups, which is small next
//! to the cost of the HTTP request around it. Every change to one secret is one
//! [`WriteSet`] committed as a single atomic `View::batch`.

use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::metadata::KeyMetadata;
use crate::barrier::{BarrierError, BarrierOp, View};
use crate::engines::EngineError;

/// Storage key of the mount configuration.
pub const CONFIG_KEY: &str = "config";

/// Storage prefix of the metadata records; listing happens below it.
pub const META_PREFIX: &str = "meta/";

/// Storage key of a secret's metadata.
pub fn meta_key(path: &str) -> String {
    format!("{META_PREFIX}{path}")
}

/// Storage key of the data of one version of a secret.
pub fn version_key(path: &str, version: u64) -> String {
    format!("data/{path}/{version}")
}

/// The metadata of `path`, if the secret exists, shared: metadata holds no
/// secret, so the barrier keeps it parsed in memory until it is written.
pub async fn read_meta(
    view: &View,
    path: &str,
) -> Result<Option<std::sync::Arc<KeyMetadata>>, EngineError> {
    Ok(view.get_json_shared(&meta_key(path)).await?)
}

/// The metadata of `path`, if the secret exists, to change.
pub async fn load_meta(view: &View, path: &str) -> Result<Option<KeyMetadata>, EngineError> {
    Ok(read_meta(view, path)
        .await?
        .map(std::sync::Arc::unwrap_or_clone))
}

/// The data of one version, if it is still stored.
pub async fn load_version(
    view: &View,
    path: &str,
    version: u64,
) -> Result<Option<Map<String, Value>>, EngineError> {
    let key = version_key(path, version);
    let Some(bytes) = view.get(&key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        // Report the storage key only: it holds no secret value.
        .map_err(|_| {
            EngineError::Barrier(BarrierError::Corrupt {
                key: format!("{}{key}", view.prefix()),
            })
        })
}

/// An error for version data that metadata says exists but storage lacks.
pub fn missing_version(view: &View, path: &str, version: u64) -> EngineError {
    EngineError::Barrier(BarrierError::Corrupt {
        key: format!("{}{}", view.prefix(), version_key(path, version)),
    })
}

enum Write {
    Put(String, Zeroizing<Vec<u8>>),
    Delete(String),
}

/// Writes to apply together in one atomic batch.
#[derive(Default)]
pub struct WriteSet {
    writes: Vec<Write>,
}

impl WriteSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serialize `value` and store it under `key`. The serialized bytes are
    /// zeroized once committed, since version data is secret.
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        key: String,
        value: &T,
    ) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(value).map_err(|_| BarrierError::TooLarge)?;
        self.writes.push(Write::Put(key, Zeroizing::new(bytes)));
        Ok(())
    }

    /// Remove `key` (removing a missing key is not an error).
    pub fn delete(&mut self, key: String) {
        self.writes.push(Write::Delete(key));
    }

    /// Apply every write atomically: one storage commit.
    pub async fn commit(self, view: &View) -> Result<(), EngineError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let ops = self
            .writes
            .iter()
            .map(|w| match w {
                Write::Put(key, value) => BarrierOp::Put {
                    key: key.clone(),
                    value: value.as_slice(),
                },
                Write::Delete(key) => BarrierOp::Delete { key: key.clone() },
            })
            .collect();
        view.batch(ops).await?;
        Ok(())
    }
}
