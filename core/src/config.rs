//! The server configuration file, in Vault's HCL format:
//!
//! ```hcl
//! listener "tcp" { address = "0.0.0.0:8200" tls_cert_file = "..." tls_key_file = "..." }
//! storage "raft" { path = "/var/lib/cairn" node_id = "cairn-0" }
//! seal "static" { key_file = "/etc/cairn/seal.key" }
//! api_addr = "https://cairn-0.cairn:8200"
//! log_level = "info"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Configuration errors; each names the stanza at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config is not valid HCL: {0}")]
    Syntax(String),
    #[error("invalid {stanza} stanza: {message}")]
    Invalid { stanza: String, message: String },
    #[error("config needs at least one listener \"tcp\" stanza")]
    NoListener,
    #[error("config needs exactly one storage stanza")]
    Storage,
}

fn invalid(stanza: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        stanza: stanza.to_owned(),
        message: message.into(),
    }
}

/// A `listener "tcp"` stanza.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ListenerConfig {
    pub address: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    #[serde(deserialize_with = "de_bool")]
    pub tls_disable: bool,
    /// Bytes; 0 means Vault's default (32 MiB).
    pub max_request_size: i64,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl ListenerConfig {
    /// The socket address to bind.
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        let addr = if self.address.is_empty() {
            "127.0.0.1:8200"
        } else {
            &self.address
        };
        addr.parse().map_err(|_| {
            invalid(
                "listener \"tcp\"",
                format!("address {addr:?} is not an IP:port"),
            )
        })
    }
}

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// In memory; lost at exit.
    Inmem,
    /// Durable storage on disk (single node now; Raft peers join in the same stanza).
    Raft { path: PathBuf, node_id: String },
}

/// How the root key is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealStanza {
    /// No stanza: Shamir shares.
    Shamir,
    /// `seal "static" { key_file }`.
    Static { key_file: PathBuf },
}

/// Options of `storage "raft"` beyond `path` and `node_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftOptions {
    /// `retry_join { leader_api_addr, leader_ca_cert_file }` stanzas.
    pub retry_join: Vec<crate::cluster::RetryJoin>,
    /// Peer TLS: `cluster_tls_cert_file`, `cluster_tls_key_file`, `cluster_tls_ca_file`.
    pub tls: Option<crate::cluster::tls::PeerTlsFiles>,
    /// Log entries between snapshots (Vault's default 8192).
    pub snapshot_threshold: u64,
    /// Log entries kept behind a snapshot (Vault's default 10240).
    pub trailing_logs: u64,
}

/// The whole file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listeners: Vec<ListenerConfig>,
    pub storage: StorageConfig,
    /// Raft options (defaults when storage is not raft).
    pub raft: RaftOptions,
    pub seal: SealStanza,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub log_level: String,
    pub log_format: String,
    /// Keys the file set that Cairn does not use (warned about at start).
    pub ignored: Vec<String>,
}

fn de_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            _ => Err(serde::de::Error::custom("expected a boolean")),
        },
        Value::Number(n) => Ok(n.as_i64() == Some(1)),
        _ => Err(serde::de::Error::custom("expected a boolean")),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RaftStanza {
    path: String,
    node_id: String,
    /// One `retry_join { }` block (an object) or several (an array).
    retry_join: Value,
    cluster_tls_cert_file: String,
    cluster_tls_key_file: String,
    cluster_tls_ca_file: String,
    snapshot_threshold: Option<u64>,
    trailing_logs: Option<u64>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StaticSealStanza {
    key_file: String,
}

/// The raft stanza's cluster options: retry_join blocks, peer TLS (all three
/// files or none), snapshot thresholds.
fn raft_options(r: &RaftStanza) -> Result<RaftOptions, ConfigError> {
    let stanza = "storage \"raft\"";
    let blocks = match &r.retry_join {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut retry_join = Vec::new();
    for b in blocks {
        let addr = b
            .get("leader_api_addr")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if addr.is_empty() {
            return Err(invalid(stanza, "retry_join needs leader_api_addr"));
        }
        let ca = b
            .get("leader_ca_cert_file")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        retry_join.push(crate::cluster::RetryJoin {
            leader_api_addr: addr.to_owned(),
            leader_ca_cert_file: ca.map(PathBuf::from),
        });
    }
    let files = [
        &r.cluster_tls_cert_file,
        &r.cluster_tls_key_file,
        &r.cluster_tls_ca_file,
    ];
    let tls = match files.iter().filter(|f| !f.is_empty()).count() {
        0 => None,
        3 => Some(crate::cluster::tls::PeerTlsFiles {
            cert_file: PathBuf::from(&r.cluster_tls_cert_file),
            key_file: PathBuf::from(&r.cluster_tls_key_file),
            ca_file: PathBuf::from(&r.cluster_tls_ca_file),
        }),
        _ => return Err(invalid(stanza, "set all of cluster_tls_cert_file, cluster_tls_key_file and cluster_tls_ca_file, or none")),
    };
    Ok(RaftOptions {
        retry_join,
        tls,
        snapshot_threshold: r.snapshot_threshold.unwrap_or(8192),
        trailing_logs: r.trailing_logs.unwrap_or(10240),
    })
}

fn block_json(block: &hcl::Block) -> Result<Value, ConfigError> {
    hcl::from_body::<Value>(block.body().clone())
        .map_err(|e| invalid(block.identifier(), e.to_string()))
}

impl ServerConfig {
    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parse config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let body: hcl::Body = hcl::parse(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut listeners = Vec::new();
        let mut storage = None;
        let mut raft = RaftOptions::default();
        let mut seal = SealStanza::Shamir;
        let mut ignored = Vec::new();
        for block in body.blocks() {
            let label = block.labels().first().map(|l| l.as_str()).unwrap_or("");
            match (block.identifier(), label) {
                ("listener", "tcp") => {
                    let l: ListenerConfig = serde_json::from_value(block_json(block)?)
                        .map_err(|e| invalid("listener \"tcp\"", e.to_string()))?;
                    l.socket_addr()?;
                    ignored.extend(l.other.keys().map(|k| format!("listener.{k}")));
                    listeners.push(l);
                }
                ("listener", other) => return Err(invalid("listener", format!("type {other:?} is not supported; use \"tcp\""))),
                ("storage", kind) => {
                    if storage.is_some() {
                        return Err(ConfigError::Storage);
                    }
                    storage = Some(match kind {
                        "inmem" => StorageConfig::Inmem,
                        "raft" => {
                            let r: RaftStanza = serde_json::from_value(block_json(block)?)
                                .map_err(|e| invalid("storage \"raft\"", e.to_string()))?;
                            if r.path.is_empty() {
                                return Err(invalid("storage \"raft\"", "path is required"));
                            }
                            ignored.extend(r.other.keys().map(|k| format!("storage.{k}")));
                            raft = raft_options(&r)?;
                            StorageConfig::Raft {
                                path: PathBuf::from(r.path),
                                node_id: if r.node_id.is_empty() { "node1".into() } else { r.node_id },
                            }
                        }
                        other => return Err(invalid("storage", format!("type {other:?} is not supported; use \"raft\" or \"inmem\""))),
                    });
                }
                ("seal", "static") => {
                    let s: StaticSealStanza = serde_json::from_value(block_json(block)?)
                        .map_err(|e| invalid("seal \"static\"", e.to_string()))?;
                    if s.key_file.is_empty() {
                        return Err(invalid("seal \"static\"", "key_file is required"));
                    }
                    seal = SealStanza::Static { key_file: PathBuf::from(s.key_file) };
                }
                ("seal", other) => return Err(invalid("seal", format!("type {other:?} is not supported; use \"static\" or omit the stanza for Shamir"))),
                (other, _) => ignored.push(other.to_owned()),
            }
        }
        let mut api_addr = None;
        let mut cluster_addr = None;
        let mut log_level = "info".to_owned();
        let mut log_format = "standard".to_owned();
        for attr in body.attributes() {
            let value =
                hcl::from_body::<Value>(hcl::Body::builder().add_attribute(attr.clone()).build())
                    .ok()
                    .and_then(|v| v.get(attr.key()).cloned())
                    .unwrap_or(Value::Null);
            let text = match &value {
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            match attr.key() {
                "api_addr" => api_addr = text,
                "cluster_addr" => cluster_addr = text,
                "log_level" => log_level = text.unwrap_or(log_level),
                "log_format" => log_format = text.unwrap_or(log_format),
                other => ignored.push(other.to_owned()),
            }
        }
        if !matches!(log_format.as_str(), "standard" | "json") {
            return Err(invalid("log_format", "must be \"standard\" or \"json\""));
        }
        if listeners.is_empty() {
            return Err(ConfigError::NoListener);
        }
        Ok(ServerConfig {
            listeners,
            storage: storage.ok_or(ConfigError::Storage)?,
            raft,
            seal,
            api_addr,
            cluster_addr,
            log_level,
            log_format,
            ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_style_config() {
        let c = ServerConfig::parse(
            r#"
            listener "tcp" {
              address = "127.0.0.1:8300"
              tls_disable = true
            }
            storage "raft" {
              path = "/tmp/cairn"
              node_id = "n1"
            }
            seal "static" { key_file = "/tmp/k" }
            api_addr = "http://127.0.0.1:8300"
            log_level = "debug"
            log_format = "json"
            disable_mlock = true
            "#,
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert!(c.listeners[0].tls_disable);
        assert_eq!(c.listeners[0].socket_addr().unwrap().port(), 8300);
        assert_eq!(
            c.storage,
            StorageConfig::Raft {
                path: "/tmp/cairn".into(),
                node_id: "n1".into()
            }
        );
        assert_eq!(
            c.seal,
            SealStanza::Static {
                key_file: "/tmp/k".into()
            }
        );
        assert_eq!(c.api_addr.as_deref(), Some("http://127.0.0.1:8300"));
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.log_format, "json");
        assert_eq!(c.ignored, vec!["disable_mlock"]);
    }

    #[test]
    fn refuses_bad_configs() {
        assert!(matches!(
            ServerConfig::parse("listener \"tcp\" {"),
            Err(ConfigError::Syntax(_))
        ));
        assert!(matches!(
            ServerConfig::parse("storage \"inmem\" {}"),
            Err(ConfigError::NoListener)
        ));
        assert!(matches!(
            ServerConfig::parse("listener \"tcp\" { address = \"127.0.0.1:1\" }"),
            Err(ConfigError::Storage)
        ));
        assert!(ServerConfig::parse(
            "listener \"tcp\" { address = \"nope\" }\nstorage \"inmem\" {}"
        )
        .is_err());
        assert!(ServerConfig::parse("listener \"tcp\" {}\nstorage \"consul\" {}").is_err());
        assert!(ServerConfig::parse("listener \"tcp\" {}\nstorage \"raft\" {}").is_err());
    }
}
