//! `encrypt/<name>`, `decrypt/<name>` and `rewrap/<name>`, single or batched.
//!
//! One set of scratch buffers serves a whole batch, so an item costs its
//! output string and the result map and nothing else. Buffers that hold
//! plaintext, contexts or key-derived bytes are wiped when dropped.

use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::aead::NONCE_LEN;
use super::error::TransitError;
use super::input::{self, Items, B64};
use super::policy::KeyPolicy;
use super::{batch, format, keys, now, store, TransitEngine};
use crate::barrier::View;
use crate::engines::{EngineError, Operation, Response};
use base64::Engine as _;

/// Buffers reused across the items of one request.
#[derive(Default)]
pub struct Scratch {
    plain: Zeroizing<Vec<u8>>,
    context: Zeroizing<Vec<u8>>,
    aad: Zeroizing<Vec<u8>>,
    /// Sealed bytes; after decryption in place, plaintext.
    sealed: Zeroizing<Vec<u8>>,
}

/// Convergent encryption (caller-chosen nonces) is not offered, so a nonce
/// is refused rather than silently ignored.
fn refuse_nonce(item: &Map<String, Value>) -> Result<(), TransitError> {
    match input::str_field(item, "nonce")? {
        None | Some("") => Ok(()),
        Some(_) => Err(TransitError::bad(
            "a nonce may only be given for convergent encryption, which is not supported",
        )),
    }
}

/// Encrypt `s.plain` under `policy` at `version` with the item's context and
/// associated data; the ciphertext string.
fn seal_plain(policy: &KeyPolicy, version: u32, s: &mut Scratch) -> Result<String, TransitError> {
    let key = policy.encryption_key(version)?;
    let context = (!s.context.is_empty()).then_some(&s.context[..]);
    let aead = policy.aead(key, context)?;
    aead.seal(&s.plain, &s.aad, &mut s.sealed)?;
    Ok(format::format(version, &s.sealed))
}

/// Decrypt the item's `ciphertext` in place in `s.sealed`; where in
/// `s.sealed` the plaintext now is.
fn open_item(
    policy: &KeyPolicy,
    item: &Map<String, Value>,
    s: &mut Scratch,
) -> Result<Range<usize>, TransitError> {
    let text = input::str_field(item, "ciphertext")?
        .ok_or_else(|| TransitError::bad("missing ciphertext to decrypt"))?;
    let (version, payload) = format::parse(text, "ciphertext")?;
    let key = policy.decryption_version(version, "ciphertext")?;
    input::decode_into(payload, &mut s.sealed).map_err(|_| TransitError::Malformed {
        what: "ciphertext",
        why: "could not decode base64",
    })?;
    input::b64_field(item, "context", &mut s.context)?;
    input::b64_field(item, "associated_data", &mut s.aad)?;
    let context = (!s.context.is_empty()).then_some(&s.context[..]);
    let aead = policy.aead(key, context)?;
    let len = aead.open(&mut s.sealed, &s.aad)?.len();
    Ok(NONCE_LEN..NONCE_LEN + len)
}

/// One encrypt item: `{ciphertext, key_version}`.
fn encrypt_item(
    policy: &KeyPolicy,
    item: &Map<String, Value>,
    s: &mut Scratch,
) -> Result<Map<String, Value>, TransitError> {
    let text = input::str_field(item, "plaintext")?
        .ok_or_else(|| TransitError::bad("missing plaintext to encrypt"))?;
    input::decode_into(text, &mut s.plain)
        .map_err(|_| TransitError::bad("failed to base64-decode plaintext"))?;
    input::b64_field(item, "context", &mut s.context)?;
    input::b64_field(item, "associated_data", &mut s.aad)?;
    refuse_nonce(item)?;
    let version = policy.encryption_version(input::int_field(item, "key_version")?)?;
    let ciphertext = seal_plain(policy, version, s)?;
    let mut out = Map::new();
    out.insert("ciphertext".into(), Value::String(ciphertext));
    out.insert("key_version".into(), Value::from(version));
    Ok(out)
}

/// One decrypt item: `{plaintext}`.
fn decrypt_item(
    policy: &KeyPolicy,
    item: &Map<String, Value>,
    s: &mut Scratch,
) -> Result<Map<String, Value>, TransitError> {
    let plain = open_item(policy, item, s)?;
    let mut out = Map::new();
    out.insert(
        "plaintext".into(),
        Value::String(B64.encode(&s.sealed[plain])),
    );
    Ok(out)
}

/// One rewrap item: decrypt, then encrypt with the requested (or latest)
/// version under the same context: `{ciphertext, key_version}`.
fn rewrap_item(
    policy: &KeyPolicy,
    item: &Map<String, Value>,
    s: &mut Scratch,
) -> Result<Map<String, Value>, TransitError> {
    refuse_nonce(item)?;
    let version = policy.encryption_version(input::int_field(item, "key_version")?)?;
    let plain = open_item(policy, item, s)?;
    s.plain.clear();
    s.plain.extend_from_slice(&s.sealed[plain]);
    let ciphertext = seal_plain(policy, version, s)?;
    let mut out = Map::new();
    out.insert("ciphertext".into(), Value::String(ciphertext));
    out.insert("key_version".into(), Value::from(version));
    Ok(out)
}

/// Whether the item carries a non-empty context.
fn has_context(item: &Map<String, Value>) -> bool {
    matches!(item.get("context"), Some(Value::String(c)) if !c.is_empty())
}

/// The key for a decrypt / rewrap / datakey / hmac: it must exist.
pub async fn existing(
    engine: &TransitEngine,
    view: &View,
    name: &str,
) -> Result<Arc<KeyPolicy>, TransitError> {
    engine
        .policy(view, name)
        .await?
        .ok_or(TransitError::KeyNotFound)
}

/// Create the key on a first encrypt (Vault's upsert): `type` from the body,
/// derived when the (first) item has a context.
async fn upsert(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    body: &Map<String, Value>,
    derived: bool,
) -> Result<Arc<KeyPolicy>, TransitError> {
    if input::bool_field(body, "convergent_encryption")? == Some(true) {
        return Err(TransitError::bad("convergent encryption is not supported"));
    }
    let kind = keys::key_type(body)?;
    let _guard = engine.lock(view, name).await;
    if let Some(p) = engine.cache.get(view.prefix(), name) {
        return Ok(p);
    }
    match store::load(view, name).await? {
        Some(p) => {
            let p = Arc::new(p);
            engine.cache.put(view.prefix(), p.clone());
            Ok(p)
        }
        None => {
            engine
                .commit(view, KeyPolicy::new(name, kind, derived, now()))
                .await
        }
    }
}

/// `POST encrypt/<name>`.
pub async fn encrypt(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    op: Operation,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let items = input::items(body)?;
    let context_set = match &items {
        Items::Single(item) => has_context(item),
        Items::Batch(list) => {
            let first = list.first().is_some_and(|i| has_context(i));
            if list.iter().any(|i| has_context(i) != first) {
                return Err(TransitError::bad(
                    "context should be set either in all the request blocks or in none",
                )
                .into());
            }
            first
        }
    };
    let policy = match engine.policy(view, name).await? {
        Some(p) => p,
        None if op == Operation::Create => upsert(engine, view, name, body, context_set).await?,
        None => return Err(TransitError::KeyNotFound.into()),
    };
    let mut s = Scratch::default();
    Ok(batch::run(items, body, |item| {
        encrypt_item(&policy, item, &mut s)
    })?)
}

/// `POST decrypt/<name>`.
pub async fn decrypt(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let items = input::items(body)?;
    let policy = existing(engine, view, name).await?;
    let mut s = Scratch::default();
    Ok(batch::run(items, body, |item| {
        decrypt_item(&policy, item, &mut s)
    })?)
}

/// `POST rewrap/<name>`.
pub async fn rewrap(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let items = input::items(body)?;
    let policy = existing(engine, view, name).await?;
    let mut s = Scratch::default();
    Ok(batch::run(items, body, |item| {
        rewrap_item(&policy, item, &mut s)
    })?)
}
