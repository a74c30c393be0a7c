//! `datakey/plaintext/<name>` and `datakey/wrapped/<name>`: a fresh random
//! key, returned encrypted under the named key, and in the clear only on the
//! `plaintext` path (so ACLs can allow one without the other).

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::aead::random_bytes;
use super::crypt::existing;
use super::error::TransitError;
use super::input::{self, B64};
use super::{format, TransitEngine};
use crate::barrier::View;
use crate::engines::{EngineError, Response};
use base64::Engine as _;

/// `POST datakey/<plaintext|wrapped>/<name>` with `bits` (128, 256 or 512;
/// default 256), `context` for derived keys and `key_version`.
pub async fn generate(
    engine: &TransitEngine,
    view: &View,
    kind: &str,
    name: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let with_plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(TransitError::bad(
                "invalid path: expected datakey/plaintext/<name> or datakey/wrapped/<name>",
            )
            .into())
        }
    };
    let bits = input::int_field(body, "bits")?.unwrap_or(256);
    let len = match bits {
        128 | 256 | 512 => (bits / 8) as usize,
        _ => return Err(TransitError::bad("invalid bits value: expected 128, 256 or 512").into()),
    };
    if matches!(input::str_field(body, "nonce")?, Some(n) if !n.is_empty()) {
        return Err(TransitError::bad(
            "a nonce may only be given for convergent encryption, which is not supported",
        )
        .into());
    }
    let policy = existing(engine, view, name).await?;
    let version = policy.encryption_version(input::int_field(body, "key_version")?)?;
    let mut context = Zeroizing::new(Vec::new());
    input::b64_field(body, "context", &mut context)?;
    let key = policy.encryption_key(version)?;
    let aead = policy.aead(key, (!context.is_empty()).then_some(&context[..]))?;

    let datakey = random_bytes(len);
    let mut sealed = Zeroizing::new(Vec::new());
    aead.seal(&datakey, &[], &mut sealed)?;
    let mut out = Map::new();
    out.insert(
        "ciphertext".into(),
        Value::String(format::format(version, &sealed)),
    );
    out.insert("key_version".into(), Value::from(version));
    if with_plaintext {
        out.insert("plaintext".into(), Value::String(B64.encode(&*datakey)));
    }
    Ok(Response::data(Value::Object(out)))
}
