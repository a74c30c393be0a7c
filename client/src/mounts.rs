//! Secrets engine mounts: `sys/mounts` list, enable, disable, tune.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{decode_sys, listing_entries, Body, Client};
use crate::envelope::null_default;
use crate::error::ClientError;

/// Lease settings of a mount, as listed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountConfig {
    /// Default lease TTL in seconds (0 = the system default).
    #[serde(default, deserialize_with = "null_default")]
    pub default_lease_ttl: u64,
    /// Maximum lease TTL in seconds (0 = the system default).
    #[serde(default, deserialize_with = "null_default")]
    pub max_lease_ttl: u64,
    /// Whether caching is disabled for this mount.
    #[serde(default, deserialize_with = "null_default")]
    pub force_no_cache: bool,
}

/// One entry of `GET sys/mounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountInfo {
    /// Engine type (`kv`, `transit`, `system`, ...).
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub mount_type: String,
    /// Human description.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    /// The mount's accessor.
    #[serde(default, deserialize_with = "null_default")]
    pub accessor: String,
    /// Lease settings.
    #[serde(default, deserialize_with = "null_default")]
    pub config: MountConfig,
    /// Engine options (`version` for kv).
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    /// Whether the mount is local to this cluster.
    #[serde(default, deserialize_with = "null_default")]
    pub local: bool,
    /// Whether seal wrapping is on.
    #[serde(default, deserialize_with = "null_default")]
    pub seal_wrap: bool,
}

/// Lease settings given when enabling a mount (durations like `"1h"`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MountConfigInput {
    /// Default lease TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<String>,
}

/// Body of `POST sys/mounts/:path`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnableMount {
    /// Engine type.
    #[serde(rename = "type")]
    pub mount_type: String,
    /// Human description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Lease settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<MountConfigInput>,
    /// Engine options, e.g. `{"version": "2"}` for kv v2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// Local to this cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<bool>,
}

/// Body of `POST sys/mounts/:path/tune`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MountTune {
    /// Default lease TTL (duration string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL (duration string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<String>,
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Engine options to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// Answer of `GET sys/mounts/:path/tune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountTuneInfo {
    /// Default lease TTL in seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub default_lease_ttl: u64,
    /// Maximum lease TTL in seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub max_lease_ttl: u64,
    /// Whether caching is disabled.
    #[serde(default, deserialize_with = "null_default")]
    pub force_no_cache: bool,
    /// Description.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    /// Engine options.
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

/// Mount paths end with `/` in listings; accept `secret` or `secret/`.
fn mount_path(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl Client {
    /// `GET sys/mounts`: every mount, keyed by path (`secret/`).
    pub async fn list_mounts(&self) -> Result<BTreeMap<String, MountInfo>, ClientError> {
        let value: Value = self
            .json(Method::GET, "sys/mounts", &[], Body::Empty)
            .await?;
        listing_entries(value, Value::is_object)
            .into_iter()
            .map(|(path, info)| {
                serde_json::from_value(info)
                    .map(|info| (path, info))
                    .map_err(|source| ClientError::Decode {
                        status: 200,
                        source,
                    })
            })
            .collect()
    }

    /// `POST sys/mounts/:path`: enable a secrets engine.
    pub async fn enable_mount(&self, path: &str, mount: &EnableMount) -> Result<(), ClientError> {
        let path = format!("sys/mounts/{}", mount_path(path));
        self.empty(Method::POST, &path, Body::Json(json!(mount)))
            .await
    }

    /// `DELETE sys/mounts/:path`: disable a secrets engine and drop its data.
    pub async fn disable_mount(&self, path: &str) -> Result<(), ClientError> {
        let path = format!("sys/mounts/{}", mount_path(path));
        self.empty(Method::DELETE, &path, Body::Empty).await
    }

    /// `POST sys/mounts/:path/tune`.
    pub async fn tune_mount(&self, path: &str, tune: &MountTune) -> Result<(), ClientError> {
        let path = format!("sys/mounts/{}/tune", mount_path(path));
        self.empty(Method::POST, &path, Body::Json(json!(tune)))
            .await
    }

    /// `GET sys/mounts/:path/tune`.
    pub async fn read_mount_tune(&self, path: &str) -> Result<MountTuneInfo, ClientError> {
        let path = format!("sys/mounts/{}/tune", mount_path(path));
        let value = self.json(Method::GET, &path, &[], Body::Empty).await?;
        decode_sys(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn enable_body_matches_vault() {
        let mount = EnableMount {
            mount_type: "kv".into(),
            options: Some(BTreeMap::from([("version".into(), "2".into())])),
            ..EnableMount::default()
        };
        assert_eq!(
            json!(mount),
            json!({"type": "kv", "options": {"version": "2"}})
        );
    }

    #[test]
    fn mount_path_trims_slashes() {
        assert_eq!(mount_path("secret/"), "secret");
        assert_eq!(mount_path("/team/kv/"), "team/kv");
    }
}
