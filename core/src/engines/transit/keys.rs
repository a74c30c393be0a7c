//! `keys/` endpoints: create, read, list, delete, configure and rotate named
//! keys. Every change loads the key from storage under its write lock, so it
//! applies to what is stored, not to a cached copy.

use serde_json::{json, Map, Value};

use super::aead::KeyType;
use super::error::TransitError;
use super::input;
use super::policy::KeyPolicy;
use super::{now, store, TransitEngine};
use crate::barrier::View;
use crate::engines::{EngineError, Response};

/// Key types Vault knows that this engine does not implement.
const VAULT_ONLY_TYPES: &[&str] = &[
    "aes128-gcm96",
    "ed25519",
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "hmac",
    "managed_key",
];

/// The `type` field of a create (or of an encrypt that creates the key).
pub fn key_type(body: &Map<String, Value>) -> Result<KeyType, TransitError> {
    match input::str_field(body, "type")? {
        None | Some("") => Ok(KeyType::Aes256Gcm96),
        Some(name) => KeyType::parse(name).ok_or_else(|| {
            if VAULT_ONLY_TYPES.contains(&name) {
                TransitError::bad(format!("key type {name} is not supported by this server"))
            } else {
                TransitError::bad(format!("unknown key type {name:?}"))
            }
        }),
    }
}

/// Refuse the options Cairn does not offer: exporting keys, plaintext
/// backups, convergent encryption and timed rotation.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), TransitError> {
    if input::bool_field(body, "exportable")? == Some(true) {
        return Err(TransitError::bad(
            "exportable keys are not supported: key material never leaves the server",
        ));
    }
    if input::bool_field(body, "allow_plaintext_backup")? == Some(true) {
        return Err(TransitError::bad(
            "plaintext backups are not supported: key material never leaves the server",
        ));
    }
    if input::bool_field(body, "convergent_encryption")? == Some(true) {
        return Err(TransitError::bad("convergent encryption is not supported"));
    }
    if !input::duration_is_zero(body, "auto_rotate_period")? {
        return Err(TransitError::bad(
            "auto_rotate_period is not supported: rotate keys with keys/<name>/rotate",
        ));
    }
    Ok(())
}

/// `POST keys/<name>`: create the key; an existing key is returned unchanged.
pub async fn create(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    refuse_unsupported(body)?;
    let kind = key_type(body)?;
    let derived = input::bool_field(body, "derived")?.unwrap_or(false);
    let _guard = engine.lock(view, name).await;
    let policy = match store::load(view, name).await? {
        Some(existing) => {
            let mut resp = Response::data(existing.to_json());
            resp.warnings.push(format!("key {name} already existed"));
            return Ok(resp);
        }
        None => {
            engine
                .commit(view, KeyPolicy::new(name, kind, derived, now()))
                .await?
        }
    };
    Ok(Response::data(policy.to_json()))
}

/// `GET keys/<name>`: the key's settings and version times; 404 if missing.
pub async fn read(
    engine: &TransitEngine,
    view: &View,
    name: &str,
) -> Result<Response, EngineError> {
    match engine.policy(view, name).await? {
        Some(p) => Ok(Response::data(p.to_json())),
        None => Err(EngineError::NotFound),
    }
}

/// `LIST keys`: the key names; 404 when there are none, as Vault answers.
pub async fn list(view: &View) -> Result<Response, EngineError> {
    let names = store::list(view).await?;
    if names.is_empty() {
        return Err(EngineError::NotFound);
    }
    Ok(Response::data(json!({ "keys": names })))
}

/// `DELETE keys/<name>`: only once `deletion_allowed` was set.
pub async fn delete(
    engine: &TransitEngine,
    view: &View,
    name: &str,
) -> Result<Response, EngineError> {
    let _guard = engine.lock(view, name).await;
    let Some(policy) = store::load(view, name).await? else {
        return Err(TransitError::bad(format!("could not delete key {name}: not found")).into());
    };
    if !policy.deletion_allowed {
        return Err(TransitError::bad("deletion is not allowed for this key").into());
    }
    store::delete(view, name).await?;
    engine.cache.remove(view.prefix(), name);
    Ok(Response::empty())
}

/// `POST keys/<name>/rotate`: add a version that new encryptions use.
pub async fn rotate(
    engine: &TransitEngine,
    view: &View,
    name: &str,
) -> Result<Response, EngineError> {
    let _guard = engine.lock(view, name).await;
    let Some(mut policy) = store::load(view, name).await? else {
        return Err(TransitError::KeyNotFound.into());
    };
    policy.rotate(now());
    let policy = engine.commit(view, policy).await?;
    Ok(Response::data(policy.to_json()))
}

/// `POST keys/<name>/config`: `min_decryption_version`,
/// `min_encryption_version` and `deletion_allowed`, checked as Vault checks
/// them; nothing is stored unless every field is acceptable.
pub async fn configure(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let _guard = engine.lock(view, name).await;
    let Some(mut policy) = store::load(view, name).await? else {
        return Err(
            TransitError::bad(format!("no existing key named {name} could be found")).into(),
        );
    };
    let warnings = apply_config(&mut policy, body)?;
    let policy = engine.commit(view, policy).await?;
    let mut resp = Response::data(policy.to_json());
    resp.warnings = warnings;
    Ok(resp)
}

/// Apply the config fields to `policy`; warnings for the response.
fn apply_config(
    policy: &mut KeyPolicy,
    body: &Map<String, Value>,
) -> Result<Vec<String>, TransitError> {
    if input::bool_field(body, "exportable")? == Some(true) {
        return Err(TransitError::bad(
            "exportable keys are not supported: key material never leaves the server",
        ));
    }
    if input::bool_field(body, "allow_plaintext_backup")? == Some(true) {
        return Err(TransitError::bad(
            "plaintext backups are not supported: key material never leaves the server",
        ));
    }
    if !input::duration_is_zero(body, "auto_rotate_period")? {
        return Err(TransitError::bad(
            "auto_rotate_period is not supported: rotate keys with keys/<name>/rotate",
        ));
    }
    let mut warnings = Vec::new();
    let latest = i64::from(policy.latest_version());
    if let Some(v) = input::int_field(body, "min_decryption_version")? {
        if v < 0 {
            return Err(TransitError::bad(
                "min decryption version cannot be negative",
            ));
        }
        let v = if v == 0 {
            warnings.push(
                "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                    .to_owned(),
            );
            1
        } else {
            v
        };
        if v > latest {
            return Err(TransitError::bad(format!(
                "cannot set min decryption version of {v}, latest key version is {latest}"
            )));
        }
        policy.min_decryption_version = v as u32;
    }
    if let Some(v) = input::int_field(body, "min_encryption_version")? {
        if v < 0 {
            return Err(TransitError::bad(
                "min encryption version cannot be negative",
            ));
        }
        if v > latest {
            return Err(TransitError::bad(format!(
                "cannot set min encryption version of {v}, latest key version is {latest}"
            )));
        }
        policy.min_encryption_version = v as u32;
    }
    if policy.min_encryption_version > 0
        && policy.min_encryption_version < policy.min_decryption_version
    {
        return Err(TransitError::bad(
            "cannot set min encryption/decryption values; min encryption version must be greater than or equal to min decryption version",
        ));
    }
    if let Some(allowed) = input::bool_field(body, "deletion_allowed")? {
        policy.deletion_allowed = allowed;
    }
    Ok(warnings)
}
