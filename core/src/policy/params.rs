//! Enforcement of `allowed_parameters`, `denied_parameters` and
//! `required_parameters` against a request body, with Vault's semantics.

use serde_json::{Map, Value};

use super::rule::{ParameterValues, Permissions};

impl Permissions {
    /// Whether a request carrying `data` passes this rule's parameter
    /// constraints. Vault applies this to read, create, update and patch
    /// requests only; the caller decides when to ask.
    ///
    /// Order, as Vault's: every required parameter must be present; an empty
    /// body then passes; a denied parameter (or `*` in `denied_parameters`)
    /// fails; with `allowed_parameters` set, every parameter must be listed
    /// (or `*` listed) with an allowed value.
    pub fn parameters_allowed(&self, data: &Map<String, Value>) -> bool {
        for required in &self.required_parameters {
            if !data.contains_key(&required.to_lowercase()) {
                return false;
            }
        }
        if data.is_empty() {
            return true;
        }
        if let Some(denied) = self.denied_parameters.as_ref().filter(|d| !d.is_empty()) {
            if denied.contains_key("*") {
                return false;
            }
            for (name, value) in data {
                if let Some(list) = lookup(denied, name) {
                    if value_denied(value, list) {
                        return false;
                    }
                }
            }
        }
        let Some(allowed) = self.allowed_parameters.as_ref().filter(|a| !a.is_empty()) else {
            return true;
        };
        let allow_all = allowed.contains_key("*");
        if allow_all && allowed.len() == 1 {
            return true;
        }
        data.iter()
            .all(|(name, value)| match lookup(allowed, name) {
                Some(list) => value_allowed(value, list),
                None => allow_all,
            })
    }
}

/// Parameter keys are stored lowercased, and request keys are compared
/// lowercased, as Vault does.
fn lookup<'a>(map: &'a ParameterValues, name: &str) -> Option<&'a Vec<Value>> {
    match map.get(name) {
        Some(list) => Some(list),
        None => map.get(&name.to_lowercase()),
    }
}

fn value_allowed(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    // A list value passes when each element is allowed; a string may be a
    // comma-separated list, and is judged element by element likewise.
    match value {
        Value::Array(items) => items.iter().all(|v| in_list(v, list)),
        Value::String(s) if s.contains(',') => comma_items(s).all(|v| in_list(&v, list)),
        _ => false,
    }
}

fn value_denied(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|v| in_list(v, list)),
        Value::String(s) if s.contains(',') => comma_items(s).any(|v| in_list(&v, list)),
        _ => false,
    }
}

fn comma_items(s: &str) -> impl Iterator<Item = Value> + '_ {
    s.split(',')
        .map(|item| Value::String(item.trim().to_string()))
}

fn in_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|allowed| values_match(allowed, value))
}

/// A policy value matches a request value when equal; a policy string may
/// glob with a leading and/or trailing `*`; numbers compare by value, so
/// `1` in HCL matches `1.0` in JSON.
fn values_match(pattern: &Value, value: &Value) -> bool {
    match (pattern, value) {
        (Value::String(p), Value::String(v)) => glob_match(p, v),
        (Value::Number(p), Value::Number(v)) => match (p.as_f64(), v.as_f64()) {
            (Some(p), Some(v)) => p == v,
            _ => p == v,
        },
        _ => pattern == value,
    }
}

/// Vault's `GlobbedStringsMatch`: `*x*` contains, `*x` suffix, `x*` prefix;
/// a lone `*` is literal.
fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    let leading = pattern.starts_with('*');
    let trailing = pattern.ends_with('*');
    match (leading, trailing) {
        (true, true) => value.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => value.ends_with(&pattern[1..]),
        (false, true) => value.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::super::capabilities::Capabilities;
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn perms() -> Permissions {
        Permissions {
            capabilities: Capabilities::UPDATE,
            ..Permissions::default()
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn params(pairs: &[(&str, Vec<Value>)]) -> Option<ParameterValues> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn no_constraints_allow_anything() {
        assert!(perms().parameters_allowed(&body(json!({"a": 1, "b": "x"}))));
    }

    #[test]
    fn allowed_parameters_restrict_names_and_values() {
        let mut p = perms();
        p.allowed_parameters =
            params(&[("ttl", vec![]), ("role", vec![json!("web-*"), json!("db")])]);
        assert!(p.parameters_allowed(&body(json!({"ttl": "1h"}))));
        assert!(p.parameters_allowed(&body(json!({"TTL": "1h", "role": "web-1"}))));
        assert!(p.parameters_allowed(&body(json!({"role": "db"}))));
        assert!(!p.parameters_allowed(&body(json!({"role": "admin"}))));
        assert!(!p.parameters_allowed(&body(json!({"other": 1}))));
        assert!(p.parameters_allowed(&body(json!({"role": ["db", "web-2"]}))));
        assert!(!p.parameters_allowed(&body(json!({"role": ["db", "admin"]}))));
        assert!(p.parameters_allowed(&body(json!({"role": "db, web-x"}))));
        assert!(p.parameters_allowed(&Map::new()));
    }

    #[test]
    fn star_allows_any_other_name() {
        let mut p = perms();
        p.allowed_parameters = params(&[("*", vec![]), ("role", vec![json!("db")])]);
        assert!(p.parameters_allowed(&body(json!({"anything": 1}))));
        assert!(!p.parameters_allowed(&body(json!({"role": "web"}))));
    }

    #[test]
    fn denied_parameters_win_over_allowed() {
        let mut p = perms();
        p.allowed_parameters = params(&[("*", vec![])]);
        p.denied_parameters = params(&[("policies", vec![json!("root")]), ("secret", vec![])]);
        assert!(p.parameters_allowed(&body(json!({"policies": "dev"}))));
        assert!(!p.parameters_allowed(&body(json!({"policies": "root"}))));
        assert!(!p.parameters_allowed(&body(json!({"policies": ["dev", "root"]}))));
        assert!(!p.parameters_allowed(&body(json!({"policies": "dev,root"}))));
        assert!(!p.parameters_allowed(&body(json!({"secret": 1}))));
        p.denied_parameters = params(&[("*", vec![])]);
        assert!(!p.parameters_allowed(&body(json!({"a": 1}))));
        assert!(p.parameters_allowed(&Map::new()));
    }

    #[test]
    fn required_parameters_must_be_present() {
        let mut p = perms();
        p.required_parameters = vec!["Name".into()];
        assert!(!p.parameters_allowed(&Map::new()));
        assert!(!p.parameters_allowed(&body(json!({"other": 1}))));
        assert!(p.parameters_allowed(&body(json!({"name": 1}))));
    }

    #[test]
    fn numbers_compare_by_value_and_globs_follow_vault() {
        let mut p = perms();
        p.allowed_parameters = params(&[("n", vec![json!(1)])]);
        assert!(p.parameters_allowed(&body(json!({"n": 1.0}))));
        assert!(!p.parameters_allowed(&body(json!({"n": 2}))));
        assert!(glob_match("*mid*", "amidb"));
        assert!(glob_match("*end", "the-end"));
        assert!(!glob_match("*end", "ending"));
        assert!(glob_match("*", "*"));
        assert!(!glob_match("*", "x"));
    }
}
