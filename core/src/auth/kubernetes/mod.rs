//! The Kubernetes auth method: workloads log in with a service-account token,
//! which the Kubernetes API server checks through a TokenReview (audience
//! included); roles bind service-account names and namespaces to policies.
//!
//! Paths under the mount: `config`, `role/<name>` (and LIST `role/`), and
//! `login` (answered before any token check, see `api::login`).

pub mod config;
pub mod login;
pub mod review;
pub mod role;

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use self::config::{AuthConfig, CONFIG_KEY};
use self::login::LoginSource;
use self::review::Reviewed;
use self::role::{check_name, Role};
use crate::auth::LoginGrant;
use crate::barrier::View;
use crate::engines::{Engine, EngineError, Operation, Request, Response};

/// The method. Durable state lives in the mount's view; the value only caches
/// the HTTP client built for the current CA bundle.
#[derive(Default)]
pub struct KubernetesAuth {
    /// (CA bundle the client trusts, client): rebuilt when the config's CA changes.
    http: Mutex<Option<(String, reqwest::Client)>>,
}

impl KubernetesAuth {
    pub fn new() -> Self {
        Self::default()
    }

    fn client_for(&self, config: &AuthConfig) -> Result<reqwest::Client, EngineError> {
        let mut cached = match self.http.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some((ca, client)) = cached.as_ref() {
            if *ca == config.kubernetes_ca_cert {
                return Ok(client.clone());
            }
        }
        let client = review::http_client(config)?;
        *cached = Some((config.kubernetes_ca_cert.clone(), client.clone()));
        Ok(client)
    }
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

/// The method's storage and API-server access, for one login.
struct Source<'a> {
    method: &'a KubernetesAuth,
    view: &'a View,
}

#[async_trait]
impl LoginSource for Source<'_> {
    async fn config(&self) -> Result<Option<AuthConfig>, EngineError> {
        Ok(self.view.get_json(CONFIG_KEY).await?)
    }

    async fn role(&self, name: &str) -> Result<Option<Role>, EngineError> {
        Ok(self.view.get_json(&role_key(name)).await?)
    }

    async fn review(
        &self,
        config: &AuthConfig,
        jwt: &str,
        audiences: &[String],
    ) -> Result<Reviewed, EngineError> {
        let client = self.method.client_for(config)?;
        review::review(&client, config, jwt, audiences).await
    }
}

#[async_trait]
impl Engine for KubernetesAuth {
    async fn handle(&self, req: Request, view: &View) -> Result<Response, EngineError> {
        let op = req.operation;
        match req.path.as_str() {
            "config" => match op {
                Operation::Read => {
                    let config: Option<AuthConfig> = view.get_json(CONFIG_KEY).await?;
                    config
                        .map(|c| Response::data(c.to_json()))
                        .ok_or(EngineError::NotFound)
                }
                Operation::Create | Operation::Update => {
                    let previous: Option<AuthConfig> = view.get_json(CONFIG_KEY).await?;
                    let config = AuthConfig::from_body(&req.data, previous.as_ref())?;
                    // Fail at write time, not at the first login, on a bad CA bundle.
                    review::http_client(&config)?;
                    view.put_json(CONFIG_KEY, &config).await?;
                    Ok(Response::empty())
                }
                _ => Err(EngineError::UnsupportedOperation),
            },
            "role" | "role/" if op == Operation::List => {
                let keys = view.list("role/").await?;
                if keys.is_empty() {
                    return Err(EngineError::NotFound);
                }
                Ok(Response::data(json!({ "keys": keys })))
            }
            path => {
                let Some(name) = path.strip_prefix("role/") else {
                    return Err(EngineError::UnsupportedOperation);
                };
                check_name(name)?;
                let key = role_key(name);
                match op {
                    Operation::Read => {
                        let role: Option<Role> = view.get_json(&key).await?;
                        role.map(|r| Response::data(r.to_json()))
                            .ok_or(EngineError::NotFound)
                    }
                    Operation::Create | Operation::Update => {
                        let previous: Option<Role> = view.get_json(&key).await?;
                        let role = Role::from_body(&req.data, previous.as_ref())?;
                        view.put_json(&key, &role).await?;
                        Ok(Response::empty())
                    }
                    Operation::Delete => {
                        view.delete(&key).await?;
                        Ok(Response::empty())
                    }
                    _ => Err(EngineError::UnsupportedOperation),
                }
            }
        }
    }

    async fn exists(&self, path: &str, view: &View) -> Result<bool, EngineError> {
        let key = match path {
            "config" => CONFIG_KEY.to_owned(),
            p => match p.strip_prefix("role/") {
                Some(name) if check_name(name).is_ok() => role_key(name),
                _ => return Ok(true),
            },
        };
        Ok(view.get(&key).await?.is_some())
    }

    async fn login(
        &self,
        data: &Map<String, Value>,
        view: &View,
    ) -> Result<LoginGrant, EngineError> {
        login::login(&Source { method: self, view }, data).await
    }
}
