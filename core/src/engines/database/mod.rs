//! The `database` secrets engine for PostgreSQL, with Vault's API: connection
//! configurations (`config/<name>`), roles (`roles/<name>`), dynamic
//! credentials (`creds/<role>`, leased: the user is dropped when the lease
//! ends), `rotate-root/<name>` and `reset/<name>`.
//!
//! Storage below the mount: `config/<name>` and `roles/<name>` (JSON). The
//! root password lives only there, sealed by the barrier.

mod config;
mod drops;
mod pool;
mod scram;
mod sql;
mod users;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{Engine, EngineError, LeaseRequest, Operation, Request, Response};
use crate::barrier::{BarrierError, View};
use config::{check_name, Connection, Role};
use pool::{Pool, PoolError};

/// User expiry written at creation when the role has no TTL of its own; the
/// lease manager revokes (and renewals re-set `VALID UNTIL`) long before.
const FALLBACK_TTL: i64 = 768 * 3600;

/// Errors of this engine. Messages never hold a password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Bad input.
    #[error("{0}")]
    BadRequest(String),
    /// No such connection or role.
    #[error("not found")]
    NotFound,
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// No connection could be made.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl From<crate::engines::fields::FieldError> for DbError {
    fn from(e: crate::engines::fields::FieldError) -> Self {
        DbError::BadRequest(e.0)
    }
}

impl From<DbError> for EngineError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => EngineError::NotFound,
            DbError::Barrier(b) => EngineError::Barrier(b),
            other => EngineError::BadRequest(other.to_string()),
        }
    }
}

/// The database engine. One value serves one mount; pools are keyed by the
/// view prefix as well so that sharing a value across mounts stays correct.
#[derive(Default)]
pub struct DatabaseEngine {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    /// Serializes configuration writes and root rotation.
    write_lock: Mutex<()>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn list_response(keys: Vec<String>) -> Result<Response, DbError> {
    if keys.is_empty() {
        return Err(DbError::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

impl DatabaseEngine {
    /// A new engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn pool_key(view: &View, name: &str) -> String {
        format!("{}\u{0}{name}", view.prefix())
    }

    async fn connection(view: &View, name: &str) -> Result<Connection, DbError> {
        view.get_json(&format!("config/{name}"))
            .await?
            .ok_or(DbError::NotFound)
    }

    async fn role(view: &View, name: &str) -> Result<Option<Role>, DbError> {
        Ok(view.get_json(&format!("roles/{name}")).await?)
    }

    /// The pool for connection `name`, opened on first use.
    async fn pool(&self, view: &View, name: &str) -> Result<Arc<Pool>, DbError> {
        let key = Self::pool_key(view, name);
        let mut pools = self.pools.lock().await;
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let conn = Self::connection(view, name).await?;
        let pool = Pool::new(&conn.url(), conn.max_open_connections)?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    async fn close_pool(&self, view: &View, name: &str) {
        if let Some(p) = self.pools.lock().await.remove(&Self::pool_key(view, name)) {
            p.close();
        }
    }

    async fn write_config(
        &self,
        view: &View,
        name: &str,
        req: &Request,
    ) -> Result<Response, DbError> {
        let _guard = self.write_lock.lock().await;
        let old = view
            .get_json::<Connection>(&format!("config/{name}"))
            .await?;
        let conn = Connection::from_write(&req.data, old)?;
        if conn.verify_connection {
            let pool = Pool::new(&conn.url(), 1)?;
            let mut c = pool.get().await?;
            c.client()?.simple_query("SELECT 1").await.map_err(|e| {
                DbError::Database(sql::redact(&pool::describe(&e), &[&conn.password]))
            })?;
            drop(c);
            pool.close();
        }
        view.put_json(&format!("config/{name}"), &conn).await?;
        self.close_pool(view, name).await;
        Ok(Response::empty())
    }

    async fn creds(&self, view: &View, role_name: &str) -> Result<Response, DbError> {
        let role = Self::role(view, role_name)
            .await?
            .ok_or(DbError::NotFound)?;
        let conn = Self::connection(view, &role.db_name).await.map_err(|_| {
            DbError::BadRequest(format!("connection {:?} does not exist", role.db_name))
        })?;
        if !conn.allows(role_name) {
            return Err(DbError::BadRequest(format!(
                "{role_name:?} is not an allowed role"
            )));
        }
        let pool = self.pool(view, &role.db_name).await?;
        let username = users::new_username(role_name);
        let password = users::new_password();
        let ttl = if role.default_ttl > 0 {
            role.default_ttl
        } else {
            FALLBACK_TTL
        };
        let stored = conn.stored_password(&password)?;
        users::create(&pool, &role, &username, &stored, now_unix() + ttl).await?;
        let mut resp = Response::data(json!({ "username": username, "password": password }));
        resp.lease = Some(LeaseRequest {
            ttl: role.default_ttl,
            max_ttl: role.max_ttl,
            renewable: true,
            internal: json!({ "db": role.db_name, "role": role_name, "username": username }),
        });
        Ok(resp)
    }

    async fn rotate_root(&self, view: &View, name: &str) -> Result<Response, DbError> {
        let _guard = self.write_lock.lock().await;
        let mut conn = Self::connection(view, name).await?;
        if conn.username.is_empty() {
            return Err(DbError::BadRequest(
                "the connection has no username to rotate".into(),
            ));
        }
        let pool = self.pool(view, name).await?;
        let new_password = users::new_password();
        let stored = conn.stored_password(&new_password)?;
        users::set_root_password(&pool, &conn.username, &stored).await?;
        conn.password = new_password;
        // The server already has the new password: if this write fails the
        // operator must reset it by hand, which the error says.
        view.put_json(&format!("config/{name}"), &conn)
            .await
            .map_err(|e| {
                DbError::Database(format!(
                    "root password changed but could not be stored ({e}); reset it manually"
                ))
            })?;
        self.close_pool(view, name).await;
        Ok(Response::empty())
    }

    async fn handle_inner(&self, req: &Request, view: &View) -> Result<Response, DbError> {
        let path = req.path.trim_end_matches('/');
        let (head, name) = path.split_once('/').unwrap_or((path, ""));
        use Operation::*;
        match (head, req.operation, name.is_empty()) {
            ("config", List, true) => list_response(view.list("config/").await?),
            ("roles", List, true) => list_response(view.list("roles/").await?),
            ("config" | "roles" | "creds" | "rotate-root" | "reset", _, false) => {
                check_name(
                    if head == "config" {
                        "connection"
                    } else {
                        "role"
                    },
                    name,
                )?;
                match (head, req.operation) {
                    ("config", Read) => Ok(Response::data(
                        Self::connection(view, name).await?.read_form(),
                    )),
                    ("config", Create | Update) => self.write_config(view, name, req).await,
                    ("config", Delete) => {
                        view.delete(&format!("config/{name}")).await?;
                        self.close_pool(view, name).await;
                        Ok(Response::empty())
                    }
                    ("roles", Read) => Ok(Response::data(
                        Self::role(view, name)
                            .await?
                            .ok_or(DbError::NotFound)?
                            .read_form(),
                    )),
                    ("roles", Create | Update) => {
                        let old = Self::role(view, name).await?;
                        let role = Role::from_write(&req.data, old)?;
                        view.put_json(&format!("roles/{name}"), &role).await?;
                        Ok(Response::empty())
                    }
                    ("roles", Delete) => {
                        view.delete(&format!("roles/{name}")).await?;
                        Ok(Response::empty())
                    }
                    ("creds", Read) => self.creds(view, name).await,
                    ("rotate-root", Create | Update) => self.rotate_root(view, name).await,
                    ("reset", Create | Update) => {
                        Self::connection(view, name).await?;
                        self.close_pool(view, name).await;
                        Ok(Response::empty())
                    }
                    _ => Err(DbError::BadRequest("unsupported operation".into())),
                }
            }
            _ => Err(DbError::NotFound),
        }
    }

    /// The pool and role a lease's internal data points at.
    async fn lease_target(
        &self,
        internal: &Value,
        view: &View,
    ) -> Result<(Arc<Pool>, Option<Role>, String), DbError> {
        let field = |k: &str| internal.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(db), Some(username)) = (field("db"), field("username")) else {
            return Err(DbError::BadRequest(
                "lease data is not a database credential".into(),
            ));
        };
        let role = match field("role") {
            Some(r) => Self::role(view, &r).await?.filter(|r| r.db_name == db),
            None => None,
        };
        Ok((self.pool(view, &db).await?, role, username))
    }
}

#[async_trait]
impl Engine for DatabaseEngine {
    async fn handle(&self, req: Request, view: &View) -> Result<Response, EngineError> {
        match self.handle_inner(&req, view).await {
            Err(DbError::BadRequest(m)) if m == "unsupported operation" => {
                Err(EngineError::UnsupportedOperation)
            }
            other => other.map_err(EngineError::from),
        }
    }

    async fn renew(
        &self,
        internal: &Value,
        expire_unix: i64,
        view: &View,
    ) -> Result<(), EngineError> {
        let (pool, role, username) = self.lease_target(internal, view).await?;
        Ok(users::renew(&pool, role.as_ref(), &username, expire_unix).await?)
    }

    async fn revoke(&self, internal: &Value, view: &View) -> Result<(), EngineError> {
        let (pool, role, username) = self.lease_target(internal, view).await?;
        Ok(users::revoke(&pool, role.as_ref(), &username).await?)
    }

    async fn exists(&self, path: &str, view: &View) -> Result<bool, EngineError> {
        let path = path.trim_end_matches('/');
        match path.split_once('/') {
            Some(("config" | "roles", name)) if check_name("name", name).is_ok() => {
                Ok(view.get(path).await?.is_some())
            }
            _ => Ok(true),
        }
    }
}
