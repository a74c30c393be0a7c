//! Parsing of policy documents, HCL or JSON, into [`Policy`] values.
//!
//! Both syntaxes are first reduced to a list of stanzas (a pattern and its
//! key/value entries as JSON values), so the validation of a stanza is
//! written once and reports the same errors for either form.

use std::collections::BTreeSet;
use std::time::Duration;

use hcl::{Body, Expression, ObjectKey, Structure, TemplateExpr};
use serde_json::{Map, Number, Value};

use super::capabilities::Capabilities;
use super::limits;
use super::rule::{ParameterValues, PathRule, Permissions, Policy};
use super::PolicyError;

/// One `path` stanza before validation.
struct Stanza {
    pattern: String,
    entries: Vec<(String, Value)>,
}

/// Parses a policy document. JSON is recognised by a first non-blank `{`
/// (an HCL body cannot start with one); anything else is HCL.
pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let stanzas = if text.trim_start().starts_with('{') {
        json_stanzas(text)?
    } else {
        hcl_stanzas(text)?
    };
    let paths = stanzas
        .into_iter()
        .map(build_rule)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        name: name.to_string(),
        raw: text.to_string(),
        paths,
    })
}

/// Longest parser message passed on: hcl-rs quotes the offending line, which
/// in hostile input can be megabytes long.
const MAX_MESSAGE_LEN: usize = 512;

fn syntax(message: impl Into<String>) -> PolicyError {
    let mut message = message.into();
    if message.len() > MAX_MESSAGE_LEN {
        let mut cut = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" ...");
    }
    PolicyError::Syntax(message)
}

// ---------------------------------------------------------------- HCL

fn hcl_stanzas(text: &str) -> Result<Vec<Stanza>, PolicyError> {
    limits::check_hcl(text)?;
    let body = hcl::parse(text).map_err(|err| {
        // hcl-rs opens its message with a ` --> ` location marker.
        let message = err.to_string();
        syntax(message.trim_start().trim_start_matches("--> "))
    })?;
    let mut stanzas = Vec::new();
    for structure in body.into_inner() {
        match structure {
            // Vault accepts a `name` attribute and ignores it: the name
            // comes from the API path.
            Structure::Attribute(attr) if attr.key.as_str() == "name" => {}
            Structure::Attribute(attr) => return Err(unknown_top_level(attr.key.as_str())),
            Structure::Block(block) => {
                if block.identifier.as_str() != "path" {
                    return Err(unknown_top_level(block.identifier.as_str()));
                }
                let pattern = match block.labels.as_slice() {
                    [label] => label.as_str().to_string(),
                    _ => {
                        return Err(syntax(format!(
                            "a path block takes exactly one quoted pattern, found {}",
                            block.labels.len()
                        )))
                    }
                };
                let entries = hcl_entries(&pattern, block.body)?;
                stanzas.push(Stanza { pattern, entries });
            }
        }
    }
    Ok(stanzas)
}

fn unknown_top_level(key: &str) -> PolicyError {
    PolicyError::UnknownKey {
        context: "policy".to_string(),
        key: key.to_string(),
    }
}

fn hcl_entries(pattern: &str, body: Body) -> Result<Vec<(String, Value)>, PolicyError> {
    let mut entries = Vec::new();
    for structure in body.into_inner() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.into_inner();
                let value =
                    expr_to_json(attr.expr).map_err(|reason| invalid(pattern, &key, reason))?;
                entries.push((key, value));
            }
            // `allowed_parameters { "x" = [] }` is the block spelling of
            // `allowed_parameters = { "x" = [] }`, which Vault accepts too.
            Structure::Block(block) if block.labels.is_empty() => {
                let key = block.identifier.into_inner();
                let mut object = Map::new();
                for inner in block.body.into_inner() {
                    match inner {
                        Structure::Attribute(attr) => {
                            let value = expr_to_json(attr.expr)
                                .map_err(|reason| invalid(pattern, &key, reason))?;
                            object.insert(attr.key.into_inner(), value);
                        }
                        Structure::Block(nested) => {
                            return Err(invalid(
                                pattern,
                                &key,
                                format!("unexpected block {:?}", nested.identifier.as_str()),
                            ))
                        }
                    }
                }
                entries.push((key, Value::Object(object)));
            }
            Structure::Block(block) => {
                return Err(PolicyError::UnknownKey {
                    context: format!("path {pattern:?}"),
                    key: block.identifier.into_inner(),
                })
            }
        }
    }
    Ok(entries)
}

/// Converts a literal HCL expression to JSON. Policies are data: variables,
/// function calls and operators are refused rather than evaluated.
fn expr_to_json(expr: Expression) -> Result<Value, String> {
    Ok(match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(b),
        Expression::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("number {n} is out of range"))?
            }
        }
        Expression::String(s) => Value::String(s),
        // Templates are refused before parsing; should one get through,
        // its text is taken literally, as Vault's HCL 1 has no interpolation.
        Expression::TemplateExpr(template) => Value::String(match *template {
            TemplateExpr::QuotedString(s) => s,
            TemplateExpr::Heredoc(heredoc) => heredoc.template,
        }),
        Expression::Array(items) => Value::Array(
            items
                .into_iter()
                .map(expr_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                let key = match key {
                    ObjectKey::Identifier(id) => id.into_inner(),
                    ObjectKey::Expression(Expression::String(s)) => s,
                    ObjectKey::Expression(Expression::TemplateExpr(t)) => match *t {
                        TemplateExpr::QuotedString(s) => s,
                        TemplateExpr::Heredoc(h) => h.template,
                    },
                    _ => return Err("object keys must be names or quoted strings".to_string()),
                };
                map.insert(key, expr_to_json(value)?);
            }
            Value::Object(map)
        }
        Expression::Parenthesis(inner) => expr_to_json(*inner)?,
        _ => return Err("must be a literal value, not an expression".to_string()),
    })
}

// ---------------------------------------------------------------- JSON

fn json_stanzas(text: &str) -> Result<Vec<Stanza>, PolicyError> {
    let value: Value = serde_json::from_str(text).map_err(|err| syntax(err.to_string()))?;
    let Value::Object(top) = value else {
        return Err(syntax("a JSON policy must be an object"));
    };
    let mut stanzas = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "path" => json_paths(value, &mut stanzas)?,
            _ => return Err(unknown_top_level(&key)),
        }
    }
    Ok(stanzas)
}

/// `"path"` holds an object of pattern -> rule, or (HCL's JSON form of
/// repeated blocks) a list of such objects.
fn json_paths(value: Value, stanzas: &mut Vec<Stanza>) -> Result<(), PolicyError> {
    match value {
        Value::Object(patterns) => {
            for (pattern, rule) in patterns {
                let entries = json_entries(&pattern, rule)?;
                stanzas.push(Stanza { pattern, entries });
            }
            Ok(())
        }
        Value::Array(items) => items.into_iter().try_for_each(|item| match item {
            Value::Object(_) => json_paths(item, stanzas),
            _ => Err(syntax("\"path\" must map patterns to rules")),
        }),
        _ => Err(syntax("\"path\" must map patterns to rules")),
    }
}

fn json_entries(pattern: &str, rule: Value) -> Result<Vec<(String, Value)>, PolicyError> {
    match rule {
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Array(items) => {
            let mut entries = Vec::new();
            for item in items {
                entries.extend(json_entries(pattern, item)?);
            }
            Ok(entries)
        }
        _ => Err(PolicyError::InvalidPath {
            path: pattern.to_string(),
            reason: "the rule must be an object".to_string(),
        }),
    }
}

// ---------------------------------------------------------------- rules

fn invalid(pattern: &str, key: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError::InvalidValue {
        path: pattern.to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn build_rule(stanza: Stanza) -> Result<PathRule, PolicyError> {
    let written = stanza.pattern;
    // API paths start after the `/`, so a leading one in a policy is noise.
    let pattern = written.strip_prefix('/').unwrap_or(&written).to_string();
    let bad_path = |reason: &str| PolicyError::InvalidPath {
        path: written.clone(),
        reason: reason.to_string(),
    };
    if pattern.is_empty() {
        return Err(bad_path("the pattern is empty"));
    }
    if pattern.contains("{{") {
        return Err(bad_path(
            "templated policies are not supported (Cairn has no identity store)",
        ));
    }
    if pattern.contains("+*") {
        return Err(bad_path("invalid use of wildcards ('+*' is forbidden)"));
    }

    let mut seen = BTreeSet::new();
    let mut names: Vec<String> = Vec::new();
    let mut legacy: Option<String> = None;
    let mut perms = Permissions::default();
    for (key, value) in stanza.entries {
        if !seen.insert(key.clone()) {
            return Err(invalid(&written, &key, "given more than once"));
        }
        match key.as_str() {
            "capabilities" => names = string_list(&written, &key, value)?,
            "policy" => match value {
                Value::String(s) => legacy = Some(s),
                _ => return Err(invalid(&written, &key, "must be a string")),
            },
            "allowed_parameters" | "denied_parameters" => {
                let map = parameter_map(&written, &key, value)?;
                if key == "allowed_parameters" {
                    perms.allowed_parameters = Some(map);
                } else {
                    perms.denied_parameters = Some(map);
                }
            }
            "required_parameters" => {
                let list = string_list(&written, &key, value)?;
                if let Some(bad) = list.iter().find(|p| p.contains('*')) {
                    return Err(invalid(
                        &written,
                        &key,
                        format!("parameter {bad:?}: wildcards are not permitted here"),
                    ));
                }
                perms.required_parameters = list;
            }
            "min_wrapping_ttl" => perms.min_wrapping_ttl = ttl(&written, &key, &value)?,
            "max_wrapping_ttl" => perms.max_wrapping_ttl = ttl(&written, &key, &value)?,
            "comment" => {}
            // Accepting these silently would drop a control the author relies on.
            "mfa_methods" | "control_group" | "subscribe_event_types" => {
                return Err(invalid(&written, &key, "is not supported by Cairn"))
            }
            _ => {
                return Err(PolicyError::UnknownKey {
                    context: format!("path {written:?}"),
                    key,
                })
            }
        }
    }

    let mut capabilities = match legacy.as_deref() {
        None => Capabilities::NONE,
        Some("deny") => Capabilities::DENY,
        Some("read") => Capabilities::READ | Capabilities::LIST,
        Some("write") => write_capabilities(),
        Some("sudo") => write_capabilities() | Capabilities::SUDO,
        Some(other) => {
            return Err(PolicyError::InvalidLegacyPolicy {
                path: written.clone(),
                value: other.to_string(),
            })
        }
    };
    for name in &names {
        match Capabilities::from_name(name) {
            Some(cap) => capabilities |= cap,
            None => {
                return Err(PolicyError::InvalidCapability {
                    path: written.clone(),
                    capability: name.clone(),
                })
            }
        }
    }

    if let (Some(min), Some(max)) = (perms.min_wrapping_ttl, perms.max_wrapping_ttl) {
        if max < min {
            return Err(invalid(
                &written,
                "max_wrapping_ttl",
                "cannot be less than min_wrapping_ttl",
            ));
        }
    }

    // A deny stanza grants nothing and constrains nothing: keep only the deny.
    if capabilities.contains(Capabilities::DENY) {
        perms = Permissions {
            capabilities: Capabilities::DENY,
            ..Permissions::default()
        };
    } else {
        perms.capabilities = capabilities;
    }
    Ok(PathRule {
        pattern,
        permissions: perms,
    })
}

/// Vault's legacy `policy = "write"`.
fn write_capabilities() -> Capabilities {
    Capabilities::CREATE
        | Capabilities::READ
        | Capabilities::UPDATE
        | Capabilities::DELETE
        | Capabilities::LIST
}

fn string_list(pattern: &str, key: &str, value: Value) -> Result<Vec<String>, PolicyError> {
    let Value::Array(items) = value else {
        return Err(invalid(pattern, key, "must be a list of strings"));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            other => Err(invalid(
                pattern,
                key,
                format!("must be a list of strings, found {other}"),
            )),
        })
        .collect()
}

fn parameter_map(pattern: &str, key: &str, value: Value) -> Result<ParameterValues, PolicyError> {
    let mut out = ParameterValues::new();
    let objects = match value {
        Value::Object(map) => vec![map],
        // The JSON form of a repeated HCL block.
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                _ => Err(invalid(pattern, key, "must map parameter names to lists")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid(pattern, key, "must map parameter names to lists")),
    };
    for (name, values) in objects.into_iter().flatten() {
        if name.contains('*') && name != "*" {
            return Err(invalid(
                pattern,
                key,
                format!("parameter {name:?} cannot contain non-tail wildcards"),
            ));
        }
        if name.starts_with('/') {
            return Err(invalid(
                pattern,
                key,
                format!("parameter {name:?}: JSON-pointer parameter names are not supported"),
            ));
        }
        let list = match values {
            Value::Array(list) => list,
            _ => {
                return Err(invalid(
                    pattern,
                    key,
                    format!("parameter {name:?} must be a list of values"),
                ))
            }
        };
        out.insert(name.to_lowercase(), list);
    }
    Ok(out)
}

/// A wrapping TTL: whole seconds as a number, or a string in Vault's
/// duration syntax (`"300"`, `"90s"`, `"1h30m"`, `"2d"`). Zero means unset.
fn ttl(pattern: &str, key: &str, value: &Value) -> Result<Option<Duration>, PolicyError> {
    let duration = match value {
        Value::Number(n) => n.as_u64().map(Duration::from_secs).ok_or_else(|| {
            invalid(
                pattern,
                key,
                "must be a whole, non-negative number of seconds",
            )
        })?,
        Value::String(s) => parse_duration(s.trim())
            .ok_or_else(|| invalid(pattern, key, format!("invalid duration {s:?}")))?,
        _ => return Err(invalid(pattern, key, "must be a duration")),
    };
    Ok(Some(duration).filter(|d| !d.is_zero()))
}

/// Go's `time.ParseDuration` syntax plus Vault's bare seconds and `d` days.
fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return Some(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Some(days) = s.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        return days.checked_mul(86_400).map(Duration::from_secs);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
