//! The mount table: which secrets engine answers under which path.
//!
//! Persisted (sealed) at `core/mounts`; each mount's data lives under
//! `logical/<uuid>/`, so disabling a mount clears exactly its own keys.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::barrier::{Barrier, BarrierError, View};
use crate::engines::kv::KvEngine;
use crate::engines::Engine;

/// Storage key of the mount table.
pub const MOUNTS_PATH: &str = "core/mounts";

/// Paths that belong to the core itself and can never be mounted over.
const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

/// Mount table failures.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no secrets engine is mounted at {0}")]
    NotMounted(String),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// Tunable settings of a mount (Vault's `config` block).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: i64,
    #[serde(default)]
    pub max_lease_ttl: i64,
}

/// One persisted mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    /// With trailing `/`, e.g. `secret/`.
    pub path: String,
    /// Engine type, e.g. `kv`.
    pub kind: String,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    pub config: MountConfig,
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
}

impl MountEntry {
    /// Vault's `sys/mounts` listing shape for this mount.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "config": {
                "default_lease_ttl": self.config.default_lease_ttl,
                "max_lease_ttl": self.config.max_lease_ttl,
                "force_no_cache": false,
            },
            "options": self.options,
            "local": self.local,
            "seal_wrap": self.seal_wrap,
            "external_entropy_access": false,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
        })
    }
}

/// A live mount: its entry, engine and storage view.
#[derive(Clone)]
pub struct Mount {
    pub entry: MountEntry,
    pub engine: Arc<dyn Engine>,
    pub view: View,
}

/// The in-memory mount table, rebuilt from storage at unseal.
pub struct MountTable {
    barrier: Arc<Barrier>,
    mounts: RwLock<Arc<Vec<Mount>>>,
}

/// Check and normalise a mount path: no leading or doubled `/`, no `..`, trailing `/`.
pub fn normalize_path(path: &str) -> Result<String, MountError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(MountError::BadRequest("mount path cannot be empty".into()));
    }
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == ".." || seg == ".")
        || trimmed.contains('\0')
        || trimmed.contains('*')
        || trimmed.contains('+')
    {
        return Err(MountError::BadRequest(format!(
            "invalid mount path {trimmed:?}"
        )));
    }
    Ok(format!("{trimmed}/"))
}

/// A default lease TTL above the maximum could never be granted.
fn check_ttls(c: &MountConfig) -> Result<(), MountError> {
    let max = if c.max_lease_ttl > 0 {
        c.max_lease_ttl
    } else {
        crate::auth::token::DEFAULT_TTL
    };
    if c.default_lease_ttl > max {
        return Err(MountError::BadRequest(
            "default_lease_ttl cannot be greater than max_lease_ttl".into(),
        ));
    }
    Ok(())
}

fn build_engine(
    kind: &str,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn Engine>, MountError> {
    match kind {
        "kv" | "kv-v2" => match options.get("version").map(String::as_str) {
            None | Some("2") => Ok(Arc::new(KvEngine::new())),
            Some(v) => Err(MountError::BadRequest(format!(
                "kv version {v} is not supported: Cairn implements kv version 2 only"
            ))),
        },
        "transit" => Ok(Arc::new(crate::engines::transit::TransitEngine::new())),
        "database" => Ok(Arc::new(crate::engines::database::DatabaseEngine::new())),
        other => Err(MountError::BadRequest(format!(
            "unknown secrets engine type {other:?}"
        ))),
    }
}

/// Where auth methods are mounted (`auth/kubernetes/`). They share the mount
/// table with secrets engines: the same routing, storage views and
/// persistence, listed apart by `sys/auth`.
pub const AUTH_PREFIX: &str = "auth/";

fn build_auth_method(kind: &str) -> Result<Arc<dyn Engine>, MountError> {
    match kind {
        "kubernetes" => Ok(Arc::new(crate::auth::kubernetes::KubernetesAuth::new())),
        "token" => Err(MountError::BadRequest(
            "the token auth method is always enabled at auth/token/".into(),
        )),
        other => Err(MountError::BadRequest(format!(
            "unknown auth method type {other:?}"
        ))),
    }
}

impl MountEntry {
    /// Whether this mount is an auth method.
    pub fn is_auth(&self) -> bool {
        self.path.starts_with(AUTH_PREFIX)
    }
}

impl MountTable {
    /// Load the table from storage (empty on a fresh node).
    pub async fn load(barrier: Arc<Barrier>) -> Result<Self, MountError> {
        let sys = View::new(barrier.clone(), "");
        let entries: Vec<MountEntry> = sys.get_json(MOUNTS_PATH).await?.unwrap_or_default();
        let mut mounts = Vec::with_capacity(entries.len());
        for entry in entries {
            let engine = if entry.is_auth() {
                build_auth_method(&entry.kind)?
            } else {
                build_engine(&entry.kind, &entry.options)?
            };
            let view = View::new(barrier.clone(), format!("logical/{}/", entry.uuid));
            mounts.push(Mount {
                entry,
                engine,
                view,
            });
        }
        Ok(MountTable {
            barrier,
            mounts: RwLock::new(Arc::new(mounts)),
        })
    }

    /// A consistent snapshot of the table.
    pub fn snapshot(&self) -> Arc<Vec<Mount>> {
        match self.mounts.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn replace(&self, next: Vec<Mount>) {
        match self.mounts.write() {
            Ok(mut g) => *g = Arc::new(next),
            Err(p) => *p.into_inner() = Arc::new(next),
        }
    }

    async fn persist(&self, mounts: &[Mount]) -> Result<(), MountError> {
        let entries: Vec<&MountEntry> = mounts.iter().map(|m| &m.entry).collect();
        View::new(self.barrier.clone(), "")
            .put_json(MOUNTS_PATH, &entries)
            .await?;
        Ok(())
    }

    /// The mount answering `path` (longest prefix) and the rest of the path.
    pub fn route<'a>(&self, path: &'a str) -> Option<(Mount, &'a str)> {
        let table = self.snapshot();
        table
            .iter()
            .filter(|m| {
                path.starts_with(&m.entry.path) || path == m.entry.path.trim_end_matches('/')
            })
            .max_by_key(|m| m.entry.path.len())
            .map(|m| {
                let rest = path.get(m.entry.path.len()..).unwrap_or("");
                (m.clone(), rest)
            })
    }

    /// The mount whose path is exactly `path` (with trailing `/`).
    pub fn mount_at(&self, path: &str) -> Option<Mount> {
        self.snapshot()
            .iter()
            .find(|m| m.entry.path == path)
            .cloned()
    }

    /// Mount a new engine.
    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: String,
        config: MountConfig,
        mut options: BTreeMap<String, String>,
        local: bool,
    ) -> Result<(), MountError> {
        let path = normalize_path(path)?;
        if RESERVED.iter().any(|r| path.starts_with(r)) {
            return Err(MountError::BadRequest(format!(
                "cannot mount at reserved path {path:?}"
            )));
        }
        let kind = if kind == "kv-v2" { "kv" } else { kind };
        if kind == "kv" {
            options
                .entry("version".into())
                .or_insert_with(|| "2".into());
        }
        let engine = build_engine(kind, &options)?;
        self.insert(path, kind, engine, description, config, options, local)
            .await
    }

    /// Enable an auth method at `auth/<path>/`.
    pub async fn enable_auth(
        &self,
        path: &str,
        kind: &str,
        description: String,
        config: MountConfig,
    ) -> Result<String, MountError> {
        let path = format!("{AUTH_PREFIX}{}", normalize_path(path)?);
        if path == "auth/token/" {
            return Err(MountError::BadRequest(
                "the token auth method is always enabled at auth/token/".into(),
            ));
        }
        let engine = build_auth_method(kind)?;
        self.insert(
            path.clone(),
            kind,
            engine,
            description,
            config,
            BTreeMap::new(),
            false,
        )
        .await?;
        Ok(path)
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &self,
        path: String,
        kind: &str,
        engine: Arc<dyn Engine>,
        description: String,
        config: MountConfig,
        options: BTreeMap<String, String>,
        local: bool,
    ) -> Result<(), MountError> {
        check_ttls(&config)?;
        let mut next: Vec<Mount> = self.snapshot().as_ref().clone();
        if let Some(clash) = next
            .iter()
            .find(|m| path.starts_with(&m.entry.path) || m.entry.path.starts_with(&path))
        {
            return Err(MountError::BadRequest(format!(
                "path is already in use at {}",
                clash.entry.path
            )));
        }
        let uuid = Uuid::new_v4().to_string();
        let entry = MountEntry {
            path: path.clone(),
            kind: kind.to_owned(),
            description,
            accessor: format!("{kind}_{}", &uuid[..8]),
            uuid: uuid.clone(),
            config,
            options,
            local,
            seal_wrap: false,
        };
        let view = View::new(self.barrier.clone(), format!("logical/{uuid}/"));
        next.push(Mount {
            entry,
            engine,
            view,
        });
        self.persist(&next).await?;
        self.replace(next);
        Ok(())
    }

    /// Mount `engine` directly (tests of subsystems that need a custom engine).
    #[cfg(test)]
    pub fn mount_for_test(&self, path: &str, engine: Arc<dyn Engine>) -> Mount {
        let uuid = Uuid::new_v4().to_string();
        let entry = MountEntry {
            path: path.to_owned(),
            kind: "test".into(),
            description: String::new(),
            accessor: format!("test_{}", &uuid[..8]),
            uuid: uuid.clone(),
            config: MountConfig::default(),
            options: BTreeMap::new(),
            local: false,
            seal_wrap: false,
        };
        let mount = Mount {
            entry,
            engine,
            view: View::new(self.barrier.clone(), format!("logical/{uuid}/")),
        };
        let mut next: Vec<Mount> = self.snapshot().as_ref().clone();
        next.push(mount.clone());
        self.replace(next);
        mount
    }

    /// Unmount and delete everything the engine stored.
    pub async fn disable(&self, path: &str) -> Result<(), MountError> {
        let path = normalize_path(path)?;
        if RESERVED.iter().any(|r| path.starts_with(r)) {
            return Err(MountError::BadRequest(format!("cannot unmount {path:?}")));
        }
        self.remove(&path).await
    }

    /// Disable the auth method at `auth/<path>/` and delete its roles and config.
    pub async fn disable_auth(&self, path: &str) -> Result<(), MountError> {
        let path = format!("{AUTH_PREFIX}{}", normalize_path(path)?);
        if path == "auth/token/" {
            return Err(MountError::BadRequest(
                "the token auth method can not be disabled".into(),
            ));
        }
        self.remove(&path).await
    }

    async fn remove(&self, path: &str) -> Result<(), MountError> {
        let mut next: Vec<Mount> = self.snapshot().as_ref().clone();
        let Some(pos) = next.iter().position(|m| m.entry.path == path) else {
            // Vault answers success for an unmounted path.
            return Ok(());
        };
        let gone = next.remove(pos);
        self.persist(&next).await?;
        self.replace(next);
        gone.view.clear("").await?;
        Ok(())
    }

    /// Change a mount's tunables, description or options.
    pub async fn tune(
        &self,
        path: &str,
        config: Option<MountConfig>,
        description: Option<String>,
        options: Option<BTreeMap<String, String>>,
    ) -> Result<MountEntry, MountError> {
        let path = normalize_path(path)?;
        let mut next: Vec<Mount> = self.snapshot().as_ref().clone();
        let m = next
            .iter_mut()
            .find(|m| m.entry.path == path)
            .ok_or_else(|| MountError::NotMounted(path.clone()))?;
        if let Some(c) = config {
            if c.default_lease_ttl != 0 {
                m.entry.config.default_lease_ttl = c.default_lease_ttl;
            }
            if c.max_lease_ttl != 0 {
                m.entry.config.max_lease_ttl = c.max_lease_ttl;
            }
        }
        check_ttls(&m.entry.config)?;
        if let Some(d) = description {
            m.entry.description = d;
        }
        if let Some(o) = options {
            if let Some(v) = o.get("version") {
                if m.entry.kind == "kv" && v != "2" {
                    return Err(MountError::BadRequest(format!(
                        "kv version {v} is not supported: Cairn implements kv version 2 only"
                    )));
                }
            }
            m.entry.options.extend(o);
        }
        let updated = m.entry.clone();
        self.persist(&next).await?;
        self.replace(next);
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Keyring;
    use crate::storage::memory::MemoryStorage;

    fn barrier() -> Arc<Barrier> {
        let b = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        b.set_keyring(Some(Keyring::generate(0)));
        b
    }

    #[test]
    fn paths_are_validated() {
        assert_eq!(normalize_path("/secret/").unwrap(), "secret/");
        assert_eq!(normalize_path("a/b").unwrap(), "a/b/");
        for bad in ["", "/", "a//b", "a/../b", "a\0b", "a/*"] {
            assert!(normalize_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn enable_route_persist_disable() {
        let b = barrier();
        let t = MountTable::load(b.clone()).await.unwrap();
        t.enable(
            "secret",
            "kv",
            String::new(),
            MountConfig::default(),
            BTreeMap::new(),
            false,
        )
        .await
        .unwrap();
        t.enable(
            "team/a",
            "kv",
            String::new(),
            MountConfig::default(),
            BTreeMap::new(),
            false,
        )
        .await
        .unwrap();
        assert!(t
            .enable(
                "secret/x",
                "kv",
                String::new(),
                MountConfig::default(),
                BTreeMap::new(),
                false
            )
            .await
            .is_err());
        assert!(t
            .enable(
                "sys/x",
                "kv",
                String::new(),
                MountConfig::default(),
                BTreeMap::new(),
                false
            )
            .await
            .is_err());
        assert!(t
            .enable(
                "other",
                "nope",
                String::new(),
                MountConfig::default(),
                BTreeMap::new(),
                false
            )
            .await
            .is_err());
        let (m, rest) = t.route("team/a/data/x").unwrap();
        assert_eq!((m.entry.path.as_str(), rest), ("team/a/", "data/x"));
        assert!(t.route("team/b/data").is_none());
        assert_eq!(
            m.entry.options.get("version").map(String::as_str),
            Some("2")
        );

        m.view.put("k", b"v").await.unwrap();
        let reloaded = MountTable::load(b.clone()).await.unwrap();
        assert_eq!(reloaded.snapshot().len(), 2);
        reloaded.disable("team/a").await.unwrap();
        assert!(
            m.view.get("k").await.unwrap().is_none(),
            "disable clears the mount's data"
        );
        assert_eq!(MountTable::load(b).await.unwrap().snapshot().len(), 1);
    }
}
