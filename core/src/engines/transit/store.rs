//! How keys are stored: one barrier entry per named key at `policy/<name>`,
//! holding every version, so any change is a single put. The entry is JSON
//! with key material in base64; the barrier seals it like every other value.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::aead::{KeyType, KEY_LEN};
use super::error::TransitError;
use super::input::B64;
use super::policy::{KeyPolicy, KeyVersion};
use crate::barrier::{BarrierError, View};
use base64::Engine as _;

/// Prefix of the stored keys inside the mount's view.
pub const POLICY_PREFIX: &str = "policy/";

/// Key material read from storage, zeroized in memory.
struct Secret(Zeroizing<[u8; KEY_LEN]>);

/// Key material written to storage, borrowed so no copy is made.
struct SecretRef<'a>(&'a [u8; KEY_LEN]);

impl Serialize for SecretRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = Zeroizing::new(String::with_capacity(KEY_LEN * 2));
        B64.encode_string(self.0, &mut text);
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 key")
            }
            // Reads straight from the (zeroized) input buffer: no copy of the
            // text is left behind.
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Secret, E> {
                let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
                match B64.decode_slice(text, &mut buf[..]) {
                    Ok(KEY_LEN) => {
                        let mut key = Zeroizing::new([0u8; KEY_LEN]);
                        key.copy_from_slice(&buf[..KEY_LEN]);
                        Ok(Secret(key))
                    }
                    _ => Err(E::custom("key material has the wrong length or encoding")),
                }
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
struct StoredVersion {
    version: u32,
    created: i64,
    key: Secret,
    hmac_key: Secret,
}

#[derive(Deserialize)]
struct StoredPolicy {
    name: String,
    #[serde(rename = "type")]
    key_type: KeyType,
    derived: bool,
    deletion_allowed: bool,
    min_decryption_version: u32,
    min_encryption_version: u32,
    versions: Vec<StoredVersion>,
}

/// The write side of [`StoredVersion`]: same JSON, borrowed material.
#[derive(Serialize)]
struct StoredVersionRef<'a> {
    version: u32,
    created: i64,
    key: SecretRef<'a>,
    hmac_key: SecretRef<'a>,
}

/// The write side of [`StoredPolicy`].
#[derive(Serialize)]
struct StoredPolicyRef<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    key_type: KeyType,
    derived: bool,
    deletion_allowed: bool,
    min_decryption_version: u32,
    min_encryption_version: u32,
    versions: Vec<StoredVersionRef<'a>>,
}

fn storage_key(name: &str) -> String {
    format!("{POLICY_PREFIX}{name}")
}

fn corrupt(view: &View, name: &str) -> TransitError {
    TransitError::Barrier(BarrierError::Corrupt {
        key: format!("{}{}", view.prefix(), storage_key(name)),
    })
}

/// Read the key `name`, or `None` if there is none.
pub async fn load(view: &View, name: &str) -> Result<Option<KeyPolicy>, TransitError> {
    let Some(bytes) = view.get(&storage_key(name)).await? else {
        return Ok(None);
    };
    let stored: StoredPolicy = serde_json::from_slice(&bytes).map_err(|_| corrupt(view, name))?;
    let latest = stored.versions.len() as u32;
    let consistent = stored.name == name
        && latest >= 1
        && stored
            .versions
            .iter()
            .enumerate()
            .all(|(i, v)| v.version == i as u32 + 1)
        && (1..=latest).contains(&stored.min_decryption_version)
        && stored.min_encryption_version <= latest;
    if !consistent {
        return Err(corrupt(view, name));
    }
    let versions = stored
        .versions
        .into_iter()
        .map(|v| {
            KeyVersion::from_parts(
                stored.key_type,
                stored.derived,
                v.created,
                v.key.0,
                v.hmac_key.0,
            )
        })
        .collect();
    Ok(Some(KeyPolicy::from_parts(
        stored.name,
        stored.key_type,
        stored.derived,
        stored.deletion_allowed,
        stored.min_decryption_version,
        stored.min_encryption_version,
        versions,
    )))
}

/// Write `policy` (all its versions) in one put.
pub async fn save(view: &View, policy: &KeyPolicy) -> Result<(), TransitError> {
    let stored = StoredPolicyRef {
        name: &policy.name,
        key_type: policy.key_type,
        derived: policy.derived,
        deletion_allowed: policy.deletion_allowed,
        min_decryption_version: policy.min_decryption_version,
        min_encryption_version: policy.min_encryption_version,
        versions: policy
            .versions()
            .iter()
            .enumerate()
            .map(|(i, v)| StoredVersionRef {
                version: i as u32 + 1,
                created: v.created,
                key: SecretRef(v.key()),
                hmac_key: SecretRef(v.hmac_key()),
            })
            .collect(),
    };
    // Sized up front so the buffer never reallocates, which would leave
    // copies of key material behind in freed memory.
    let mut buf = Zeroizing::new(Vec::with_capacity(
        512 + policy.name.len() + 200 * stored.versions.len(),
    ));
    serde_json::to_writer(&mut *buf, &stored)
        .map_err(|_| TransitError::bad("failed to encode key"))?;
    view.put(&storage_key(&policy.name), &buf).await?;
    Ok(())
}

/// Remove the key `name`.
pub async fn delete(view: &View, name: &str) -> Result<(), TransitError> {
    view.delete(&storage_key(name)).await?;
    Ok(())
}

/// Names of every key.
pub async fn list(view: &View) -> Result<Vec<String>, TransitError> {
    Ok(view.list(POLICY_PREFIX).await?)
}
