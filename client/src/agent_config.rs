//! The handover from `cairn-injector` to `cairn-agent`: what the agent
//! renders, where, and how it logs in.
//!
//! The injector reads a pod's annotations, validates them and writes one
//! [`AgentConfig`] as JSON into the agent container's environment variable
//! [`ENV_VAR`] (`CAIRN_AGENT_CONFIG`). The agent parses it with
//! [`AgentConfig::from_json`], which validates it again, so a config that
//! reached a container is always one the agent can act on.
//!
//! # Files
//!
//! Each [`FileSpec`] becomes one file under [`AgentConfig::output_dir`]
//! (`/cairn/secrets`), written atomically (temporary file and rename) with the
//! file's [`mode`](FileSpec::mode). Its content is, in order of precedence:
//!
//! - with a [`template`](FileSpec::template): the minijinja template rendered
//!   with the context described below;
//! - with a [`key`](FileSpec::key): that one field of the secret's fields,
//!   written as it is (a string verbatim, anything else as JSON);
//! - otherwise the secret's fields in [`format`](FileSpec::format).
//!
//! "The secret's fields" are `data.data` of a KV version 2 read (the response
//! has `data.data` and `data.metadata` objects) and `data` for every other
//! read (KV version 1, dynamic credentials).
//!
//! # Template context
//!
//! - `secret`: the `data` object of the read response of the file's secret
//!   path, as Vault templates see it in `.Data`: `{{ secret.data.password }}`
//!   for KV version 2, `{{ secret.username }}` for database credentials;
//! - `lease`: `{ "id": ..., "duration": <seconds>, "renewable": <bool> }` of
//!   the read response (`id` is an empty string for KV).
//!
//! Templates render with [`template_environment`] (feature `templates`):
//! undefined values are errors (a typo keeps the last good file instead of
//! writing an empty value), nothing is auto-escaped, and these helpers exist:
//!
//! - filter `json`: the value as compact JSON;
//! - filter `base64` / `base64_decode`: standard base64 with padding (the
//!   decoded bytes must be UTF-8);
//! - filter `env`: a map as `KEY='value'` lines, a single value as one
//!   single-quoted word (see [`env_quote`]);
//! - function `env(name)`: the agent's environment variable `name`, or an
//!   empty string.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The environment variable that carries the JSON config into the agent.
pub const ENV_VAR: &str = "CAIRN_AGENT_CONFIG";
/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Where the shared in-memory volume is mounted in the agent and the apps.
pub const OUTPUT_DIR: &str = "/cairn/secrets";
/// The projected service-account token (audience `cairn`) the agent logs in with.
pub const TOKEN_FILE: &str = "/var/run/secrets/cairn/token";
/// The mode of a rendered file when none is given: readable by the app
/// containers, which usually run under another user than the agent.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// Everything the agent needs to know, handed over as JSON in [`ENV_VAR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Schema version; always [`SCHEMA_VERSION`] for this crate.
    pub version: u32,
    /// Address of the Cairn core, e.g. `https://cairn.cairn-system.svc:8200`.
    pub cairn_addr: String,
    /// PEM file of the CA that signed the core's certificate; the system
    /// roots are used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Mount path of the Kubernetes auth method, without `auth/` (`kubernetes`).
    pub auth_mount: String,
    /// The role to log in with at `auth/<auth_mount>/login`; empty means
    /// none, and the core then uses the pod's identity role
    /// `<namespace>.<serviceAccount>` (kept by the operator).
    #[serde(default)]
    pub role: String,
    /// The projected service-account token file, [`TOKEN_FILE`].
    pub token_file: String,
    /// The directory the files are written to, [`OUTPUT_DIR`].
    pub output_dir: String,
    /// Whether the pod keeps an agent running after the first render.
    pub mode: AgentMode,
    /// Revoke the agent's token and leases when it stops (SIGTERM).
    pub revoke_on_shutdown: bool,
    /// The files to render, at least one.
    pub files: Vec<FileSpec>,
}

/// How the agent is deployed in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentMode {
    /// First render in an init container (or a native sidecar's startup),
    /// then a sidecar keeps the files current.
    Sidecar,
    /// Only the first render, in an init container (Jobs, short-lived pods).
    InitOnly,
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// File name relative to the output directory: `/`-separated components
    /// of letters, digits, `.`, `_` and `-`, none of them `.` or `..`.
    pub name: String,
    /// The secret path read for this file, e.g. `secret/data/app/db` or
    /// `database/creds/app`.
    pub path: String,
    /// Write only this field of the secret's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A minijinja template (see the module documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Format of the secret's fields when there is neither key nor template.
    #[serde(default)]
    pub format: FileFormat,
    /// Unix permission bits of the file (at most `0o777`).
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Run after each render that changed the file, as `sh -c <command>` in
    /// the agent's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

fn default_mode() -> u32 {
    DEFAULT_FILE_MODE
}

/// Output format of a file without key or template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// A JSON object.
    #[default]
    Json,
    /// `KEY='value'` lines (see [`env_quote`]); keys must be environment
    /// variable names.
    Env,
    /// Each value on its own line, strings verbatim.
    Raw,
    /// A YAML mapping.
    Yaml,
}

impl FileFormat {
    /// Parse a format name as written in an annotation.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(FileFormat::Json),
            "env" => Some(FileFormat::Env),
            "raw" => Some(FileFormat::Raw),
            "yaml" => Some(FileFormat::Yaml),
            _ => None,
        }
    }
}

/// Why a config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentConfigError {
    /// The JSON does not match the schema.
    #[error("invalid agent config JSON: {0}")]
    Json(String),
    /// The schema version is not [`SCHEMA_VERSION`].
    #[error("unsupported agent config version {0} (this agent reads version {SCHEMA_VERSION})")]
    Version(u32),
    /// A required string is empty.
    #[error("agent config field {0} is empty")]
    Empty(&'static str),
    /// There are no files to render.
    #[error("agent config lists no files")]
    NoFiles,
    /// A file name could escape the output directory or is malformed.
    #[error("file name {0:?} is not a relative path of letters, digits, '.', '_' and '-'")]
    FileName(String),
    /// Two files have the same name.
    #[error("file name {0:?} appears twice")]
    DuplicateFile(String),
    /// A secret path is empty or malformed.
    #[error("secret path {path:?} of file {file:?} is not valid")]
    SecretPath {
        /// The file's name.
        file: String,
        /// The path as given.
        path: String,
    },
    /// A file mode has bits beyond `0o777`.
    #[error("mode {mode:#o} of file {file:?} is not between 0 and 0777")]
    Mode {
        /// The file's name.
        file: String,
        /// The mode as given.
        mode: u32,
    },
    /// A file has both a key and a template.
    #[error("file {0:?} has both a key and a template")]
    KeyAndTemplate(String),
}

impl AgentConfig {
    /// Parse and validate the JSON found in [`ENV_VAR`].
    pub fn from_json(json: &str) -> Result<Self, AgentConfigError> {
        let config: AgentConfig =
            serde_json::from_str(json).map_err(|e| AgentConfigError::Json(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The config as compact JSON, the value of [`ENV_VAR`].
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Check everything the schema alone cannot (templates are checked by
    /// [`check_template`], which needs the `templates` feature).
    pub fn validate(&self) -> Result<(), AgentConfigError> {
        if self.version != SCHEMA_VERSION {
            return Err(AgentConfigError::Version(self.version));
        }
        for (field, value) in [
            ("cairn_addr", &self.cairn_addr),
            ("auth_mount", &self.auth_mount),
            ("token_file", &self.token_file),
            ("output_dir", &self.output_dir),
        ] {
            if value.trim().is_empty() {
                return Err(AgentConfigError::Empty(field));
            }
        }
        if self.files.is_empty() {
            return Err(AgentConfigError::NoFiles);
        }
        let mut seen = BTreeSet::new();
        for file in &self.files {
            file.validate()?;
            if !seen.insert(file.name.as_str()) {
                return Err(AgentConfigError::DuplicateFile(file.name.clone()));
            }
        }
        Ok(())
    }
}

impl FileSpec {
    fn validate(&self) -> Result<(), AgentConfigError> {
        if !is_valid_file_name(&self.name) {
            return Err(AgentConfigError::FileName(self.name.clone()));
        }
        if !is_valid_secret_path(&self.path) {
            return Err(AgentConfigError::SecretPath {
                file: self.name.clone(),
                path: self.path.clone(),
            });
        }
        if self.mode > 0o777 {
            return Err(AgentConfigError::Mode {
                file: self.name.clone(),
                mode: self.mode,
            });
        }
        if self.key.is_some() && self.template.is_some() {
            return Err(AgentConfigError::KeyAndTemplate(self.name.clone()));
        }
        Ok(())
    }
}

/// Whether `name` is a safe relative file name: `/`-separated components of
/// ASCII letters, digits, `.`, `_` and `-`, none empty, `.` or `..`, at most
/// 255 bytes in all.
pub fn is_valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// Whether `path` can be a secret path: non-empty, no leading `/`, no
/// whitespace or control characters, no empty, `.` or `..` segments.
pub fn is_valid_secret_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.chars().any(|c| c.is_whitespace() || c.is_control())
        && path
            .trim_end_matches('/')
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Whether `name` is a portable environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `value` as one POSIX shell word in single quotes (`'` becomes `'\''`), so
/// that `. file` and `set -a; . file` read back exactly `value`.
pub fn env_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(feature = "templates")]
mod templates;
#[cfg(feature = "templates")]
pub use templates::{check_template, template_environment, TemplateError, TEMPLATE_VARIABLES};

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig {
            version: SCHEMA_VERSION,
            cairn_addr: "https://cairn.cairn-system.svc:8200".into(),
            ca_file: Some("/etc/cairn/ca/ca.crt".into()),
            auth_mount: "kubernetes".into(),
            role: "web".into(),
            token_file: TOKEN_FILE.into(),
            output_dir: OUTPUT_DIR.into(),
            mode: AgentMode::Sidecar,
            revoke_on_shutdown: true,
            files: vec![FileSpec {
                name: "db.env".into(),
                path: "secret/data/web/db".into(),
                key: None,
                template: None,
                format: FileFormat::Env,
                mode: 0o400,
                command: None,
            }],
        }
    }

    #[test]
    fn round_trips_through_json() {
        let c = config();
        let json = c.to_json();
        assert!(json.contains(r#""mode":"sidecar""#), "{json}");
        assert!(json.contains(r#""format":"env""#), "{json}");
        assert_eq!(AgentConfig::from_json(&json).unwrap(), c);
    }

    #[test]
    fn defaults_apply_to_omitted_file_fields() {
        let json = r#"{"version":1,"cairn_addr":"https://c:8200","auth_mount":"kubernetes",
            "role":"r","token_file":"/t","output_dir":"/o","mode":"init-only",
            "revoke_on_shutdown":false,"files":[{"name":"a","path":"kv/a"}]}"#;
        let c = AgentConfig::from_json(json).unwrap();
        assert_eq!(c.mode, AgentMode::InitOnly);
        assert_eq!(c.files[0].mode, DEFAULT_FILE_MODE);
        assert_eq!(c.files[0].format, FileFormat::Json);
    }

    #[test]
    fn refuses_unknown_fields_and_versions() {
        let mut v: serde_json::Value = serde_json::from_str(&config().to_json()).unwrap();
        v["surprise"] = true.into();
        assert!(matches!(
            AgentConfig::from_json(&v.to_string()),
            Err(AgentConfigError::Json(_))
        ));
        let mut c = config();
        c.version = 2;
        assert_eq!(c.validate(), Err(AgentConfigError::Version(2)));
    }

    #[test]
    fn refuses_file_names_that_escape_the_directory() {
        for bad in [
            "",
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a b",
            ".",
            "x/",
            "ä",
        ] {
            let mut c = config();
            c.files[0].name = bad.into();
            assert_eq!(
                c.validate(),
                Err(AgentConfigError::FileName(bad.into())),
                "{bad:?}"
            );
        }
        for good in ["db.env", "tls/ca.crt", ".hidden", "a-b_c.1"] {
            assert!(is_valid_file_name(good), "{good}");
        }
    }

    #[test]
    fn refuses_duplicates_modes_and_key_with_template() {
        let mut c = config();
        c.files.push(c.files[0].clone());
        assert!(matches!(
            c.validate(),
            Err(AgentConfigError::DuplicateFile(_))
        ));
        let mut c = config();
        c.files[0].mode = 0o1777;
        assert!(matches!(c.validate(), Err(AgentConfigError::Mode { .. })));
        let mut c = config();
        c.files[0].key = Some("k".into());
        c.files[0].template = Some("{{ secret.data.k }}".into());
        assert!(matches!(
            c.validate(),
            Err(AgentConfigError::KeyAndTemplate(_))
        ));
        let mut c = config();
        c.files[0].path = "secret/../sys".into();
        assert!(matches!(
            c.validate(),
            Err(AgentConfigError::SecretPath { .. })
        ));
        let mut c = config();
        c.auth_mount = " ".into();
        assert_eq!(c.validate(), Err(AgentConfigError::Empty("auth_mount")));
        // No role: the core's identity role applies.
        let mut c = config();
        c.role = String::new();
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn env_quoting_reads_back_in_a_shell() {
        assert_eq!(env_quote("plain"), "'plain'");
        assert_eq!(env_quote("it's"), r"'it'\''s'");
        assert!(is_env_name("DB_PASSWORD") && is_env_name("_x1"));
        assert!(!is_env_name("1X") && !is_env_name("a-b") && !is_env_name(""));
    }
}
