//! A named key ("policy" in Vault's terms): its type, flags, version limits
//! and every version's key material, with the ciphers built once.
//!
//! A policy is immutable once shared: writers build a changed copy, store it
//! and swap it into the cache, so readers never take a lock.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::aead::{derive_key, random_key, Aead, KeyType, KEY_LEN};
use super::error::TransitError;

/// Refusal when a derived key is used without a context (Vault's message).
const CONTEXT_REQUIRED: &str = "missing 'context' for key derivation; the key was created using a derived key, \
     which means additional, per-request information must be included in order to perform operations with the key";

/// One version of a key.
#[derive(Clone)]
pub struct KeyVersion {
    /// Unix time (seconds) the version was created.
    pub created: i64,
    key: Zeroizing<[u8; KEY_LEN]>,
    hmac_key: Zeroizing<[u8; KEY_LEN]>,
    /// Built once for non-derived keys; derived keys build one per context.
    aead: Option<Aead>,
}

impl KeyVersion {
    /// A version from stored parts.
    pub fn from_parts(
        kind: KeyType,
        derived: bool,
        created: i64,
        key: Zeroizing<[u8; KEY_LEN]>,
        hmac_key: Zeroizing<[u8; KEY_LEN]>,
    ) -> KeyVersion {
        let aead = (!derived).then(|| Aead::new(kind, &key));
        KeyVersion {
            created,
            key,
            hmac_key,
            aead,
        }
    }

    fn generate(kind: KeyType, derived: bool, created: i64) -> KeyVersion {
        KeyVersion::from_parts(kind, derived, created, random_key(), random_key())
    }

    /// The encryption key (for storing only).
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The HMAC key, separate from the encryption key as in Vault.
    pub fn hmac_key(&self) -> &[u8; KEY_LEN] {
        &self.hmac_key
    }
}

/// A named key.
#[derive(Clone)]
pub struct KeyPolicy {
    /// The key's name.
    pub name: String,
    /// Cipher of every version.
    pub key_type: KeyType,
    /// Whether each request's context derives the actual key.
    pub derived: bool,
    /// Whether `DELETE keys/<name>` is allowed.
    pub deletion_allowed: bool,
    /// Oldest version that may decrypt or verify (at least 1).
    pub min_decryption_version: u32,
    /// Oldest version that may encrypt or HMAC; 0 means "the latest".
    pub min_encryption_version: u32,
    /// `versions[i]` is version `i + 1`.
    versions: Vec<KeyVersion>,
}

impl KeyPolicy {
    /// A new key with version 1.
    pub fn new(name: &str, key_type: KeyType, derived: bool, now: i64) -> KeyPolicy {
        KeyPolicy {
            name: name.to_owned(),
            key_type,
            derived,
            deletion_allowed: false,
            min_decryption_version: 1,
            min_encryption_version: 0,
            versions: vec![KeyVersion::generate(key_type, derived, now)],
        }
    }

    /// A key from stored parts; `versions` must be version 1 onwards.
    pub fn from_parts(
        name: String,
        key_type: KeyType,
        derived: bool,
        deletion_allowed: bool,
        min_decryption_version: u32,
        min_encryption_version: u32,
        versions: Vec<KeyVersion>,
    ) -> KeyPolicy {
        KeyPolicy {
            name,
            key_type,
            derived,
            deletion_allowed,
            min_decryption_version,
            min_encryption_version,
            versions,
        }
    }

    /// The newest version number.
    pub fn latest_version(&self) -> u32 {
        self.versions.len() as u32
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[KeyVersion] {
        &self.versions
    }

    /// Add a new version, which becomes the one used for encryption.
    pub fn rotate(&mut self, now: i64) {
        self.versions
            .push(KeyVersion::generate(self.key_type, self.derived, now));
    }

    fn version(&self, v: u32) -> Option<&KeyVersion> {
        self.versions.get((v as usize).checked_sub(1)?)
    }

    /// The version to encrypt (or HMAC) with, from the request's
    /// `key_version` (absent or 0: the latest), checked against the limits.
    pub fn encryption_version(&self, requested: Option<i64>) -> Result<u32, TransitError> {
        let latest = self.latest_version();
        let v = match requested.unwrap_or(0) {
            0 => return Ok(latest),
            v if v < 0 => {
                return Err(TransitError::bad(
                    "requested version for encryption is negative",
                ))
            }
            v => u32::try_from(v).unwrap_or(u32::MAX),
        };
        if v > latest {
            return Err(TransitError::bad(
                "requested version for encryption is higher than the latest key version",
            ));
        }
        if v < self.min_encryption_version {
            return Err(TransitError::bad(
                "requested version for encryption is less than the minimum encryption key version",
            ));
        }
        if v < self.min_decryption_version {
            return Err(TransitError::bad(
                "requested version for encryption is less than the minimum decryption key version",
            ));
        }
        Ok(v)
    }

    /// The version a ciphertext or HMAC names, if policy still allows it.
    pub fn decryption_version(
        &self,
        v: u32,
        what: &'static str,
    ) -> Result<&KeyVersion, TransitError> {
        if v < self.min_decryption_version {
            return Err(TransitError::TooOld);
        }
        self.version(v).ok_or(TransitError::Malformed {
            what,
            why: "version is too new",
        })
    }

    /// The version to encrypt with (see [`Self::encryption_version`]).
    pub fn encryption_key(&self, v: u32) -> Result<&KeyVersion, TransitError> {
        self.version(v)
            .ok_or_else(|| TransitError::bad("invalid key version"))
    }

    /// The cipher of `version` for `context`: the prebuilt one, or one keyed
    /// with the context's derived key. A derived key needs a context.
    pub fn aead<'a>(
        &self,
        version: &'a KeyVersion,
        context: Option<&[u8]>,
    ) -> Result<Cow<'a, Aead>, TransitError> {
        match (&version.aead, self.derived) {
            (Some(aead), false) => Ok(Cow::Borrowed(aead)),
            _ => {
                let context = context
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| TransitError::bad(CONTEXT_REQUIRED))?;
                let key = derive_key(&version.key, context)?;
                Ok(Cow::Owned(Aead::new(self.key_type, &key)))
            }
        }
    }

    /// Vault's `GET keys/<name>` shape: flags, limits and the creation time
    /// of each version still allowed to decrypt. Never any key material.
    pub fn to_json(&self) -> Value {
        let keys: BTreeMap<String, i64> = self
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32 + 1, v))
            .filter(|(n, _)| *n >= self.min_decryption_version)
            .map(|(n, v)| (n.to_string(), v.created))
            .collect();
        let mut out = json!({
            "name": self.name,
            "type": self.key_type.as_str(),
            "derived": self.derived,
            "deletion_allowed": self.deletion_allowed,
            "exportable": false,
            "allow_plaintext_backup": false,
            "imported_key": false,
            "auto_rotate_period": 0,
            "keys": keys,
            "latest_version": self.latest_version(),
            "min_available_version": 0,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "supports_encryption": true,
            "supports_decryption": true,
            "supports_derivation": true,
            "supports_signing": false,
        });
        if self.derived {
            if let Value::Object(m) = &mut out {
                m.insert("kdf".into(), json!("hkdf_sha256"));
                m.insert("convergent_encryption".into(), json!(false));
            }
        }
        out
    }
}
