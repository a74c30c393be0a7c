//! Stored ACL policies and the compiled-ACL cache.
//!
//! Policies live (sealed) under `sys/policy/<name>` as their source text. A
//! token's ACL is compiled once per distinct policy set and cached until any
//! policy changes, so the per-request check is a hash-map hit plus a match.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::barrier::{BarrierError, View};
use crate::policy::{self, Acl, Policy, PolicyError, DEFAULT_POLICY};

/// Policy store failures.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    #[error("cannot {0} the {1} policy")]
    Protected(&'static str, &'static str),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// ACL policies by name, with a cache of compiled ACLs.
pub struct PolicyStore {
    view: View,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
}

impl PolicyStore {
    /// A store over `view`; writes the `default` policy if it is missing.
    pub async fn load(view: View) -> Result<Self, PolicyStoreError> {
        if view.get("default").await?.is_none() {
            view.put("default", DEFAULT_POLICY.as_bytes()).await?;
        }
        Ok(PolicyStore {
            view,
            acls: RwLock::new(HashMap::new()),
        })
    }

    /// Source text of a policy, if it exists (`root` has none).
    pub async fn read(&self, name: &str) -> Result<Option<String>, PolicyStoreError> {
        let name = policy::validate_name(name)?;
        if name == "root" {
            return Ok(Some(String::new()));
        }
        Ok(self
            .view
            .get(&name)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Parse, store and activate a policy.
    pub async fn write(&self, name: &str, text: &str) -> Result<(), PolicyStoreError> {
        let name = policy::validate_name(name)?;
        if name == "root" {
            return Err(PolicyStoreError::Protected("update", "root"));
        }
        policy::parse(&name, text)?;
        self.view.put(&name, text.as_bytes()).await?;
        self.invalidate();
        Ok(())
    }

    /// Remove a policy (`root` and `default` cannot be removed).
    pub async fn delete(&self, name: &str) -> Result<(), PolicyStoreError> {
        let name = policy::validate_name(name)?;
        match name.as_str() {
            "root" => return Err(PolicyStoreError::Protected("delete", "root")),
            "default" => return Err(PolicyStoreError::Protected("delete", "default")),
            _ => {}
        }
        self.view.delete(&name).await?;
        self.invalidate();
        Ok(())
    }

    /// Every policy name, `root` included, sorted.
    pub async fn list(&self) -> Result<Vec<String>, PolicyStoreError> {
        let mut names = self.view.list("").await?;
        names.push("root".into());
        names.sort();
        Ok(names)
    }

    fn invalidate(&self) {
        match self.acls.write() {
            Ok(mut g) => g.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// The compiled ACL of a token's policies. Missing policies grant nothing.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>, PolicyStoreError> {
        let cached = match self.acls.read() {
            Ok(g) => g.get(names).cloned(),
            Err(p) => p.into_inner().get(names).cloned(),
        };
        if let Some(acl) = cached {
            return Ok(acl);
        }
        let acl = if names.iter().any(|n| n == "root") {
            Arc::new(Acl::root())
        } else {
            let mut policies: Vec<Arc<Policy>> = Vec::with_capacity(names.len());
            for name in names {
                if let Some(text) = self.view.get(name).await? {
                    let text = String::from_utf8_lossy(&text);
                    policies.push(Arc::new(policy::parse(name, &text)?));
                }
            }
            Arc::new(Acl::new(&policies))
        };
        match self.acls.write() {
            Ok(mut g) => g.insert(names.to_vec(), acl.clone()),
            Err(p) => p.into_inner().insert(names.to_vec(), acl.clone()),
        };
        Ok(acl)
    }
}
