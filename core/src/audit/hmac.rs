//! Salted HMAC-SHA256 of audit values, as Vault's audit devices do: every
//! string becomes `hmac-sha256:<hex>` so the log holds no secret, yet an
//! operator holding a value can find it with `sys/audit-hash`.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Prefix of every hashed string, as in Vault's audit log.
pub const PREFIX: &str = "hmac-sha256:";

/// SHA-256's block size: HMAC pads shorter keys with zeros up to it.
const BLOCK: usize = 64;

/// The audit salt, the HMAC key of every hashed value.
///
/// Held zero-padded to the hash's block size: HMAC defines a short key as
/// exactly that padding, so the MAC is the one of the 32-byte salt, and the
/// key can be handed to `Hmac::new` whose key type has a fixed length (no
/// fallible length check on every string). The bytes are zeroized on drop.
pub struct Salt {
    key: Zeroizing<[u8; BLOCK]>,
}

impl Salt {
    /// Takes the 32-byte audit salt.
    pub fn new(salt: [u8; 32]) -> Self {
        let mut key = Zeroizing::new([0u8; BLOCK]);
        key[..32].copy_from_slice(&salt);
        Salt { key }
    }

    /// The raw HMAC-SHA256 of `data`.
    fn mac(&self, data: &[u8]) -> [u8; 32] {
        // A fresh MAC per value rather than a cached keyed state: the cached
        // state would be key-equivalent material outside the zeroized buffer.
        let mut mac = <Hmac<Sha256> as KeyInit>::new(self.key.as_ref().into());
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// `hmac-sha256:<hex>` of `value`, as `sys/audit-hash` answers.
    pub fn hash(&self, value: &str) -> String {
        format!("{PREFIX}{}", hex::encode(self.mac(value.as_bytes())))
    }

    fn hex_into(&self, value: &str, hex: &mut [u8; 64]) {
        let digest = self.mac(value.as_bytes());
        // The output buffer is exactly twice the digest length, so encoding
        // cannot fail.
        let _ = hex::encode_to_slice(digest, hex);
    }

    /// Appends `value` as a JSON string holding its hash.
    pub fn write_hashed_str(&self, value: &str, out: &mut Vec<u8>) {
        let mut hex = [0u8; 64];
        self.hex_into(value, &mut hex);
        out.reserve(PREFIX.len() + 66);
        out.push(b'"');
        out.extend_from_slice(PREFIX.as_bytes());
        out.extend_from_slice(&hex);
        out.push(b'"');
    }

    /// Appends `value` as JSON with every string replaced by its hash, at any
    /// depth. Object keys, numbers, booleans and nulls are kept, so the
    /// structure of a request stays readable.
    ///
    /// Serializes straight into `out` instead of building a hashed copy of
    /// the tree: this runs on every request.
    pub fn write_hashed(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match value {
            Value::String(s) => self.write_hashed_str(s, out),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_hashed(item, out)?;
                }
                out.push(b']');
            }
            Value::Object(map) => self.write_hashed_map(map, out)?,
            Value::Null | Value::Bool(_) | Value::Number(_) => {
                serde_json::to_writer(&mut *out, value)?
            }
        }
        Ok(())
    }

    /// [`Salt::write_hashed`] of an object.
    pub fn write_hashed_map(
        &self,
        map: &serde_json::Map<String, Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        out.push(b'{');
        for (i, (key, item)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            self.write_hashed(item, out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn salt() -> Salt {
        Salt::new([7u8; 32])
    }

    /// Reference value computed with the crate's variable-length key path,
    /// independent of the zero-padding in `Salt`.
    fn reference(key: &[u8; 32], value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length is valid");
        mac.update(value.as_bytes());
        format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn hash_matches_plain_hmac_of_the_salt() {
        for value in ["", "s3cret", "ünïcode", &"x".repeat(200)] {
            assert_eq!(salt().hash(value), reference(&[7u8; 32], value));
        }
        let h = salt().hash("s3cret");
        assert!(h.starts_with("hmac-sha256:"));
        assert_eq!(h.len(), PREFIX.len() + 64);
    }

    #[test]
    fn different_salts_give_different_hashes() {
        assert_ne!(
            Salt::new([1u8; 32]).hash("v"),
            Salt::new([2u8; 32]).hash("v")
        );
    }

    #[test]
    fn every_string_is_replaced_and_structure_is_kept() {
        let s = salt();
        let input = json!({
            "password": "hunter2",
            "n": 42,
            "f": 1.5,
            "ok": true,
            "none": null,
            "list": ["a", 1, ["deep", {"k": "v"}], false],
            "nested": {"inner": {"token": "cairn.abc", "count": 3}},
            "key \"quoted\"": "x"
        });
        let mut out = Vec::new();
        s.write_hashed(&input, &mut out).expect("encode");
        let text = String::from_utf8(out.clone()).expect("utf8");
        for secret in ["hunter2", "\"a\"", "deep", "\"v\"", "cairn.abc"] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        let got: Value = serde_json::from_slice(&out).expect("valid JSON");
        let want = json!({
            "password": s.hash("hunter2"),
            "n": 42,
            "f": 1.5,
            "ok": true,
            "none": null,
            "list": [s.hash("a"), 1, [s.hash("deep"), {"k": s.hash("v")}], false],
            "nested": {"inner": {"token": s.hash("cairn.abc"), "count": 3}},
            "key \"quoted\"": s.hash("x")
        });
        assert_eq!(got, want);
    }

    #[test]
    fn a_bare_string_is_hashed() {
        let mut out = Vec::new();
        salt()
            .write_hashed(&json!("top"), &mut out)
            .expect("encode");
        assert_eq!(
            serde_json::from_slice::<Value>(&out).expect("json"),
            json!(salt().hash("top"))
        );
    }

    #[test]
    fn debug_does_not_print_the_salt() {
        let printed = format!("{:?}", Salt::new([0xAB; 32]));
        assert!(!printed.to_lowercase().contains("ab, ") && !printed.contains("171"));
        assert_eq!(printed, "Salt(<redacted>)");
    }
}
