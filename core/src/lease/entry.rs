//! What the lease manager keeps for each lease.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::time::rfc3339;

/// Who a lease belongs to, and so what ends it besides its TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
pub enum Owner {
    /// Vault semantics: revoked with the token (by its salted hash).
    Token { hash: String },
    /// A Kubernetes object (`namespace/kind/name/uid`): the lease outlives the
    /// token that created it and is revoked when the object is reported gone.
    Object {
        namespace: String,
        kind: String,
        name: String,
        uid: String,
    },
}

impl Owner {
    /// Parse `namespace/kind/name/uid` (the `X-Cairn-Lease-Owner` header).
    pub fn parse_object(text: &str) -> Result<Owner, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.len() <= 253
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        match parts.as_slice() {
            [ns, kind, name, uid] if [ns, kind, name, uid].iter().all(|p| valid(p)) => {
                Ok(Owner::Object {
                    namespace: (*ns).to_owned(),
                    kind: (*kind).to_owned(),
                    name: (*name).to_owned(),
                    uid: (*uid).to_owned(),
                })
            }
            _ => Err("lease owner must be namespace/kind/name/uid".into()),
        }
    }

    /// The owner as shown in lookups (never a token hash).
    pub fn describe(&self) -> Value {
        match self {
            Owner::Token { .. } => json!({"kind": "token"}),
            Owner::Object {
                namespace,
                kind,
                name,
                uid,
            } => {
                json!({"kind": "object", "namespace": namespace, "object_kind": kind, "name": name, "uid": uid})
            }
        }
    }
}

/// A stored lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// `<mount><path>/<random>`, e.g. `database/creds/readonly/3mRf...`.
    pub id: String,
    /// Mount point that issued it (with trailing `/`), whose engine revokes it.
    pub mount: String,
    /// Engine-private revoke data (user names etc.); sealed at rest, never shown.
    pub internal: Value,
    pub owner: Owner,
    /// Unix milliseconds.
    pub issue_ms: i64,
    pub expire_ms: i64,
    pub last_renewal_ms: i64,
    /// Hard end of life (issue + max TTL), unix milliseconds.
    pub max_expire_ms: i64,
    /// TTL granted at issue, seconds (the default increment of a renewal).
    pub ttl: i64,
    pub renewable: bool,
    /// Failed revocation attempts so far (retried with backoff).
    #[serde(default)]
    pub revoke_attempts: u32,
    /// The last revocation error, shown by lookup; never contains a secret.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl LeaseEntry {
    /// Seconds left at `now_ms`.
    pub fn ttl_left(&self, now_ms: i64) -> i64 {
        ((self.expire_ms - now_ms).max(0) + 999) / 1000
    }

    /// Vault's `sys/leases/lookup` data, plus Cairn's owner and last error.
    pub fn lookup_data(&self, now_ms: i64) -> Value {
        json!({
            "id": self.id,
            "issue_time": rfc3339(self.issue_ms / 1000),
            "expire_time": rfc3339(self.expire_ms / 1000),
            "last_renewal": if self.last_renewal_ms == self.issue_ms { Value::Null } else { json!(rfc3339(self.last_renewal_ms / 1000)) },
            "renewable": self.renewable,
            "ttl": self.ttl_left(now_ms),
            "cairn_owner": self.owner.describe(),
            "cairn_revoke_attempts": self.revoke_attempts,
            "cairn_last_error": self.last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_owners_parse_strictly() {
        assert!(matches!(
            Owner::parse_object("team-a/DynamicCredential/db/1234-ab"),
            Ok(Owner::Object { .. })
        ));
        for bad in ["", "a/b/c", "a/b/c/d/e", "a//c/d", "a/b/c/d e", "../b/c/d"] {
            assert!(Owner::parse_object(bad).is_err(), "{bad:?} accepted");
        }
    }
}
