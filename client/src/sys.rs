//! Seal lifecycle and server state: `sys/init`, `sys/unseal`, `sys/seal`,
//! `sys/seal-status`, `sys/health`, `sys/rotate`, `sys/key-status`,
//! `sys/metrics`.

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{decode_sys, Body, Client};
use crate::envelope::null_default;
use crate::error::ClientError;

/// Parameters of `sys/init`.
#[derive(Debug, Clone, Serialize)]
pub struct InitRequest {
    /// Number of key shares to split the root key into.
    pub secret_shares: u32,
    /// Number of shares needed to reconstruct it.
    pub secret_threshold: u32,
}

impl Default for InitRequest {
    fn default() -> Self {
        Self {
            secret_shares: 5,
            secret_threshold: 3,
        }
    }
}

/// The answer of `sys/init`: the unseal key shares and the root token, shown
/// once. `Debug` hides all of them.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct InitResponse {
    /// Key shares, hex-encoded.
    #[serde(default, deserialize_with = "null_default")]
    pub keys: Vec<String>,
    /// Key shares, base64-encoded.
    #[serde(default, deserialize_with = "null_default")]
    pub keys_base64: Vec<String>,
    /// The initial root token.
    #[serde(default, deserialize_with = "null_default")]
    pub root_token: String,
}

impl fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field(
                "keys_base64",
                &format_args!("<{} redacted>", self.keys_base64.len()),
            )
            .field("root_token", &"<redacted>")
            .finish()
    }
}

/// The answer of `sys/seal-status` and `sys/unseal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SealStatus {
    /// Seal type (`shamir`, `static`, ...).
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub seal_type: String,
    /// Whether the server has been initialised.
    #[serde(default, deserialize_with = "null_default")]
    pub initialized: bool,
    /// Whether the server is sealed.
    #[serde(default, deserialize_with = "null_default")]
    pub sealed: bool,
    /// Threshold: shares needed to unseal.
    #[serde(default, deserialize_with = "null_default")]
    pub t: u32,
    /// Total number of shares.
    #[serde(default, deserialize_with = "null_default")]
    pub n: u32,
    /// Shares submitted so far in the current unseal attempt.
    #[serde(default, deserialize_with = "null_default")]
    pub progress: u32,
    /// Id of the current unseal attempt.
    #[serde(default, deserialize_with = "null_default")]
    pub nonce: String,
    /// Server version.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Build date of the server.
    #[serde(default, deserialize_with = "null_default")]
    pub build_date: String,
    /// Whether a seal migration is in progress.
    #[serde(default, deserialize_with = "null_default")]
    pub migration: bool,
    /// Cluster name (once unsealed).
    #[serde(default, deserialize_with = "null_default")]
    pub cluster_name: String,
    /// Cluster id (once unsealed).
    #[serde(default, deserialize_with = "null_default")]
    pub cluster_id: String,
    /// Whether the seal uses recovery keys (auto-unseal).
    #[serde(default, deserialize_with = "null_default")]
    pub recovery_seal: bool,
    /// Storage backend type.
    #[serde(default, deserialize_with = "null_default")]
    pub storage_type: String,
    /// Whether HA is enabled.
    #[serde(default)]
    pub ha_enabled: Option<bool>,
}

/// Query parameters of `sys/health` that change the status codes.
#[derive(Debug, Clone, Default)]
pub struct HealthQuery {
    /// Answer 200 (not 429) on a standby.
    pub standbyok: bool,
    /// Status for an active node.
    pub activecode: Option<u16>,
    /// Status for a standby node.
    pub standbycode: Option<u16>,
    /// Status for a sealed node.
    pub sealedcode: Option<u16>,
    /// Status for an uninitialised node.
    pub uninitcode: Option<u16>,
}

impl HealthQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if self.standbyok {
            pairs.push(("standbyok", "true".to_string()));
        }
        let codes = [
            ("activecode", self.activecode),
            ("standbycode", self.standbycode),
            ("sealedcode", self.sealedcode),
            ("uninitcode", self.uninitcode),
        ];
        for (name, code) in codes {
            if let Some(code) = code {
                pairs.push((name, code.to_string()));
            }
        }
        pairs
    }
}

/// The body of `sys/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Whether the server is initialised (required: tells a health body from
    /// an error body).
    pub initialized: bool,
    /// Whether the server is sealed.
    pub sealed: bool,
    /// Whether this node is a standby.
    #[serde(default, deserialize_with = "null_default")]
    pub standby: bool,
    /// Whether this node is a performance standby.
    #[serde(default, deserialize_with = "null_default")]
    pub performance_standby: bool,
    /// Server time, Unix seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub server_time_utc: i64,
    /// Server version.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Cluster name.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// Cluster id.
    #[serde(default)]
    pub cluster_id: Option<String>,
}

/// What `sys/health` said: its status code and body.
#[derive(Debug, Clone)]
pub struct HealthStatus {
    /// The HTTP status (200 active, 429 standby, 501 uninitialised, 503 sealed,
    /// or the codes asked for in [`HealthQuery`]).
    pub status: u16,
    /// The decoded body.
    pub health: Health,
}

/// The answer of `sys/key-status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyStatus {
    /// Number of the active encryption key.
    #[serde(default, deserialize_with = "null_default")]
    pub term: u64,
    /// When it was installed (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub install_time: String,
    /// Estimated number of encryptions made with it.
    #[serde(default)]
    pub encryptions: Option<u64>,
}

/// Whether the server is initialised (`GET sys/init`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct InitStatus {
    /// True once `sys/init` has run.
    pub initialized: bool,
}

impl Client {
    /// `GET sys/init`: whether the server has been initialised.
    pub async fn init_status(&self) -> Result<bool, ClientError> {
        let status: InitStatus = self.json(Method::GET, "sys/init", &[], Body::Empty).await?;
        Ok(status.initialized)
    }

    /// `PUT sys/init`: initialise the server; the answer holds the key shares
    /// and root token, returned this once.
    pub async fn init(&self, request: &InitRequest) -> Result<InitResponse, ClientError> {
        let body = Body::Json(json!(request));
        let value = self.json(Method::PUT, "sys/init", &[], body).await?;
        decode_sys(value)
    }

    /// `PUT sys/unseal` with one key share.
    pub async fn unseal(&self, key: &str) -> Result<SealStatus, ClientError> {
        let body = Body::Json(json!({ "key": key }));
        let value = self.json(Method::PUT, "sys/unseal", &[], body).await?;
        decode_sys(value)
    }

    /// `PUT sys/unseal` with `reset: true`: forget the shares submitted so far.
    pub async fn unseal_reset(&self) -> Result<SealStatus, ClientError> {
        let body = Body::Json(json!({ "reset": true }));
        let value = self.json(Method::PUT, "sys/unseal", &[], body).await?;
        decode_sys(value)
    }

    /// `PUT sys/seal`: seal the server (needs a root or sudo token).
    pub async fn seal(&self) -> Result<(), ClientError> {
        self.empty(Method::PUT, "sys/seal", Body::Empty).await
    }

    /// `GET sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus, ClientError> {
        let value = self
            .json(Method::GET, "sys/seal-status", &[], Body::Empty)
            .await?;
        decode_sys(value)
    }

    /// `GET sys/health`. Standby, uninitialised and sealed are answers, not
    /// errors: any status whose body is a health body is returned as is.
    pub async fn health(&self, query: &HealthQuery) -> Result<HealthStatus, ClientError> {
        let response = self
            .send_raw(Method::GET, "sys/health", &query.pairs(), Body::Empty)
            .await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(ClientError::Connection)?;
        match serde_json::from_slice::<Health>(&bytes) {
            Ok(health) => Ok(HealthStatus {
                status: status.as_u16(),
                health,
            }),
            Err(source) if status.is_success() => Err(ClientError::Decode {
                status: status.as_u16(),
                source,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                errors: crate::error::decode_error_body(&String::from_utf8_lossy(&bytes)),
            }),
        }
    }

    /// `PUT sys/rotate`: add a new encryption key term to the keyring.
    pub async fn rotate(&self) -> Result<(), ClientError> {
        self.empty(Method::PUT, "sys/rotate", Body::Empty).await
    }

    /// `GET sys/key-status`.
    pub async fn key_status(&self) -> Result<KeyStatus, ClientError> {
        let value = self
            .json(Method::GET, "sys/key-status", &[], Body::Empty)
            .await?;
        decode_sys(value)
    }

    /// `GET sys/metrics?format=prometheus`: the metrics in Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let query = [("format", "prometheus".to_string())];
        let response = self
            .send(Method::GET, "sys/metrics", &query, Body::Empty)
            .await?;
        response.text().await.map_err(ClientError::Connection)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn init_response_debug_hides_secrets() {
        let init = InitResponse {
            keys: vec!["abcdef".into()],
            keys_base64: vec!["q83v".into()],
            root_token: "cairn.root".into(),
        };
        let shown = format!("{init:?}");
        assert!(!shown.contains("abcdef") && !shown.contains("q83v"));
        assert!(!shown.contains("cairn.root"));
    }

    #[test]
    fn health_query_pairs() {
        let q = HealthQuery {
            standbyok: true,
            sealedcode: Some(200),
            ..HealthQuery::default()
        };
        assert_eq!(
            q.pairs(),
            vec![("standbyok", "true".into()), ("sealedcode", "200".into())]
        );
    }

    #[test]
    fn error_body_is_not_a_health_body() {
        assert!(serde_json::from_str::<Health>(r#"{"errors":["x"]}"#).is_err());
        let h: Health =
            serde_json::from_str(r#"{"initialized":true,"sealed":false,"standby":false}"#).unwrap();
        assert!(h.initialized && !h.sealed);
    }
}
