//! Object metadata helpers: names, timestamps, and the per-kind normalisation the API server does on write.

use base64::Engine;
use rand::Rng;
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::resources::{Behaviour, ResourceType};

/// Now, as Kubernetes writes timestamps (`2026-11-22T09:30:00Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.name`, or `""`.
pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// `metadata`, created as an empty map when missing or not a map.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    match &mut obj["metadata"] {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made a map"),
    }
}

/// The `metadata.finalizers` list (empty when absent).
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A random suffix as the API server appends to `generateName`.
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Checks `name` is a DNS-1123 subdomain, as Kubernetes requires of most object names.
pub fn validate_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            kind,
            name,
            format!("metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ))
    }
}

/// Everything but `metadata` and `status`: what a generation bump compares.
pub fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// The object with `resourceVersion` removed and `managedFields` timestamps blanked: equal
/// values mean a write would change nothing, and the API server then skips it.
pub fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    v
}

/// Kind-specific normalisation and validation on every create and update.
pub fn normalise(rt: &ResourceType, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    match rt.behaviour {
        Behaviour::Secret => normalise_secret(rt, old, obj),
        Behaviour::Deployment | Behaviour::StatefulSet => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(Value::from(1));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn normalise_secret(
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let name = name_of(obj).to_string();
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("object is not a JSON object"));
    };
    if let Some(sd) = map.remove("stringData") {
        let Value::Object(sd) = sd else {
            return Err(ApiError::invalid(
                rt.kind,
                &name,
                "stringData: must be a map of strings",
            ));
        };
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if data.is_null() {
            *data = Value::Object(Map::new());
        }
        let Some(data) = data.as_object_mut() else {
            return Err(ApiError::invalid(
                rt.kind,
                &name,
                "data: must be a map of base64 strings",
            ));
        };
        for (k, v) in sd {
            let Value::String(s) = v else {
                return Err(ApiError::invalid(
                    rt.kind,
                    &name,
                    format!("stringData[{k}]: must be a string"),
                ));
            };
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
    let mut total = 0usize;
    if let Some(data) = map.get("data") {
        match data {
            Value::Null => {}
            Value::Object(d) => {
                for (k, v) in d {
                    let decoded = v
                        .as_str()
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .ok_or_else(|| ApiError::bad_request(format!("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at data[{k}]")))?;
                    total += decoded.len();
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    rt.kind,
                    &name,
                    "data: must be a map of base64 strings",
                ))
            }
        }
    }
    if total > 1024 * 1024 {
        return Err(ApiError::invalid(
            rt.kind,
            &name,
            "data: Too long: must have at most 1048576 bytes",
        ));
    }
    map.entry("type").or_insert_with(|| Value::from("Opaque"));
    if let Some(old) = old {
        if old.get("immutable") == Some(&Value::Bool(true)) {
            let same = old.get("data") == map.get("data")
                && old.get("type") == map.get("type")
                && map.get("immutable") == Some(&Value::Bool(true));
            if !same {
                return Err(ApiError::invalid(
                    rt.kind,
                    &name,
                    "data: Forbidden: field is immutable when `immutable` is set",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(validate_name("Secret", "db-creds.v1").is_ok());
        for bad in ["", "Upper", "-a", "a-", "a_b", &"a".repeat(254)] {
            assert!(validate_name("Secret", bad).is_err(), "{bad}");
        }
        assert!(generated_name("x-").starts_with("x-"));
        assert_eq!(generated_name("x-").len(), 7);
    }

    #[test]
    fn secret_string_data_is_folded_and_checked() {
        let rt = find("", "v1", "secrets").unwrap();
        let mut s =
            json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "y"}});
        normalise(rt, None, &mut s).unwrap();
        assert_eq!(
            s,
            json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eQ=="}, "type": "Opaque"})
        );
        let mut bad = json!({"metadata": {"name": "s"}, "data": {"a": "not base64!"}});
        assert_eq!(normalise(rt, None, &mut bad).unwrap_err().code, 400);
        let old = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "type": "Opaque", "immutable": true});
        let mut changed =
            json!({"metadata": {"name": "s"}, "data": {"a": "eQ=="}, "immutable": true});
        assert_eq!(
            normalise(rt, Some(&old), &mut changed).unwrap_err().code,
            422
        );
    }
}
