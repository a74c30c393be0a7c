//! Reading request fields the way Vault's field decoder does (numbers as JSON
//! numbers or numeric strings, booleans as `true` or `"true"`), and base64
//! decoding into reusable buffers. Errors name the field, never its value.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

pub use crate::engines::fields::{bool_field, int_field, str_field};

use super::error::TransitError;

/// Standard alphabet, padding optional: what Vault's clients send.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet, padding optional: hvac's own examples encode with
/// `urlsafe_b64encode`, so accept it rather than fail on `-` and `_`.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What Vault writes: standard alphabet with padding.
pub const B64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn bad(field: &str, what: &str) -> TransitError {
    TransitError::bad(format!(
        "invalid value for field {field:?}: expected {what}"
    ))
}

/// Decode base64 `text` into `out` (cleared first). `Err(())` when it is
/// neither standard nor URL-safe base64.
pub fn decode_into(text: &str, out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    if STANDARD.decode_vec(text.trim(), out).is_ok() {
        return Ok(());
    }
    out.clear();
    URL_SAFE.decode_vec(text.trim(), out).map_err(|_| ())
}

/// An optional base64 field decoded into `out`; `Ok(false)` (and `out`
/// empty) when the field is absent, `null` or the empty string.
pub fn b64_field(
    data: &Map<String, Value>,
    field: &str,
    out: &mut Vec<u8>,
) -> Result<bool, TransitError> {
    out.clear();
    match str_field(data, field)? {
        None | Some("") => Ok(false),
        Some(text) => {
            decode_into(text, out)
                .map_err(|_| TransitError::bad(format!("failed to base64-decode {field}")))?;
            Ok(true)
        }
    }
}

/// Whether a duration field (`auto_rotate_period`) is absent or zero: Cairn
/// does not rotate keys on a timer, so anything else is refused by the caller.
pub fn duration_is_zero(data: &Map<String, Value>, field: &str) -> Result<bool, TransitError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Number(n)) => Ok(n.as_f64() == Some(0.0)),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(true);
            }
            if let Ok(n) = s.parse::<i64>() {
                return Ok(n == 0);
            }
            humantime::parse_duration(s)
                .map(|d| d.is_zero())
                .map_err(|_| bad(field, "a duration"))
        }
        Some(_) => Err(bad(field, "a duration")),
    }
}

/// How a request carries its items: the body itself, or `batch_input`.
pub enum Items<'a> {
    /// No `batch_input`: the body is the one item, and an error fails the request.
    Single(&'a Map<String, Value>),
    /// `batch_input`: each item succeeds or fails on its own.
    Batch(Vec<&'a Map<String, Value>>),
}

/// Read `batch_input` (a list of objects) if present.
pub fn items(body: &Map<String, Value>) -> Result<Items<'_>, TransitError> {
    match body.get("batch_input") {
        None | Some(Value::Null) => Ok(Items::Single(body)),
        Some(Value::Array(list)) => {
            if list.is_empty() {
                return Err(TransitError::bad("missing batch input to process"));
            }
            list.iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err(TransitError::bad(
                        "failed to parse batch input: every item must be an object",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Items::Batch)
        }
        Some(_) => Err(bad("batch_input", "a list of objects")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn base64_accepts_both_alphabets_and_optional_padding() {
        let mut out = Vec::new();
        for text in ["aGk/Pz8=", "aGk/Pz8", "aGk_Pz8="] {
            assert!(decode_into(text, &mut out).is_ok(), "{text}");
            assert_eq!(out, b"hi???");
        }
        assert!(decode_into("not base64!", &mut out).is_err());
    }

    #[test]
    fn b64_field_errors_name_the_field_not_the_value() {
        let mut out = Vec::new();
        let body = obj(json!({"plaintext": "%%secret%%"}));
        let err = b64_field(&body, "plaintext", &mut out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plaintext") && !err.contains("secret"),
            "{err}"
        );
        assert!(!b64_field(&obj(json!({"context": ""})), "context", &mut out).unwrap());
    }

    #[test]
    fn weak_fields() {
        let body =
            obj(json!({"a": "3", "b": 2.0, "c": "true", "d": 0, "e": "x", "p": "0s", "q": "1h"}));
        assert_eq!(int_field(&body, "a").unwrap(), Some(3));
        assert_eq!(int_field(&body, "b").unwrap(), Some(2));
        assert_eq!(bool_field(&body, "c").unwrap(), Some(true));
        assert_eq!(bool_field(&body, "d").unwrap(), Some(false));
        assert!(int_field(&body, "e").is_err());
        assert!(duration_is_zero(&body, "p").unwrap());
        assert!(!duration_is_zero(&body, "q").unwrap());
        assert!(duration_is_zero(&body, "missing").unwrap());
    }

    #[test]
    fn batch_input_shapes() {
        assert!(matches!(
            items(&obj(json!({"plaintext": ""}))).unwrap(),
            Items::Single(_)
        ));
        match items(&obj(json!({"batch_input": [{}, {}]}))).unwrap() {
            Items::Batch(v) => assert_eq!(v.len(), 2),
            Items::Single(_) => panic!("single"),
        }
        assert!(items(&obj(json!({"batch_input": []}))).is_err());
        assert!(items(&obj(json!({"batch_input": [1]}))).is_err());
        assert!(items(&obj(json!({"batch_input": "x"}))).is_err());
    }
}
