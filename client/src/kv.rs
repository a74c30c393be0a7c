//! The KV version 2 secrets engine: data, metadata, versions, config.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::{Body, Client};
use crate::envelope::{null_default, Secret};
use crate::error::ClientError;

/// Metadata of one version, as returned by reads and writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvVersionMetadata {
    /// When the version was written (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_time: String,
    /// The key's custom metadata.
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// When the version was soft-deleted; empty if it is not.
    #[serde(default, deserialize_with = "null_default")]
    pub deletion_time: String,
    /// Whether the version was destroyed.
    #[serde(default, deserialize_with = "null_default")]
    pub destroyed: bool,
    /// Version number.
    #[serde(default, deserialize_with = "null_default")]
    pub version: u64,
}

/// The `data` of a KV v2 read: the secret and its version's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvData {
    /// The key/value pairs; `None` for a deleted or destroyed version.
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    /// The version's metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: KvVersionMetadata,
}

/// State of one version in the key's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvVersionState {
    /// When it was written.
    #[serde(default, deserialize_with = "null_default")]
    pub created_time: String,
    /// When it was soft-deleted; empty if it is not.
    #[serde(default, deserialize_with = "null_default")]
    pub deletion_time: String,
    /// Whether it was destroyed.
    #[serde(default, deserialize_with = "null_default")]
    pub destroyed: bool,
}

/// The `data` of a KV v2 metadata read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvMetadata {
    /// Whether writes must carry `cas`.
    #[serde(default, deserialize_with = "null_default")]
    pub cas_required: bool,
    /// When the key was first written.
    #[serde(default, deserialize_with = "null_default")]
    pub created_time: String,
    /// The newest version.
    #[serde(default, deserialize_with = "null_default")]
    pub current_version: u64,
    /// Custom metadata.
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Automatic soft-delete delay (duration string, `"0s"` = off).
    #[serde(default, deserialize_with = "null_default")]
    pub delete_version_after: String,
    /// Versions kept (0 = the mount's setting).
    #[serde(default, deserialize_with = "null_default")]
    pub max_versions: u64,
    /// The oldest version still kept.
    #[serde(default, deserialize_with = "null_default")]
    pub oldest_version: u64,
    /// When the metadata last changed.
    #[serde(default, deserialize_with = "null_default")]
    pub updated_time: String,
    /// Every kept version, keyed by its number as a string (Vault's shape).
    #[serde(default, deserialize_with = "null_default")]
    pub versions: BTreeMap<String, KvVersionState>,
}

/// Body of a KV v2 metadata write; unset fields keep their value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KvMetadataUpdate {
    /// Versions to keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u64>,
    /// Require `cas` on writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas_required: Option<bool>,
    /// Automatic soft-delete delay (duration string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_version_after: Option<String>,
    /// Custom metadata (replaces the whole map).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// The `data` of a subkeys read: the secret's structure, leaves as `null`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvSubkeys {
    /// The key structure.
    #[serde(default)]
    pub subkeys: Option<Value>,
    /// The version's metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: KvVersionMetadata,
}

/// Mount-wide KV v2 settings (`:mount/config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvConfig {
    /// Versions kept per key (0 = 10).
    #[serde(default, deserialize_with = "null_default")]
    pub max_versions: u64,
    /// Require `cas` on every write.
    #[serde(default, deserialize_with = "null_default")]
    pub cas_required: bool,
    /// Automatic soft-delete delay (duration string).
    #[serde(default, deserialize_with = "null_default")]
    pub delete_version_after: String,
}

/// A KV v2 mount seen through a [`Client`]; paths are relative to the mount.
#[derive(Debug, Clone)]
pub struct Kv2<'a> {
    client: &'a Client,
    mount: String,
}

impl Client {
    /// The KV v2 engine mounted at `mount` (`secret` or `secret/`).
    pub fn kv2(&self, mount: &str) -> Kv2<'_> {
        Kv2 {
            client: self,
            mount: mount.trim_matches('/').to_string(),
        }
    }
}

impl Kv2<'_> {
    /// The API path of `path` under the mount's `section` (`data`,
    /// `metadata`, `delete`, ...).
    pub fn api_path(&self, section: &str, path: &str) -> String {
        let path = path.trim_start_matches('/');
        format!("{}/{section}/{path}", self.mount)
    }

    /// Reads the latest version, or `version` when given.
    pub async fn read(
        &self,
        path: &str,
        version: Option<u64>,
    ) -> Result<Secret<KvData>, ClientError> {
        let query: Vec<(&str, String)> = version
            .map(|v| ("version", v.to_string()))
            .into_iter()
            .collect();
        self.client
            .json(
                Method::GET,
                &self.api_path("data", path),
                &query,
                Body::Empty,
            )
            .await
    }

    /// Writes a new version. With `cas`, the write succeeds only if the
    /// current version is `cas` (0: only if the key does not exist).
    pub async fn write(
        &self,
        path: &str,
        data: &Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<Secret<KvVersionMetadata>, ClientError> {
        self.client
            .json(
                Method::POST,
                &self.api_path("data", path),
                &[],
                Body::Json(data_body(data, cas)),
            )
            .await
    }

    /// Merges `data` into the latest version (JSON merge patch: a `null`
    /// value removes the key) and writes the result as a new version.
    pub async fn patch(
        &self,
        path: &str,
        data: &Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<Secret<KvVersionMetadata>, ClientError> {
        self.client
            .json(
                Method::PATCH,
                &self.api_path("data", path),
                &[],
                Body::MergePatch(data_body(data, cas)),
            )
            .await
    }

    /// Soft-deletes the latest version.
    pub async fn delete_latest(&self, path: &str) -> Result<(), ClientError> {
        self.client
            .empty(Method::DELETE, &self.api_path("data", path), Body::Empty)
            .await
    }

    /// Soft-deletes the given versions.
    pub async fn delete_versions(&self, path: &str, versions: &[u64]) -> Result<(), ClientError> {
        self.versions_op("delete", path, versions).await
    }

    /// Restores soft-deleted versions.
    pub async fn undelete(&self, path: &str, versions: &[u64]) -> Result<(), ClientError> {
        self.versions_op("undelete", path, versions).await
    }

    /// Permanently removes the data of the given versions.
    pub async fn destroy(&self, path: &str, versions: &[u64]) -> Result<(), ClientError> {
        self.versions_op("destroy", path, versions).await
    }

    async fn versions_op(
        &self,
        section: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<(), ClientError> {
        let body = Body::Json(json!({ "versions": versions }));
        self.client
            .empty(Method::POST, &self.api_path(section, path), body)
            .await
    }

    /// Reads the key's metadata and version history.
    pub async fn read_metadata(&self, path: &str) -> Result<Secret<KvMetadata>, ClientError> {
        self.client
            .json(
                Method::GET,
                &self.api_path("metadata", path),
                &[],
                Body::Empty,
            )
            .await
    }

    /// Updates the key's metadata settings.
    pub async fn write_metadata(
        &self,
        path: &str,
        update: &KvMetadataUpdate,
    ) -> Result<(), ClientError> {
        self.client
            .empty(
                Method::POST,
                &self.api_path("metadata", path),
                Body::Json(json!(update)),
            )
            .await
    }

    /// Deletes the key: metadata and every version.
    pub async fn delete_metadata(&self, path: &str) -> Result<(), ClientError> {
        self.client
            .empty(
                Method::DELETE,
                &self.api_path("metadata", path),
                Body::Empty,
            )
            .await
    }

    /// Lists the keys under `path` (folders end with `/`); empty when none.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, ClientError> {
        self.client
            .list_keys(&self.api_path("metadata", path))
            .await
    }

    /// Reads the key structure without values; `depth` 0 means unlimited.
    pub async fn subkeys(
        &self,
        path: &str,
        version: Option<u64>,
        depth: Option<u64>,
    ) -> Result<Secret<KvSubkeys>, ClientError> {
        let mut query = Vec::new();
        if let Some(version) = version {
            query.push(("version", version.to_string()));
        }
        if let Some(depth) = depth {
            query.push(("depth", depth.to_string()));
        }
        self.client
            .json(
                Method::GET,
                &self.api_path("subkeys", path),
                &query,
                Body::Empty,
            )
            .await
    }

    /// Reads the mount-wide settings.
    pub async fn read_config(&self) -> Result<Secret<KvConfig>, ClientError> {
        let path = format!("{}/config", self.mount);
        self.client.json(Method::GET, &path, &[], Body::Empty).await
    }

    /// Writes the mount-wide settings.
    pub async fn write_config(&self, config: &KvConfig) -> Result<(), ClientError> {
        let path = format!("{}/config", self.mount);
        self.client
            .empty(Method::POST, &path, Body::Json(json!(config)))
            .await
    }
}

/// `{"data": ..., "options": {"cas": N}}`, the body of data writes and patches.
fn data_body(data: &Map<String, Value>, cas: Option<u64>) -> Value {
    let mut body = json!({ "data": data });
    if let Some(cas) = cas {
        body["options"] = json!({ "cas": cas });
    }
    body
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_put_section_after_mount() {
        let client = Client::new("http://127.0.0.1:1", None).unwrap();
        let kv = client.kv2("secret/");
        assert_eq!(kv.api_path("data", "app/db"), "secret/data/app/db");
        assert_eq!(kv.api_path("metadata", "/app/"), "secret/metadata/app/");
        let nested = client.kv2("team/kv");
        assert_eq!(nested.api_path("destroy", "x"), "team/kv/destroy/x");
    }

    #[test]
    fn data_body_carries_cas_only_when_set() {
        let mut data = Map::new();
        data.insert("password".into(), json!("x"));
        assert_eq!(data_body(&data, None), json!({"data": {"password": "x"}}));
        assert_eq!(
            data_body(&data, Some(0)),
            json!({"data": {"password": "x"}, "options": {"cas": 0}})
        );
    }

    #[test]
    fn decodes_vault_read_shape() {
        let json = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
          "data":{"data":{"foo":"bar"},"metadata":{"created_time":"2018-03-22T02:24:06.945319214Z",
          "custom_metadata":{"owner":"jdoe"},"deletion_time":"","destroyed":false,"version":2}},
          "wrap_info":null,"warnings":null,"auth":null}"#;
        let secret: Secret<KvData> = serde_json::from_str(json).unwrap();
        let data = secret.data.unwrap();
        assert_eq!(data.data.unwrap()["foo"], "bar");
        assert_eq!(data.metadata.version, 2);
    }
}
