//! Reading request fields the way Vault's field decoder does: numbers may come
//! as JSON numbers or numeric strings, booleans as `true` or `"true"`, version
//! lists as `[1, 2]`, `"1,2"` or `1`. Errors name the field, never its value.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::engines::fields::weak_int;
pub use crate::engines::fields::{bool_field, int_field};
use crate::engines::EngineError;

fn bad(field: &str, what: &str) -> EngineError {
    EngineError::BadRequest(format!(
        "invalid value for field {field:?}: expected {what}"
    ))
}

/// An optional non-negative integer field that must fit in `u32`.
pub fn u32_field(data: &Map<String, Value>, field: &str) -> Result<Option<u32>, EngineError> {
    match int_field(data, field).map_err(EngineError::from)? {
        None => Ok(None),
        Some(i) => u32::try_from(i)
            .map(Some)
            .map_err(|_| bad(field, "a non-negative integer")),
    }
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
            Err(crate::engines::fields::FieldError(_))
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
