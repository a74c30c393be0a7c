//! One read of a secret path, as the agent renders it: the response's `data`
//! and its lease.

use std::fmt;

use cairn_client::Secret;
use serde_json::{Map, Value};

/// What a read of a secret path answered. `Debug` never shows the data.
#[derive(Clone, PartialEq)]
pub struct SecretRead {
    /// The `data` object of the response (for KV v2: `{data, metadata}`).
    pub data: Value,
    /// The lease of a dynamic secret; empty for KV.
    pub lease_id: String,
    /// Lease duration in seconds (0 for KV).
    pub lease_duration: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
}

impl fmt::Debug for SecretRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRead")
            .field("data", &"<redacted>")
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .finish()
    }
}

impl SecretRead {
    /// The read as the core's envelope carried it.
    pub fn from_envelope(secret: Secret<Map<String, Value>>) -> Self {
        SecretRead {
            data: Value::Object(secret.data.unwrap_or_default()),
            lease_id: secret.lease_id,
            lease_duration: secret.lease_duration,
            renewable: secret.renewable,
        }
    }

    /// Whether this is a KV version 2 read (`data.data` and `data.metadata`
    /// objects), which the change stream can watch.
    pub fn is_kv2(&self) -> bool {
        self.data.get("data").is_some_and(Value::is_object)
            && self.data.get("metadata").is_some_and(Value::is_object)
    }

    /// "The secret's fields": `data.data` of a KV v2 read, `data` otherwise.
    pub fn fields(&self) -> &Value {
        if self.is_kv2() {
            &self.data["data"]
        } else {
            &self.data
        }
    }

    /// Whether the read carries a lease the agent must keep renewed.
    pub fn has_lease(&self) -> bool {
        !self.lease_id.is_empty()
    }

    /// The `lease` variable of templates.
    pub fn lease_context(&self) -> Value {
        serde_json::json!({
            "id": self.lease_id,
            "duration": self.lease_duration,
            "renewable": self.renewable,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(data: Value) -> SecretRead {
        SecretRead {
            data,
            lease_id: String::new(),
            lease_duration: 0,
            renewable: false,
        }
    }

    #[test]
    fn kv2_fields_are_the_inner_data() {
        let r = read(json!({"data": {"pw": "x"}, "metadata": {"version": 1}}));
        assert!(r.is_kv2());
        assert_eq!(r.fields(), &json!({"pw": "x"}));
    }

    #[test]
    fn other_reads_use_data_itself() {
        let r = read(json!({"username": "u", "password": "p"}));
        assert!(!r.is_kv2());
        assert_eq!(r.fields()["username"], "u");
        // A KV v1 secret that happens to have a `data` key is not KV v2.
        let r = read(json!({"data": {"a": 1}}));
        assert!(!r.is_kv2());
    }

    #[test]
    fn debug_hides_the_data() {
        let r = read(json!({"password": "hunter2"}));
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
