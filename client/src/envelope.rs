//! Vault's response envelope and the `auth` block tokens come back in.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Deserializes `null` as the type's default, so a server that writes
/// `"lease_id": null` instead of `""` still decodes.
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The envelope of every logical response:
/// `{request_id, lease_id, renewable, lease_duration, data, wrap_info, warnings, auth}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secret<T> {
    /// The server's id of the request.
    #[serde(default, deserialize_with = "null_default")]
    pub request_id: String,
    /// The lease of a dynamic secret, empty otherwise.
    #[serde(default, deserialize_with = "null_default")]
    pub lease_id: String,
    /// Whether the lease can be renewed.
    #[serde(default, deserialize_with = "null_default")]
    pub renewable: bool,
    /// Lease duration in seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub lease_duration: u64,
    /// The payload.
    #[serde(default = "none")]
    pub data: Option<T>,
    /// Response-wrapping information, when the response was wrapped.
    #[serde(default)]
    pub wrap_info: Option<Value>,
    /// Warnings the server attached.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// The token issued or renewed by an auth request.
    #[serde(default)]
    pub auth: Option<Auth>,
}

// `#[serde(default)]` on `Option<T>` would demand `T: Default`; this does not.
fn none<T>() -> Option<T> {
    None
}

impl<T> Secret<T> {
    /// The payload, if the response carried one.
    pub fn into_data(self) -> Option<T> {
        self.data
    }
}

/// The `auth` block: a token and its properties.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Auth {
    /// The token itself. Never printed by `Debug`.
    #[serde(default, deserialize_with = "null_default")]
    pub client_token: String,
    /// The token's accessor (safe to log; it cannot be used to authenticate).
    #[serde(default, deserialize_with = "null_default")]
    pub accessor: String,
    /// All policies of the token.
    #[serde(default, deserialize_with = "null_default")]
    pub policies: Vec<String>,
    /// Policies attached to the token itself.
    #[serde(default, deserialize_with = "null_default")]
    pub token_policies: Vec<String>,
    /// Policies from the token's identity.
    #[serde(default)]
    pub identity_policies: Option<Vec<String>>,
    /// Metadata attached at creation.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// TTL in seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub lease_duration: u64,
    /// Whether the token can be renewed.
    #[serde(default, deserialize_with = "null_default")]
    pub renewable: bool,
    /// The identity entity, if any.
    #[serde(default, deserialize_with = "null_default")]
    pub entity_id: String,
    /// `service` or `batch`.
    #[serde(default, deserialize_with = "null_default")]
    pub token_type: String,
    /// Whether the token has no parent.
    #[serde(default, deserialize_with = "null_default")]
    pub orphan: bool,
    /// Remaining uses; 0 means unlimited.
    #[serde(default, deserialize_with = "null_default")]
    pub num_uses: u64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("client_token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("token_policies", &self.token_policies)
            .field("identity_policies", &self.identity_policies)
            .field("metadata", &self.metadata)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field("entity_id", &self.entity_id)
            .field("token_type", &self.token_type)
            .field("orphan", &self.orphan)
            .field("num_uses", &self.num_uses)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vault_envelope_with_nulls() {
        let json = r#"{"request_id":"r1","lease_id":null,"renewable":false,
            "lease_duration":0,"data":{"k":"v"},"wrap_info":null,"warnings":null,"auth":null}"#;
        let secret: Secret<BTreeMap<String, String>> = serde_json::from_str(json).unwrap();
        assert_eq!(secret.request_id, "r1");
        assert_eq!(secret.lease_id, "");
        assert_eq!(secret.data.unwrap()["k"], "v");
        assert!(secret.auth.is_none());
    }

    #[test]
    fn decodes_missing_fields() {
        let secret: Secret<Value> = serde_json::from_str("{}").unwrap();
        assert!(secret.data.is_none());
    }

    #[test]
    fn auth_debug_hides_token() {
        let auth = Auth {
            client_token: "cairn.supersecret".into(),
            accessor: "acc".into(),
            ..Auth::default()
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("acc"));
    }
}
