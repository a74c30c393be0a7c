//! Parameters of `auth/token/create`, parsed from the request body as Vault does.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A duration given as seconds (number or numeric string) or a Go-style string
/// (`"1h30m"`, `"10s"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationParam(pub i64);

impl DurationParam {
    /// Parse Vault's duration forms; the message says what was wrong.
    pub fn parse(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(DurationParam(0)),
            Value::Number(n) => n
                .as_i64()
                .filter(|s| *s >= 0)
                .map(DurationParam)
                .ok_or_else(|| "duration must be a non-negative integer of seconds".to_owned()),
            Value::String(s) => parse_duration_str(s).map(DurationParam),
            _ => Err("duration must be a number of seconds or a string like \"1h\"".to_owned()),
        }
    }
}

/// `"90"`, `"90s"`, `"1h30m"`, `"2d"` -> seconds.
pub fn parse_duration_str(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = s.parse::<i64>() {
        return if n >= 0 {
            Ok(n)
        } else {
            Err(format!("invalid duration {s:?}"))
        };
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let value: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        let secs = match unit.as_str() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            "d" => value * 86400.0,
            _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
        };
        total = total.saturating_add(secs as i64);
    }
    if !num.is_empty() {
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    Ok(total)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DurationParam, D::Error> {
    let v = Value::deserialize(d)?;
    DurationParam::parse(&v).map_err(serde::de::Error::custom)
}

fn de_policies<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    // Vault accepts a list or a comma-separated string.
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.trim().to_owned()),
                _ => Err(serde::de::Error::custom("policies must be strings")),
            })
            .collect(),
        _ => Err(serde::de::Error::custom(
            "policies must be a list of strings",
        )),
    }
}

fn de_bool_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a boolean")),
        _ => Err(serde::de::Error::custom("expected a boolean")),
    }
}

fn de_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("expected an integer")),
        Value::String(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom("expected an integer")),
        _ => Err(serde::de::Error::custom("expected an integer")),
    }
}

/// Body of `auth/token/create` (and `create-orphan`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateParams {
    /// Requested token value (root only), e.g. for `--dev-root-token-id`.
    pub id: Option<String>,
    #[serde(deserialize_with = "de_policies")]
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    #[serde(deserialize_with = "de_bool_opt")]
    pub no_parent: Option<bool>,
    #[serde(deserialize_with = "de_bool_opt")]
    pub no_default_policy: Option<bool>,
    #[serde(deserialize_with = "de_bool_opt")]
    pub renewable: Option<bool>,
    #[serde(deserialize_with = "de_duration")]
    pub ttl: DurationParam,
    #[serde(deserialize_with = "de_duration")]
    pub explicit_max_ttl: DurationParam,
    #[serde(deserialize_with = "de_duration")]
    pub period: DurationParam,
    pub display_name: Option<String>,
    #[serde(deserialize_with = "de_i64")]
    pub num_uses: i64,
    #[serde(rename = "type")]
    pub token_type: Option<String>,
    /// Accepted for compatibility; Cairn has no identity store yet.
    pub entity_alias: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_str("90").unwrap(), 90);
        assert_eq!(parse_duration_str("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration_str("10s").unwrap(), 10);
        assert_eq!(parse_duration_str("2d").unwrap(), 172800);
        assert_eq!(parse_duration_str("1500ms").unwrap(), 1);
        assert!(parse_duration_str("5x").is_err());
        assert!(parse_duration_str("5").is_ok());
        assert!(parse_duration_str("h").is_err());
        assert_eq!(DurationParam::parse(&json!(30)).unwrap().0, 30);
        assert!(DurationParam::parse(&json!(-3)).is_err());
    }

    #[test]
    fn create_params_accept_vault_shapes() {
        let p: CreateParams = serde_json::from_value(json!({
            "policies": "a, b", "ttl": "1h", "num_uses": "3", "renewable": "false", "meta": {"k": "v"}
        }))
        .unwrap();
        assert_eq!(p.policies, vec!["a", "b"]);
        assert_eq!(p.ttl.0, 3600);
        assert_eq!(p.num_uses, 3);
        assert_eq!(p.renewable, Some(false));
    }
}
