//! Reading request fields the way Vault's field decoder does ("weak" decoding):
//! integers as JSON numbers or numeric strings, booleans as `true`, `"true"`
//! or `1`, lists as a JSON array or a comma-separated string, durations as
//! seconds or Go-style strings (`"1h30m"`). Every engine and auth method reads
//! its body through these, so a client sees the same leniency everywhere.
//!
//! Errors name the field and the expected shape, never the value (it may be
//! a secret).

use serde_json::{Map, Value};

/// A field had the wrong shape; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

fn bad(field: &str, what: &str) -> FieldError {
    FieldError(format!(
        "invalid value for field {field:?}: expected {what}"
    ))
}

/// A JSON value as an integer: a whole number, a float (truncated, as Go's
/// weak decoding does) or a string holding an integer.
pub fn weak_int(value: &Value) -> Option<i64> {
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

/// An optional string field, borrowed; `null` counts as absent.
pub fn str_field<'a>(
    data: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "a string")),
    }
}

/// An optional string field, owned; numbers and booleans are taken as their
/// text, as Vault's `TypeString` does.
pub fn string_field(data: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(bad(field, "a string")),
    }
}

/// An optional integer field; `null` counts as absent.
pub fn int_field(data: &Map<String, Value>, field: &str) -> Result<Option<i64>, FieldError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => weak_int(v)
            .map(Some)
            .ok_or_else(|| bad(field, "an integer")),
    }
}

/// An optional boolean field, as Go's `strconv.ParseBool` reads it.
pub fn bool_field(data: &Map<String, Value>, field: &str) -> Result<Option<bool>, FieldError> {
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

/// How a list field given as one string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneString {
    /// `"a, b"` is two items (Vault's `TypeCommaStringSlice`).
    SplitCommas,
    /// `"a, b"` is one item (statement lists, where commas belong to SQL).
    Whole,
}

/// An optional list of strings: a JSON array, or one string read as `one`
/// says. An empty string is the empty list.
pub fn list_field(
    data: &Map<String, Value>,
    field: &str,
    one: OneString,
) -> Result<Option<Vec<String>>, FieldError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(Vec::new())),
        Some(Value::String(s)) => Ok(Some(match one {
            OneString::SplitCommas => s
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
            OneString::Whole => vec![s.clone()],
        })),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_owned()),
                _ => Err(bad(field, "a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(field, "a list of strings")),
    }
}

/// An optional duration in whole seconds: a non-negative number, a digit
/// string or a Go-style string (`"90s"`, `"1h30m"`, `"2d"`).
pub fn duration_field(data: &Map<String, Value>, field: &str) -> Result<Option<i64>, FieldError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => crate::auth::token::DurationParam::parse(v)
            .map(|d| Some(d.0))
            .map_err(|_| bad(field, "a duration (seconds or a string like \"1h\")")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn weak_shapes_are_accepted() {
        let d = body(json!({
            "n": "42", "f": 2.9, "b": "t", "one": 1, "l": "a, b,,c", "w": "x, y",
            "a": ["p", " q "], "d": "1h30m", "ds": 90, "s": 7
        }));
        assert_eq!(int_field(&d, "n").unwrap(), Some(42));
        assert_eq!(int_field(&d, "f").unwrap(), Some(2));
        assert_eq!(bool_field(&d, "b").unwrap(), Some(true));
        assert_eq!(bool_field(&d, "one").unwrap(), Some(true));
        assert_eq!(
            list_field(&d, "l", OneString::SplitCommas).unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
        );
        assert_eq!(
            list_field(&d, "w", OneString::Whole).unwrap(),
            Some(vec!["x, y".to_owned()])
        );
        assert_eq!(
            list_field(&d, "a", OneString::SplitCommas).unwrap(),
            Some(vec!["p".to_owned(), "q".to_owned()])
        );
        assert_eq!(duration_field(&d, "d").unwrap(), Some(5400));
        assert_eq!(duration_field(&d, "ds").unwrap(), Some(90));
        assert_eq!(string_field(&d, "s").unwrap(), Some("7".to_owned()));
        assert_eq!(int_field(&d, "missing").unwrap(), None);
    }

    #[test]
    fn wrong_shapes_name_the_field_not_the_value() {
        let d = body(json!({"n": "hunter2", "b": "maybe", "l": [1], "d": "-5", "s": {}}));
        let e = int_field(&d, "n").unwrap_err();
        assert!(e.0.contains("\"n\"") && !e.0.contains("hunter2"), "{e}");
        assert!(bool_field(&d, "b").is_err());
        assert!(list_field(&d, "l", OneString::SplitCommas).is_err());
        assert!(duration_field(&d, "d").is_err());
        assert!(str_field(&d, "s").is_err());
    }
}
