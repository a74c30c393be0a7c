//! Audit devices: `sys/audit` list, enable, disable.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{listing_entries, Body, Client};
use crate::envelope::null_default;
use crate::error::ClientError;

/// One entry of `GET sys/audit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditDevice {
    /// Device type (`file`).
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub device_type: String,
    /// Human description.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    /// Device options (`file_path` for `file`).
    #[serde(default, deserialize_with = "null_default")]
    pub options: BTreeMap<String, String>,
    /// Whether the device is local to this cluster.
    #[serde(default, deserialize_with = "null_default")]
    pub local: bool,
    /// Path the device is enabled at.
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
}

/// Body of `PUT sys/audit/:path`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnableAudit {
    /// Device type (`file`).
    #[serde(rename = "type")]
    pub device_type: String,
    /// Human description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Device options, e.g. `file_path`.
    pub options: BTreeMap<String, String>,
    /// Local to this cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<bool>,
}

fn audit_path(path: &str) -> String {
    format!("sys/audit/{}", path.trim_matches('/'))
}

impl Client {
    /// `GET sys/audit`: enabled devices keyed by path (`file/`).
    pub async fn list_audit(&self) -> Result<BTreeMap<String, AuditDevice>, ClientError> {
        let value: Value = self
            .json(Method::GET, "sys/audit", &[], Body::Empty)
            .await?;
        listing_entries(value, Value::is_object)
            .into_iter()
            .map(|(path, device)| {
                serde_json::from_value(device)
                    .map(|device| (path, device))
                    .map_err(|source| ClientError::Decode {
                        status: 200,
                        source,
                    })
            })
            .collect()
    }

    /// `PUT sys/audit/:path`: enable an audit device.
    pub async fn enable_audit(&self, path: &str, device: &EnableAudit) -> Result<(), ClientError> {
        self.empty(Method::PUT, &audit_path(path), Body::Json(json!(device)))
            .await
    }

    /// `DELETE sys/audit/:path`.
    pub async fn disable_audit(&self, path: &str) -> Result<(), ClientError> {
        self.empty(Method::DELETE, &audit_path(path), Body::Empty)
            .await
    }
}
