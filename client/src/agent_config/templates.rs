//! The one minijinja environment of file templates, shared by the injector
//! (which checks templates at admission) and the agent (which renders them),
//! so a template that passes admission is one the agent can render.

use base64::Engine as _;
use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use super::{env_quote, is_env_name};

/// The variables a template may use: the secret's `data` and its lease.
pub const TEMPLATE_VARIABLES: [&str; 2] = ["secret", "lease"];

/// Instructions one render may run: generous for any secret file, finite so
/// that a template looping over `range()` cannot pin a CPU.
const RENDER_FUEL: u64 = 1_000_000;
/// Instructions of the admission dry run, where every value is undefined.
const CHECK_FUEL: u64 = 50_000;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not parse.
    #[error("template syntax error: {0}")]
    Syntax(String),
    /// The template reads a variable the agent does not provide.
    #[error("template uses unknown variable {0:?} (available: secret, lease)")]
    UnknownVariable(String),
    /// The template calls a filter, test or function that does not exist.
    #[error("template uses an unknown helper: {0}")]
    UnknownHelper(String),
}

/// The environment templates render in: strict undefined values, no
/// auto-escaping, bounded fuel, and the helpers `json`, `base64`,
/// `base64_decode` and `env` (filters) and `env(name)` (function).
pub fn template_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(RENDER_FUEL));
    // A file's last newline is part of its content (env files, PEM).
    // Building the default delimiters cannot fail; were it to, the default
    // syntax (trailing newline trimmed) is still a working one.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("json", json_filter);
    env.add_filter("base64", base64_filter);
    env.add_filter("base64_decode", base64_decode_filter);
    env.add_filter("env", env_filter);
    env.add_function("env", env_function);
    env
}

/// Check a template before it reaches an agent: it parses, reads no variable
/// but [`TEMPLATE_VARIABLES`] (and the environment's globals), and a dry run
/// with every value undefined finds no unknown filter, test or function.
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    let mut env = template_environment();
    {
        let template = env
            .template_from_str(source)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !TEMPLATE_VARIABLES.contains(&v.as_str()))
            .filter(|v| !env.globals().any(|(name, _)| name == v.as_str()))
            .collect();
        unknown.sort();
        if let Some(first) = unknown.into_iter().next() {
            return Err(TemplateError::UnknownVariable(first));
        }
    }
    // Helpers are looked up when they run, so only a render finds a
    // misspelt one. Every value is undefined here: other errors say nothing
    // about the template and are ignored, as is running out of fuel.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(CHECK_FUEL));
    let template = env
        .template_from_str(source)
        .map_err(|e| TemplateError::Syntax(describe(&e)))?;
    match template.render(minijinja::context! {}) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction
            ) =>
        {
            Err(TemplateError::UnknownHelper(describe(&e)))
        }
        _ => Ok(()),
    }
}

/// The error's message with its line, without minijinja's debug dump.
fn describe(e: &Error) -> String {
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    match e.line() {
        Some(line) => format!("{}{detail} (line {line})", e.kind()),
        None => format!("{}{detail}", e.kind()),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// A value as file text: strings verbatim, everything else as JSON.
fn plain(value: &Value) -> Result<String, Error> {
    match value.as_str() {
        Some(s) => Ok(s.to_owned()),
        None => json_filter(value.clone()),
    }
}

fn json_filter(value: Value) -> Result<String, Error> {
    serde_json::to_string(&value).map_err(|e| invalid(format!("cannot encode as JSON: {e}")))
}

fn base64_filter(value: Value) -> Result<String, Error> {
    Ok(base64::engine::general_purpose::STANDARD.encode(plain(&value)?))
}

fn base64_decode_filter(value: &str) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| invalid("base64_decode: the value is not valid base64"))?;
    String::from_utf8(bytes).map_err(|_| invalid("base64_decode: the decoded bytes are not UTF-8"))
}

fn env_filter(value: Value) -> Result<String, Error> {
    if value.kind() != ValueKind::Map {
        return Ok(env_quote(&plain(&value)?));
    }
    let mut out = String::new();
    for key in value.try_iter()? {
        let name = plain(&key)?;
        if !is_env_name(&name) {
            return Err(invalid(format!(
                "env: {name:?} is not an environment variable name"
            )));
        }
        let item = value.get_item(&key)?;
        out.push_str(&name);
        out.push('=');
        out.push_str(&env_quote(&plain(&item)?));
        out.push('\n');
    }
    Ok(out)
}

fn env_function(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::value::Serde;

    fn render(source: &str, secret: serde_json::Value) -> Result<String, Error> {
        let env = template_environment();
        let lease = serde_json::json!({"id": "", "duration": 0, "renewable": false});
        env.render_str(
            source,
            minijinja::context! {
                secret => Value::from(Serde(&secret)),
                lease => Value::from(Serde(&lease)),
            },
        )
    }

    #[test]
    fn renders_kv2_access_and_helpers() {
        let secret = serde_json::json!({"data": {"user": "app", "pass": "p'w"}, "metadata": {}});
        assert_eq!(
            render(
                "{{ secret.data.user }}:{{ secret.data.pass }}",
                secret.clone()
            )
            .unwrap(),
            "app:p'w"
        );
        assert_eq!(
            render("{{ secret.data | json }}", secret.clone()).unwrap(),
            r#"{"pass":"p'w","user":"app"}"#
        );
        assert_eq!(
            render("{{ secret.data.user | base64 }}", secret.clone()).unwrap(),
            "YXBw"
        );
        assert_eq!(
            render("{{ 'YXBw' | base64_decode }}", secret.clone()).unwrap(),
            "app"
        );
        assert_eq!(
            render("{{ secret.data | env }}", secret.clone()).unwrap(),
            "pass='p'\\''w'\nuser='app'\n"
        );
    }

    #[test]
    fn a_missing_key_is_an_error_not_an_empty_value() {
        let err = render("{{ secret.data.nope }}", serde_json::json!({"data": {}})).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError);
    }

    #[test]
    fn env_filter_refuses_bad_names() {
        let err = render("{{ secret | env }}", serde_json::json!({"a-b": "x"})).unwrap_err();
        assert!(err.to_string().contains("a-b"), "{err}");
    }

    #[test]
    fn check_accepts_good_templates() {
        for ok in [
            "{{ secret.data.password }}",
            "{% for k, v in secret.data | items %}{{ k }}={{ v }}\n{% endfor %}",
            "{{ secret.username }}:{{ lease.id }} {{ env('HOME') }} {{ secret | json }}",
            "{% if secret.data.x is defined %}{{ secret.data.x | base64 }}{% endif %}",
            "{% set u = secret.data.user %}{{ u }}",
        ] {
            assert_eq!(check_template(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn check_refuses_bad_templates() {
        assert!(matches!(
            check_template("{{ secret.data.password "),
            Err(TemplateError::Syntax(_))
        ));
        assert_eq!(
            check_template("{{ secrets.data.password }}"),
            Err(TemplateError::UnknownVariable("secrets".into()))
        );
        assert!(matches!(
            check_template("{{ secret.data.password | base64encode }}"),
            Err(TemplateError::UnknownHelper(_))
        ));
        assert!(matches!(
            check_template("{{ nosuch(secret) }}"),
            Err(TemplateError::UnknownVariable(_))
        ));
    }

    #[test]
    fn check_terminates_on_runaway_loops() {
        let runaway =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        assert_eq!(check_template(runaway), Ok(()));
    }
}
