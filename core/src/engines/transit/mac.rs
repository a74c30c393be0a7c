//! `hmac/<name>[/<algorithm>]` and `verify/<name>[/<algorithm>]`: keyed
//! digests with each version's HMAC key (separate from its encryption key),
//! written `cairn:v<N>:<base64>` and checked in constant time.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Sha224, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::crypt::existing;
use super::error::TransitError;
use super::input::{self, Items};
use super::policy::KeyPolicy;
use super::{batch, format, TransitEngine};
use crate::barrier::View;
use crate::engines::{EngineError, Response};

/// The hash functions an HMAC may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-224.
    Sha224,
    /// SHA-256 (the default).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm named `name` (Vault's spelling).
    pub fn parse(name: &str) -> Result<Algorithm, TransitError> {
        match name {
            "sha2-224" => Ok(Algorithm::Sha224),
            "sha2-256" => Ok(Algorithm::Sha256),
            "sha2-384" => Ok(Algorithm::Sha384),
            "sha2-512" => Ok(Algorithm::Sha512),
            other => Err(TransitError::bad(format!(
                "unsupported algorithm {other:?}"
            ))),
        }
    }

    /// From the URL, else the first of `fields` present in the body, else SHA-256.
    fn of_request(
        url: Option<&str>,
        body: &Map<String, Value>,
        fields: &[&str],
    ) -> Result<Algorithm, TransitError> {
        if let Some(name) = url.filter(|u| !u.is_empty()) {
            return Algorithm::parse(name);
        }
        for field in fields {
            if let Some(name) = input::str_field(body, field)?.filter(|n| !n.is_empty()) {
                return Algorithm::parse(name);
            }
        }
        Ok(Algorithm::Sha256)
    }
}

fn compute<M: Mac + KeyInit>(
    key: &[u8],
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TransitError> {
    let mut mac =
        <M as KeyInit>::new_from_slice(key).map_err(|_| TransitError::bad("invalid HMAC key"))?;
    mac.update(data);
    out.clear();
    out.extend_from_slice(&mac.finalize().into_bytes());
    Ok(())
}

/// HMAC of `data` with `key` under `alg`, into `out`.
fn digest(alg: Algorithm, key: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), TransitError> {
    match alg {
        Algorithm::Sha224 => compute::<Hmac<Sha224>>(key, data, out),
        Algorithm::Sha256 => compute::<Hmac<Sha256>>(key, data, out),
        Algorithm::Sha384 => compute::<Hmac<Sha384>>(key, data, out),
        Algorithm::Sha512 => compute::<Hmac<Sha512>>(key, data, out),
    }
}

/// Buffers reused across the items of one request.
#[derive(Default)]
struct Scratch {
    input: Zeroizing<Vec<u8>>,
    mac: Vec<u8>,
    given: Vec<u8>,
}

/// Decode the item's `input` into `s.input`.
fn read_input(item: &Map<String, Value>, s: &mut Scratch) -> Result<(), TransitError> {
    let text =
        input::str_field(item, "input")?.ok_or_else(|| TransitError::bad("missing input"))?;
    input::decode_into(text, &mut s.input)
        .map_err(|_| TransitError::bad("unable to decode input as base64"))
}

/// `POST hmac/<name>[/<algorithm>]` with `input` (or `batch_input`),
/// `key_version` and `algorithm`: `{hmac}` per item.
pub async fn hmac(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    url_algorithm: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let alg = Algorithm::of_request(url_algorithm, body, &["algorithm"])?;
    let items = input::items(body)?;
    let policy = existing(engine, view, name).await?;
    let version = policy.encryption_version(input::int_field(body, "key_version")?)?;
    let key = policy.encryption_key(version)?;
    let mut s = Scratch::default();
    Ok(batch::run(items, body, |item| {
        read_input(item, &mut s)?;
        digest(alg, key.hmac_key(), &s.input, &mut s.mac)?;
        let mut out = Map::new();
        out.insert(
            "hmac".into(),
            Value::String(format::format(version, &s.mac)),
        );
        Ok(out)
    })?)
}

/// Check one item's `hmac` against its `input`.
fn verify_item(
    policy: &KeyPolicy,
    alg: Algorithm,
    item: &Map<String, Value>,
    s: &mut Scratch,
) -> Result<Map<String, Value>, TransitError> {
    let given = match (
        input::str_field(item, "hmac")?,
        input::str_field(item, "signature")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(TransitError::bad(
                "provide one of 'signature' or 'hmac', not both",
            ))
        }
        (None, Some(_)) => {
            return Err(TransitError::bad(format!(
                "key type {} does not support verification of signatures",
                policy.key_type.as_str()
            )))
        }
        (None, None) => return Err(TransitError::bad("missing 'hmac' or 'signature' to verify")),
        (Some(h), None) => h,
    };
    read_input(item, s)?;
    let (version, payload) = format::parse(given, "HMAC")?;
    let key = policy.decryption_version(version, "HMAC")?;
    input::decode_into(payload, &mut s.given).map_err(|_| TransitError::Malformed {
        what: "HMAC",
        why: "could not decode base64",
    })?;
    digest(alg, key.hmac_key(), &s.input, &mut s.mac)?;
    let valid = s.mac.len() == s.given.len() && bool::from(s.mac.ct_eq(&s.given));
    let mut out = Map::new();
    out.insert("valid".into(), Value::Bool(valid));
    Ok(out)
}

/// `POST verify/<name>[/<algorithm>]` with `input` and `hmac` (or
/// `batch_input`): `{valid}` per item. Signatures are refused: no key type
/// here signs.
pub async fn verify(
    engine: &TransitEngine,
    view: &View,
    name: &str,
    url_algorithm: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let alg = Algorithm::of_request(url_algorithm, body, &["hash_algorithm", "algorithm"])?;
    let items = input::items(body)?;
    if let Items::Single(_) = items {
        // Checked before the key lookup so the message is about the request.
        if input::str_field(body, "hmac")?.is_none()
            && input::str_field(body, "signature")?.is_none()
        {
            return Err(TransitError::bad("missing 'hmac' or 'signature' to verify").into());
        }
    }
    let policy = existing(engine, view, name).await?;
    let mut s = Scratch::default();
    Ok(batch::run(items, body, |item| {
        verify_item(&policy, alg, item, &mut s)
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let mut out = Vec::new();
        digest(
            Algorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            hex::encode(&out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        digest(
            Algorithm::Sha512,
            b"Jefe",
            b"what do ya want for nothing?",
            &mut out,
        )
        .unwrap();
        assert!(hex::encode(&out).starts_with("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd6"));
        digest(
            Algorithm::Sha384,
            b"Jefe",
            b"what do ya want for nothing?",
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 48);
        digest(
            Algorithm::Sha224,
            b"Jefe",
            b"what do ya want for nothing?",
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 28);
    }

    #[test]
    fn algorithm_from_url_then_body() {
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"algorithm": "sha2-512"}"#).unwrap();
        assert_eq!(
            Algorithm::of_request(Some("sha2-384"), &body, &["algorithm"]).unwrap(),
            Algorithm::Sha384
        );
        assert_eq!(
            Algorithm::of_request(None, &body, &["algorithm"]).unwrap(),
            Algorithm::Sha512
        );
        assert_eq!(
            Algorithm::of_request(None, &Map::new(), &["algorithm"]).unwrap(),
            Algorithm::Sha256
        );
        assert!(Algorithm::of_request(Some("md5"), &body, &["algorithm"]).is_err());
    }
}
