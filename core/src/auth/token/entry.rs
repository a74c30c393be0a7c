//! What the store keeps for each token (never the token itself).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::time::rfc3339;

/// Vault distinguishes service and batch tokens; Cairn issues service tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    #[default]
    Service,
}

/// A stored token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Salted HMAC of the token, hex: the storage key.
    pub hash: String,
    /// Public handle used to look up or revoke the token without holding it.
    pub accessor: String,
    /// Hash of the parent token; `None` for orphans.
    pub parent: Option<String>,
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Auth path that created it (`auth/token/create`, `auth/token/root`).
    pub path: String,
    /// Unix seconds.
    pub creation_time: i64,
    /// Initial TTL in seconds (0 = no expiry).
    pub creation_ttl: i64,
    /// Unix seconds when it expires; 0 = never.
    pub expire_time: i64,
    /// Cap on the token's life in seconds from creation (0 = none).
    pub explicit_max_ttl: i64,
    /// Periodic tokens renew to this TTL forever (0 = not periodic).
    pub period: i64,
    pub renewable: bool,
    /// Remaining uses (0 = unlimited).
    pub num_uses: i64,
    #[serde(default)]
    pub token_type: TokenType,
}

impl TokenEntry {
    /// Whether the token has expired at `now` (whole seconds). Times are kept
    /// in whole seconds, so the expiry second itself still counts as alive:
    /// a token never dies before its TTL, and at most a second after it.
    pub fn expired(&self, now: i64) -> bool {
        self.expire_time != 0 && now > self.expire_time
    }

    /// Seconds left (0 for tokens that never expire).
    pub fn ttl(&self, now: i64) -> i64 {
        if self.expire_time == 0 {
            0
        } else {
            (self.expire_time - now).max(0)
        }
    }

    /// Whether this is a root token.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// Vault's `auth/token/lookup` data. `id` is the token when the caller
    /// presented it, empty when looked up by accessor.
    pub fn lookup_data(&self, id: &str, now: i64) -> Value {
        let expire = if self.expire_time == 0 {
            Value::Null
        } else {
            json!(rfc3339(self.expire_time))
        };
        let mut data = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": "",
            "expire_time": expire,
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id,
            "issue_time": rfc3339(self.creation_time),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.parent.is_none(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.ttl(now),
            "type": "service",
        });
        if self.period > 0 {
            data["period"] = json!(self.period);
        }
        data
    }

    /// Vault's `auth` block for a response that issued or renewed this token.
    pub fn auth_block(&self, token: &str, now: i64) -> Value {
        let token_policies: Vec<&String> = self.policies.iter().collect();
        json!({
            "client_token": token,
            "accessor": self.accessor,
            "policies": self.policies,
            "token_policies": token_policies,
            "metadata": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "lease_duration": self.ttl(now),
            "renewable": self.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": self.parent.is_none(),
            "num_uses": self.num_uses,
            "mfa_requirement": Value::Null,
        })
    }
}
