//! Reading request fields the way Vault's field decoder does: numbers may come
//! as JSON numbers or numeric strings, booleans as `true` or `"true"`, version
//! lists as `[1, 2]`, `"1,2"` or `1`. Errors name the field, never its value.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::engines::EngineError;

fn bad(field: &str, what: &str) -> EngineError {
    EngineError::BadRequest(format!(
        "invalid value for field {field:?}: expected {what}"
    ))
}

/// A JSON value as an integer: a whole number, a float (truncated, as Go's weak
/// decoding does) or a string holding an integer. `None` when it is neither.
fn weak_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < i64::MAX as f64)
                .map(|f| f.trunc() as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An optional integer field of the body; `null` counts as absent.
pub fn int_field(data: &Map<String, Value>, field: &str) -> Result<Option<i64>, EngineError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => weak_int(v)
            .map(Some)
            .ok_or_else(|| bad(field, "an integer")),
    }
}

/// An optional non-negative integer field that must fit in `u32`.
pub fn u32_field(data: &Map<String, Value>, field: &str) -> Result<Option<u32>, EngineError> {
    match int_field(data, field)? {
        None => Ok(None),
        Some(i) => u32::try_from(i)
            .map(Some)
            .map_err(|_| bad(field, "a non-negative integer")),
    }
}

/// An optional boolean field: `true`, `"true"`, `1`, `"1"`, ... as Go's
/// `strconv.ParseBool` accepts.
pub fn bool_field(data: &Map<String, Value>, field: &str) -> Result<Option<bool>, EngineError> {
    let parsed = match data.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Some(Value::String(s)) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
            _ => None,
        },
        Some(_) => None,
    };
    parsed.map(Some).ok_or_else(|| bad(field, "a boolean"))
}

/// The `versions` field of delete / undelete / destroy: a list of integers or
/// numeric strings, one integer, or a comma-separated string. Empty or missing
/// is refused, as Vault does.
pub fn versions_field(data: &Map<String, Value>) -> Result<Vec<u64>, EngineError> {
    const FIELD: &str = "versions";
    let to_version = |v: &Value| -> Result<u64, EngineError> {
        weak_int(v)
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| bad(FIELD, "a list of non-negative integers"))
    };
    let versions = match data.get(FIELD) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(to_version).collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| to_version(&Value::String(p.to_owned())))
            .collect::<Result<_, _>>()?,
        Some(v @ Value::Number(_)) => vec![to_version(v)?],
        Some(_) => return Err(bad(FIELD, "a list of non-negative integers")),
    };
    if versions.is_empty() {
        return Err(EngineError::BadRequest(
            "No version number provided".to_owned(),
        ));
    }
    Ok(versions)
}

/// An optional non-negative integer query parameter (`?version=2`).
pub fn query_u64(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, EngineError> {
    match query.get(name) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|i| u64::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| bad(name, "a non-negative integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn integers_are_weakly_decoded() {
        let b = body(json!({"a": 5, "b": "7", "c": 2.9, "d": "x", "e": null, "f": -1}));
        assert_eq!(int_field(&b, "a").unwrap(), Some(5));
        assert_eq!(int_field(&b, "b").unwrap(), Some(7));
        assert_eq!(int_field(&b, "c").unwrap(), Some(2));
        assert!(matches!(
            int_field(&b, "d"),
            Err(EngineError::BadRequest(_))
        ));
        assert_eq!(int_field(&b, "e").unwrap(), None);
        assert_eq!(int_field(&b, "missing").unwrap(), None);
        assert!(matches!(
            u32_field(&b, "f"),
            Err(EngineError::BadRequest(_))
        ));
    }

    #[test]
    fn booleans_follow_parse_bool() {
        let b = body(json!({"a": true, "b": "false", "c": 1, "d": "yes"}));
        assert_eq!(bool_field(&b, "a").unwrap(), Some(true));
        assert_eq!(bool_field(&b, "b").unwrap(), Some(false));
        assert_eq!(bool_field(&b, "c").unwrap(), Some(true));
        assert!(bool_field(&b, "d").is_err());
    }

    #[test]
    fn versions_accept_vaults_shapes() {
        assert_eq!(
            versions_field(&body(json!({"versions": [1, "2"]}))).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            versions_field(&body(json!({"versions": "3, 4"}))).unwrap(),
            vec![3, 4]
        );
        assert_eq!(
            versions_field(&body(json!({"versions": 5}))).unwrap(),
            vec![5]
        );
        for empty in [json!({}), json!({"versions": []}), json!({"versions": ""})] {
            match versions_field(&body(empty)) {
                Err(EngineError::BadRequest(m)) => assert_eq!(m, "No version number provided"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(versions_field(&body(json!({"versions": [-1]}))).is_err());
        assert!(versions_field(&body(json!({"versions": {"a": 1}}))).is_err());
    }

    #[test]
    fn query_integers() {
        let q: HashMap<String, String> = [
            ("version".to_owned(), "3".to_owned()),
            ("bad".to_owned(), "x".to_owned()),
        ]
        .into();
        assert_eq!(query_u64(&q, "version").unwrap(), Some(3));
        assert_eq!(query_u64(&q, "depth").unwrap(), None);
        assert!(query_u64(&q, "bad").is_err());
    }
}
