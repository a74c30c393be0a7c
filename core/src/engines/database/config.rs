//! Stored objects: connection configurations (`config/<name>`) and roles
//! (`roles/<name>`), their validation and their Vault-shaped read forms.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::DbError;
use crate::engines::fields::{bool_field, duration_field, list_field, string_field, OneString};

/// The only plugin Cairn implements.
pub const PLUGIN: &str = "postgresql-database-plugin";

/// A connection configuration. `password` is never returned by a read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub plugin_name: String,
    pub connection_url: String,
    pub username: String,
    pub password: String,
    pub allowed_roles: Vec<String>,
    pub max_open_connections: usize,
    pub verify_connection: bool,
    /// How passwords reach the database (Vault's `password_authentication`).
    #[serde(default)]
    pub password_authentication: PasswordAuthentication,
    /// PBKDF2 iterations of the SCRAM verifiers Cairn computes.
    #[serde(default = "default_scram_iterations")]
    pub scram_iterations: u32,
}

/// How a generated password is put into `{{password}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PasswordAuthentication {
    /// The plaintext; PostgreSQL hashes it (Vault's default).
    #[serde(rename = "password")]
    Password,
    /// A SCRAM-SHA-256 verifier computed by Cairn; PostgreSQL stores it as
    /// it is and never sees the plaintext. Cairn's default: see `scram.rs`.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

fn default_scram_iterations() -> u32 {
    super::scram::DEFAULT_ITERATIONS
}

/// A role: how to create, revoke and renew users on one connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub default_ttl: i64,
    pub max_ttl: i64,
}

/// Names of connections and roles: `[A-Za-z0-9_-]`, 1..=64 characters.
pub fn check_name(kind: &str, name: &str) -> Result<(), DbError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DbError::BadRequest(format!(
            "invalid {kind} name: only letters, digits, '_' and '-' are allowed"
        )))
    }
}

impl Connection {
    /// Apply a `config/<name>` write on top of `old` (or defaults).
    pub fn from_write(
        data: &Map<String, Value>,
        old: Option<Connection>,
    ) -> Result<Connection, DbError> {
        let mut c = old.unwrap_or(Connection {
            plugin_name: String::new(),
            connection_url: String::new(),
            username: String::new(),
            password: String::new(),
            allowed_roles: Vec::new(),
            max_open_connections: 4,
            verify_connection: true,
            password_authentication: PasswordAuthentication::default(),
            scram_iterations: default_scram_iterations(),
        });
        if let Some(p) = string_field(data, "plugin_name")? {
            c.plugin_name = p;
        }
        if c.plugin_name != PLUGIN {
            return Err(DbError::BadRequest(format!(
                "plugin_name must be {PLUGIN:?}"
            )));
        }
        if let Some(u) = string_field(data, "connection_url")? {
            c.connection_url = u;
        }
        if c.connection_url.is_empty() {
            return Err(DbError::BadRequest("connection_url is required".into()));
        }
        if let Some(u) = string_field(data, "username")? {
            c.username = u;
        }
        if let Some(p) = string_field(data, "password")? {
            c.password = p;
        }
        if let Some(r) = list_field(data, "allowed_roles", OneString::SplitCommas)? {
            c.allowed_roles = r;
        }
        if let Some(v) = bool_field(data, "verify_connection")? {
            c.verify_connection = v;
        }
        if let Some(a) = string_field(data, "password_authentication")? {
            c.password_authentication = match a.as_str() {
                "password" => PasswordAuthentication::Password,
                "scram-sha-256" => PasswordAuthentication::ScramSha256,
                _ => {
                    return Err(DbError::BadRequest(
                        "password_authentication must be \"password\" or \"scram-sha-256\"".into(),
                    ))
                }
            };
        }
        if let Some(v) = data.get("scram_iterations").filter(|v| !v.is_null()) {
            c.scram_iterations = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| (1..=u64::from(super::scram::MAX_ITERATIONS)).contains(n))
                .ok_or_else(|| {
                    DbError::BadRequest(format!(
                        "scram_iterations must be 1..{}",
                        super::scram::MAX_ITERATIONS
                    ))
                })? as u32;
        }
        match data.get("max_open_connections") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        DbError::BadRequest("max_open_connections must be 1..1000".into())
                    })?;
                c.max_open_connections = n as usize;
            }
        }
        Ok(c)
    }

    /// The URL to connect with: `{{username}}`/`{{password}}` substituted,
    /// percent-encoded so that any character in them is safe in a URL.
    pub fn url(&self) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let user = utf8_percent_encode(&self.username, NON_ALPHANUMERIC).to_string();
        let pass = utf8_percent_encode(&self.password, NON_ALPHANUMERIC).to_string();
        self.connection_url
            .replace("{{username}}", &user)
            .replace("{{password}}", &pass)
    }

    /// Whether `role` may use this connection.
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    /// What to put into `{{password}}` for `password`: the plaintext, or
    /// its SCRAM verifier.
    pub fn stored_password(&self, password: &str) -> Result<Zeroizing<String>, DbError> {
        match self.password_authentication {
            PasswordAuthentication::Password => Ok(Zeroizing::new(password.to_owned())),
            PasswordAuthentication::ScramSha256 => {
                super::scram::verifier(password, self.scram_iterations)
                    .map(Zeroizing::new)
                    .map_err(|_| DbError::Database("computing the SCRAM verifier failed".into()))
            }
        }
    }

    /// Vault's read form (no password).
    pub fn read_form(&self) -> Value {
        json!({
            "plugin_name": self.plugin_name,
            "connection_details": {
                "connection_url": self.connection_url,
                "username": self.username,
                "max_open_connections": self.max_open_connections,
            },
            "allowed_roles": self.allowed_roles,
            "verify_connection": self.verify_connection,
            "password_authentication": self.password_authentication,
            "scram_iterations": self.scram_iterations,
            "root_credentials_rotate_statements": [],
            "password_policy": "",
            "plugin_version": "",
        })
    }
}

impl Role {
    /// Apply a `roles/<name>` write on top of `old`.
    pub fn from_write(data: &Map<String, Value>, old: Option<Role>) -> Result<Role, DbError> {
        let mut r = old.unwrap_or(Role {
            db_name: String::new(),
            creation_statements: Vec::new(),
            revocation_statements: Vec::new(),
            rollback_statements: Vec::new(),
            renew_statements: Vec::new(),
            default_ttl: 0,
            max_ttl: 0,
        });
        if let Some(d) = string_field(data, "db_name")? {
            r.db_name = d;
        }
        check_name("db_name", &r.db_name).map_err(|_| {
            DbError::BadRequest("db_name is required and must be a valid connection name".into())
        })?;
        for (key, slot) in [
            ("creation_statements", &mut r.creation_statements),
            ("revocation_statements", &mut r.revocation_statements),
            ("rollback_statements", &mut r.rollback_statements),
            ("renew_statements", &mut r.renew_statements),
        ] {
            if let Some(v) = list_field(data, key, OneString::Whole)? {
                *slot = v;
            }
        }
        if super::sql::split_statements(&r.creation_statements).is_empty() {
            return Err(DbError::BadRequest(
                "creation_statements are required".into(),
            ));
        }
        if let Some(t) = duration_field(data, "default_ttl")? {
            r.default_ttl = t;
        }
        if let Some(t) = duration_field(data, "max_ttl")? {
            r.max_ttl = t;
        }
        if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
            return Err(DbError::BadRequest(
                "default_ttl cannot be greater than max_ttl".into(),
            ));
        }
        Ok(r)
    }

    /// Vault's read form.
    pub fn read_form(&self) -> Value {
        json!({
            "db_name": self.db_name,
            "creation_statements": self.creation_statements,
            "revocation_statements": self.revocation_statements,
            "rollback_statements": self.rollback_statements,
            "renew_statements": self.renew_statements,
            "default_ttl": self.default_ttl,
            "max_ttl": self.max_ttl,
            "credential_type": "password",
        })
    }
}
