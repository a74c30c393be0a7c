//! `random`, `random/<bytes>`, `random/<source>` and `random/<source>/<bytes>`:
//! high-quality random bytes, as hvac's `generate_random_bytes` asks for them.

use serde_json::{Map, Value};

use super::aead::random_bytes;
use super::error::TransitError;
use super::input::{self, B64};
use crate::engines::Response;
use base64::Engine as _;

/// Largest request, as in Vault.
pub const MAX_BYTES: i64 = 128 * 1024;

/// Answer a `random` request; `rest` is the path after `random/`, if any.
pub fn generate(rest: Option<&str>, body: &Map<String, Value>) -> Result<Response, TransitError> {
    // One URL segment is the byte count when it is a number, else the source
    // (Vault reads `random/32` and `random/platform` both ways).
    let (url_source, url_bytes) = match rest.filter(|r| !r.is_empty()) {
        None => (None, None),
        Some(r) => match r.split_once('/') {
            Some((source, bytes)) => (Some(source), Some(bytes)),
            None if r.bytes().all(|b| b.is_ascii_digit()) => (None, Some(r)),
            None => (Some(r), None),
        },
    };
    let bytes = match url_bytes {
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| TransitError::bad("error parsing url-set byte count"))?,
        None => input::int_field(body, "bytes")?.unwrap_or(32),
    };
    if bytes < 1 {
        return Err(TransitError::bad("\"bytes\" cannot be less than 1"));
    }
    if bytes > MAX_BYTES {
        return Err(TransitError::bad(format!(
            "\"bytes\" should be less than {MAX_BYTES}"
        )));
    }
    let source = match url_source {
        Some(s) => s,
        None => input::str_field(body, "source")?.unwrap_or("platform"),
    };
    match source {
        // No seal provides entropy here, so "all" is the platform source alone.
        "" | "platform" | "all" => {}
        "seal" => {
            return Err(TransitError::bad(
                "no seal entropy source is configured; use source \"platform\"",
            ))
        }
        other => {
            return Err(TransitError::bad(format!(
                "unsupported entropy source {other:?}; must be \"platform\" or \"seal\", or \"all\""
            )))
        }
    }
    let random = random_bytes(bytes as usize);
    let encoded = match input::str_field(body, "format")?.unwrap_or("base64") {
        "base64" | "" => B64.encode(&*random),
        "hex" => hex::encode(&*random),
        other => {
            return Err(TransitError::bad(format!(
                "unsupported encoding format {other:?}; must be \"hex\" or \"base64\""
            )))
        }
    };
    let mut out = Map::new();
    out.insert("random_bytes".into(), Value::String(encoded));
    Ok(Response::data(Value::Object(out)))
}
