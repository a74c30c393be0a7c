//! Secrets engines. An engine is mounted at a path (`sys/mounts`) and answers
//! logical requests for paths below it. It knows nothing of HTTP: the API layer
//! turns HTTP into a [`Request`] and a [`Response`] or [`EngineError`] back into HTTP.

pub mod database;
pub mod fields;
pub mod kv;
pub mod transit;

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::barrier::{BarrierError, View};

/// What a request does, as ACL capabilities see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// GET
    Read,
    /// LIST, or GET with `?list=true`
    List,
    /// POST/PUT on a path that does not exist yet (see [`Engine::exists`])
    Create,
    /// POST/PUT on a path that exists
    Update,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

/// A request routed to an engine.
#[derive(Debug, Clone)]
pub struct Request {
    /// The operation.
    pub operation: Operation,
    /// The path below the mount point, without a leading `/` (e.g. `data/app/db`).
    pub path: String,
    /// The JSON body of a write (an empty map for reads), shared with the
    /// HTTP call it came from.
    pub data: std::sync::Arc<Map<String, Value>>,
    /// Query parameters (`version`, `list`, ...).
    pub query: HashMap<String, String>,
    /// The mount point, with a trailing `/` (e.g. `secret/`).
    pub mount_point: String,
}

impl Request {
    /// A request with no body and no query.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            operation,
            path: path.into(),
            data: Default::default(),
            query: HashMap::new(),
            mount_point: String::new(),
        }
    }
}

/// A JSON object of `fields`, their values moved in. (`json!` copies every
/// value it is given by name, through a serializer: a secret's whole data on
/// each read, a thousand results of a transit batch.)
pub fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut map = serde_json::Map::with_capacity(N);
    for (name, value) in fields {
        map.insert(name.to_owned(), value);
    }
    Value::Object(map)
}

/// An engine's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The `data` of the envelope; `None` with status 200 becomes `204 No Content`.
    pub data: Option<Value>,
    /// `warnings` of the envelope.
    pub warnings: Vec<String>,
    /// HTTP status; 0 means the default (200, or 204 without data). KV v2 answers
    /// 404 *with* data for a deleted or destroyed version, as Vault does.
    pub status: u16,
    /// Set by dynamic engines: the secret in `data` must be leased, and revoked
    /// through [`Engine::revoke`] when the lease ends.
    pub lease: Option<LeaseRequest>,
}

/// What an engine asks of the lease manager for a secret it just issued.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseRequest {
    /// Seconds; 0 = the mount's (or the system's) default lease TTL.
    pub ttl: i64,
    /// Seconds from issue; 0 = the mount's (or the system's) maximum.
    pub max_ttl: i64,
    pub renewable: bool,
    /// Engine-private data needed to renew or revoke the secret (e.g. the
    /// database user name). Stored sealed with the lease, never returned.
    pub internal: Value,
}

impl Response {
    /// 200 with `data`.
    pub fn data(data: Value) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }

    /// 204.
    pub fn empty() -> Self {
        Response::default()
    }
}

/// Why an engine refused or failed a request. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 400: the input is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 404: nothing at this path. Vault answers `{"errors": []}`.
    #[error("not found")]
    NotFound,
    /// 403: an auth method refused a login; the message says why without
    /// repeating the credential.
    #[error("{0}")]
    Denied(String),
    /// 502: a service the request depends on (e.g. the Kubernetes API for a
    /// TokenReview) failed or could not be reached.
    #[error("{0}")]
    Upstream(String),
    /// 405: the path exists but does not support this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 412-style conflict answered as 400 by Vault (e.g. check-and-set mismatch).
    #[error("{0}")]
    Conflict(String),
    /// 500/503: the barrier or storage failed (sealed, corrupt, I/O).
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl From<fields::FieldError> for EngineError {
    fn from(e: fields::FieldError) -> Self {
        EngineError::BadRequest(e.0)
    }
}

/// A mounted secrets engine.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Answer one request; `view` holds this mount's storage.
    async fn handle(&self, req: Request, view: &View) -> Result<Response, EngineError>;

    /// Extend a leased secret's life to `expire_unix` (e.g. `ALTER ROLE ... VALID
    /// UNTIL`). Engines whose secrets need nothing on renewal keep the default.
    async fn renew(
        &self,
        _internal: &Value,
        _expire_unix: i64,
        _view: &View,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    /// Destroy a leased secret (e.g. drop the database user). Must be
    /// idempotent: a revocation can be retried after a partial failure.
    async fn revoke(&self, _internal: &Value, _view: &View) -> Result<(), EngineError> {
        Ok(())
    }

    /// Whether `path` already exists, to tell `create` from `update` for the ACL
    /// check of a POST/PUT. Engines without the distinction answer `true` (update).
    async fn exists(&self, _path: &str, _view: &View) -> Result<bool, EngineError> {
        Ok(true)
    }

    /// A key of this mount's storage (`key`, relative to `view`) changed
    /// without passing through this engine: a write made on the Raft leader
    /// was applied here. Forget whatever is cached about it; an empty `key`
    /// means anything may have changed (a snapshot was installed).
    fn invalidate(&self, _view: &View, _key: &str) {}

    /// Auth methods only: check the proof in a `login` request's body and say
    /// which token to issue. The caller has no token yet, so this runs before
    /// any ACL check; secrets engines keep the default refusal.
    async fn login(
        &self,
        _data: &Map<String, Value>,
        _view: &View,
    ) -> Result<crate::auth::LoginGrant, EngineError> {
        Err(EngineError::UnsupportedOperation)
    }
}
