//! The token auth method: `auth/token/*`.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{Body, Client};
use crate::envelope::{null_default, Secret};
use crate::error::ClientError;

/// Body of `auth/token/create` (and `create-orphan`). Unset fields are not
/// sent, so the server's defaults apply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenCreateRequest {
    /// Policies of the new token (a subset of the caller's unless root).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Metadata to attach.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Create an orphan (no parent) token; needs root or sudo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_parent: Option<bool>,
    /// Leave out the `default` policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_default_policy: Option<bool>,
    /// Whether the token may be renewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewable: Option<bool>,
    /// Initial TTL (duration string, e.g. `"1h"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Hard cap on the token's life, renewals included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit_max_ttl: Option<String>,
    /// Make the token periodic with this period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Number of uses; 0 or unset means unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_uses: Option<u64>,
    /// `service` or `batch`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

/// The `data` of a token lookup. `Debug` hides `id` (the token itself).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token. Present on lookup-self and lookup by token; empty on
    /// lookup-accessor.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The accessor.
    #[serde(default, deserialize_with = "null_default")]
    pub accessor: String,
    /// Creation time, Unix seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub creation_time: i64,
    /// TTL at creation, seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub creation_ttl: u64,
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub display_name: String,
    /// Identity entity.
    #[serde(default, deserialize_with = "null_default")]
    pub entity_id: String,
    /// Expiry (RFC 3339), `None` for tokens that never expire.
    #[serde(default)]
    pub expire_time: Option<String>,
    /// Explicit max TTL, seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub explicit_max_ttl: u64,
    /// Issue time (RFC 3339).
    #[serde(default)]
    pub issue_time: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub meta: Option<BTreeMap<String, String>>,
    /// Remaining uses; 0 means unlimited.
    #[serde(default, deserialize_with = "null_default")]
    pub num_uses: u64,
    /// Whether the token has no parent.
    #[serde(default, deserialize_with = "null_default")]
    pub orphan: bool,
    /// Creation path (`auth/token/create`).
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
    /// Policies.
    #[serde(default, deserialize_with = "null_default")]
    pub policies: Vec<String>,
    /// Whether the token can be renewed.
    #[serde(default, deserialize_with = "null_default")]
    pub renewable: bool,
    /// Remaining TTL, seconds (0 for tokens that never expire).
    #[serde(default, deserialize_with = "null_default")]
    pub ttl: u64,
    /// Period, seconds, for periodic tokens.
    #[serde(default)]
    pub period: Option<u64>,
    /// `service` or `batch`.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub token_type: String,
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("id", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .field("orphan", &self.orphan)
            .field("num_uses", &self.num_uses)
            .field("expire_time", &self.expire_time)
            .field("token_type", &self.token_type)
            .finish()
    }
}

impl Client {
    /// `POST auth/token/create`: a child token of the caller's. The token is
    /// in the answer's `auth.client_token`.
    pub async fn token_create(
        &self,
        request: &TokenCreateRequest,
    ) -> Result<Secret<Value>, ClientError> {
        self.json(
            Method::POST,
            "auth/token/create",
            &[],
            Body::Json(json!(request)),
        )
        .await
    }

    /// `POST auth/token/create-orphan`: a token without a parent.
    pub async fn token_create_orphan(
        &self,
        request: &TokenCreateRequest,
    ) -> Result<Secret<Value>, ClientError> {
        self.json(
            Method::POST,
            "auth/token/create-orphan",
            &[],
            Body::Json(json!(request)),
        )
        .await
    }

    /// `POST auth/token/lookup` (the token goes in the body, never the URL).
    pub async fn token_lookup(&self, token: &str) -> Result<Secret<TokenInfo>, ClientError> {
        let body = Body::Json(json!({ "token": token }));
        self.json(Method::POST, "auth/token/lookup", &[], body)
            .await
    }

    /// `GET auth/token/lookup-self`.
    pub async fn token_lookup_self(&self) -> Result<Secret<TokenInfo>, ClientError> {
        self.json(Method::GET, "auth/token/lookup-self", &[], Body::Empty)
            .await
    }

    /// `POST auth/token/lookup-accessor`.
    pub async fn token_lookup_accessor(
        &self,
        accessor: &str,
    ) -> Result<Secret<TokenInfo>, ClientError> {
        let body = Body::Json(json!({ "accessor": accessor }));
        self.json(Method::POST, "auth/token/lookup-accessor", &[], body)
            .await
    }

    /// `POST auth/token/renew`; `increment` is a duration string.
    pub async fn token_renew(
        &self,
        token: &str,
        increment: Option<&str>,
    ) -> Result<Secret<Value>, ClientError> {
        let mut body = json!({ "token": token });
        if let Some(increment) = increment {
            body["increment"] = json!(increment);
        }
        self.json(Method::POST, "auth/token/renew", &[], Body::Json(body))
            .await
    }

    /// `POST auth/token/renew-self`.
    pub async fn token_renew_self(
        &self,
        increment: Option<&str>,
    ) -> Result<Secret<Value>, ClientError> {
        let body = match increment {
            Some(increment) => json!({ "increment": increment }),
            None => json!({}),
        };
        self.json(Method::POST, "auth/token/renew-self", &[], Body::Json(body))
            .await
    }

    /// `POST auth/token/renew-accessor`.
    pub async fn token_renew_accessor(
        &self,
        accessor: &str,
        increment: Option<&str>,
    ) -> Result<Secret<Value>, ClientError> {
        let mut body = json!({ "accessor": accessor });
        if let Some(increment) = increment {
            body["increment"] = json!(increment);
        }
        self.json(
            Method::POST,
            "auth/token/renew-accessor",
            &[],
            Body::Json(body),
        )
        .await
    }

    /// `POST auth/token/revoke`: the token and all its children.
    pub async fn token_revoke(&self, token: &str) -> Result<(), ClientError> {
        let body = Body::Json(json!({ "token": token }));
        self.empty(Method::POST, "auth/token/revoke", body).await
    }

    /// `POST auth/token/revoke-self`.
    pub async fn token_revoke_self(&self) -> Result<(), ClientError> {
        self.empty(Method::POST, "auth/token/revoke-self", Body::Empty)
            .await
    }

    /// `POST auth/token/revoke-accessor`.
    pub async fn token_revoke_accessor(&self, accessor: &str) -> Result<(), ClientError> {
        let body = Body::Json(json!({ "accessor": accessor }));
        self.empty(Method::POST, "auth/token/revoke-accessor", body)
            .await
    }

    /// `POST auth/token/revoke-orphan`: the token only; its children become
    /// orphans.
    pub async fn token_revoke_orphan(&self, token: &str) -> Result<(), ClientError> {
        let body = Body::Json(json!({ "token": token }));
        self.empty(Method::POST, "auth/token/revoke-orphan", body)
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn create_request_sends_only_set_fields() {
        let request = TokenCreateRequest {
            policies: vec!["app".into()],
            ttl: Some("1h".into()),
            num_uses: Some(3),
            ..TokenCreateRequest::default()
        };
        assert_eq!(
            json!(request),
            json!({"policies": ["app"], "ttl": "1h", "num_uses": 3})
        );
    }

    #[test]
    fn token_info_debug_hides_id() {
        let info = TokenInfo {
            id: "cairn.secret-token".into(),
            accessor: "acc-1".into(),
            ..TokenInfo::default()
        };
        let shown = format!("{info:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("acc-1"));
    }
}
