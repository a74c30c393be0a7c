//! A file's content from a secret read: a template, one key, or the fields in
//! a format (`cairn_client::agent_config` documents the precedence).

use cairn_client::agent_config::{env_quote, is_env_name, FileFormat, FileSpec};
use minijinja::value::Serde;
use minijinja::Environment;
use serde_json::Value;

use crate::secret::SecretRead;

/// Why a file could not be rendered. Messages name keys and template
/// positions, never values.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template failed (syntax, an undefined value, a helper's error).
    #[error("template of {file:?} failed: {message}")]
    Template {
        /// The file's name.
        file: String,
        /// minijinja's description, without values.
        message: String,
    },
    /// The requested key is not among the secret's fields.
    #[error("key {key:?} of {file:?} is not in the secret at {path:?}")]
    MissingKey {
        /// The file's name.
        file: String,
        /// The key asked for.
        key: String,
        /// The secret path.
        path: String,
    },
    /// The secret's fields are not an object, so no format applies.
    #[error("the secret at {path:?} has no fields to write into {file:?}")]
    NotAnObject {
        /// The file's name.
        file: String,
        /// The secret path.
        path: String,
    },
    /// An env-format key is not an environment variable name.
    #[error("field {key:?} of the secret at {path:?} is not an environment variable name")]
    EnvName {
        /// The offending key.
        key: String,
        /// The secret path.
        path: String,
    },
}

/// The bytes of `spec`'s file for the secret `read`.
pub fn render(
    env: &Environment<'static>,
    spec: &FileSpec,
    read: &SecretRead,
) -> Result<Vec<u8>, RenderError> {
    if let Some(source) = &spec.template {
        return render_template(env, spec, source, read).map(String::into_bytes);
    }
    let fields = read.fields();
    if let Some(key) = &spec.key {
        return fields
            .get(key)
            .map(|v| plain(v).into_bytes())
            .ok_or_else(|| RenderError::MissingKey {
                file: spec.name.clone(),
                key: key.clone(),
                path: spec.path.clone(),
            });
    }
    let map = fields.as_object().ok_or_else(|| RenderError::NotAnObject {
        file: spec.name.clone(),
        path: spec.path.clone(),
    })?;
    let text = match spec.format {
        // Serialising a map of JSON values cannot fail.
        FileFormat::Json => serde_json::to_string_pretty(map).unwrap_or_default() + "\n",
        FileFormat::Env => env_lines(map, &spec.path)?,
        FileFormat::Raw => map.values().map(|v| plain(v) + "\n").collect(),
        FileFormat::Yaml => yaml_mapping(map),
    };
    Ok(text.into_bytes())
}

fn render_template(
    env: &Environment<'static>,
    spec: &FileSpec,
    source: &str,
    read: &SecretRead,
) -> Result<String, RenderError> {
    let failed = |e: minijinja::Error| RenderError::Template {
        file: spec.name.clone(),
        message: describe(&e),
    };
    let template = env.template_from_str(source).map_err(failed)?;
    let lease = read.lease_context();
    template
        .render(minijinja::context! {
            secret => minijinja::Value::from(Serde(&read.data)),
            lease => minijinja::Value::from(Serde(&lease)),
        })
        .map_err(failed)
}

/// minijinja's error kind, detail and line; its `Display` could carry a
/// source excerpt, which holds no values but is long.
fn describe(e: &minijinja::Error) -> String {
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    match e.line() {
        Some(line) => format!("{}{detail} (line {line})", e.kind()),
        None => format!("{}{detail}", e.kind()),
    }
}

/// A value as file text: strings verbatim, anything else as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn env_lines(map: &serde_json::Map<String, Value>, path: &str) -> Result<String, RenderError> {
    let mut out = String::new();
    for (key, value) in map {
        if !is_env_name(key) {
            return Err(RenderError::EnvName {
                key: key.clone(),
                path: path.to_owned(),
            });
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&env_quote(&plain(value)));
        out.push('\n');
    }
    Ok(out)
}

/// A YAML block mapping whose keys and values are JSON texts. YAML 1.2 is a
/// superset of JSON, so each scalar and nested value reads back exactly;
/// characters YAML does not allow unescaped are written as `\uXXXX`, which
/// JSON leaves raw. This avoids an unmaintained YAML emitter crate for what
/// is a flat map of strings in practice.
fn yaml_mapping(map: &serde_json::Map<String, Value>) -> String {
    if map.is_empty() {
        return "{}\n".to_owned();
    }
    let mut out = String::new();
    for (key, value) in map {
        out.push_str(&yaml_safe(&Value::String(key.clone()).to_string()));
        out.push_str(": ");
        out.push_str(&yaml_safe(&value.to_string()));
        out.push('\n');
    }
    out
}

/// Escape what YAML's `c-printable` excludes (DEL and C1 controls but NEL);
/// JSON already escaped the C0 controls and only strings can hold these.
fn yaml_safe(json: &str) -> String {
    json.chars()
        .map(|c| {
            let code = c as u32;
            if code == 0x7f || ((0x80..=0x9f).contains(&code) && code != 0x85) {
                format!("\\u{code:04x}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cairn_client::agent_config::{template_environment, DEFAULT_FILE_MODE};
    use serde_json::json;

    fn spec() -> FileSpec {
        FileSpec {
            name: "f".into(),
            path: "secret/data/app/db".into(),
            key: None,
            template: None,
            format: FileFormat::Json,
            mode: DEFAULT_FILE_MODE,
            command: None,
        }
    }

    fn kv2(fields: Value) -> SecretRead {
        SecretRead {
            data: json!({"data": fields, "metadata": {"version": 3}}),
            lease_id: String::new(),
            lease_duration: 0,
            renewable: false,
        }
    }

    fn text(spec: &FileSpec, read: &SecretRead) -> String {
        String::from_utf8(render(&template_environment(), spec, read).unwrap()).unwrap()
    }

    #[test]
    fn formats_the_fields() {
        let read = kv2(json!({"USER": "app", "PASS": "it's", "N": 5}));
        let mut s = spec();
        assert_eq!(
            serde_json::from_str::<Value>(&text(&s, &read)).unwrap(),
            json!({"USER": "app", "PASS": "it's", "N": 5})
        );
        s.format = FileFormat::Env;
        assert_eq!(text(&s, &read), "N='5'\nPASS='it'\\''s'\nUSER='app'\n");
        s.format = FileFormat::Raw;
        assert_eq!(text(&s, &read), "5\nit's\napp\n");
        s.format = FileFormat::Yaml;
        assert_eq!(
            text(&s, &read),
            "\"N\": 5\n\"PASS\": \"it's\"\n\"USER\": \"app\"\n"
        );
    }

    #[test]
    fn yaml_escapes_what_yaml_forbids() {
        let read = kv2(json!({"k": "a\u{7f}b\u{85}c\n"}));
        let mut s = spec();
        s.format = FileFormat::Yaml;
        assert_eq!(text(&s, &read), "\"k\": \"a\\u007fb\u{85}c\\n\"\n");
    }

    #[test]
    fn env_refuses_keys_that_are_not_names() {
        let mut s = spec();
        s.format = FileFormat::Env;
        let err = render(&template_environment(), &s, &kv2(json!({"a-b": "x"}))).unwrap_err();
        assert!(matches!(err, RenderError::EnvName { .. }), "{err}");
    }

    #[test]
    fn key_writes_one_field_verbatim() {
        let mut s = spec();
        s.key = Some("PASS".into());
        assert_eq!(text(&s, &kv2(json!({"PASS": "p\n"}))), "p\n");
        s.key = Some("nope".into());
        let err = render(&template_environment(), &s, &kv2(json!({"PASS": "p"}))).unwrap_err();
        assert!(matches!(err, RenderError::MissingKey { .. }));
    }

    #[test]
    fn templates_see_secret_and_lease() {
        let mut s = spec();
        s.template = Some("{{ secret.username }}:{{ secret.password }}@{{ lease.id }}\n".into());
        let read = SecretRead {
            data: json!({"username": "v-app", "password": "pw"}),
            lease_id: "database/creds/app/abc".into(),
            lease_duration: 60,
            renewable: true,
        };
        assert_eq!(text(&s, &read), "v-app:pw@database/creds/app/abc\n");
    }

    #[test]
    fn a_template_error_names_no_value() {
        let mut s = spec();
        s.template = Some("{{ secret.data.missing }}".into());
        let err = render(
            &template_environment(),
            &s,
            &kv2(json!({"password": "hunter2"})),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(err, RenderError::Template { .. }));
    }
}
