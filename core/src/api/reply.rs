//! What handlers return, and how it becomes Vault's JSON envelope on the wire.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::token::TokenError;
use crate::barrier::BarrierError;
use crate::engines::EngineError;
use crate::node::mounts::MountError;
use crate::node::policies::PolicyStoreError;
use crate::node::NodeError;

/// A successful answer, before it is wrapped in the envelope.
#[derive(Debug, Default)]
pub struct Reply {
    /// The envelope's `data`. `None` (and no `auth`) means 204.
    pub data: Option<Value>,
    /// The envelope's `auth` (token create, renew, login).
    pub auth: Option<Value>,
    pub warnings: Vec<String>,
    /// 0 = default (200 / 204).
    pub status: u16,
    /// Fields Vault also repeats at the top level of the body for old clients
    /// (`sys/mounts`, `sys/policy`, `sys/audit` listings).
    pub top_level: Option<Map<String, Value>>,
    /// A body that is not the envelope at all (seal-status, health, metrics, init).
    pub raw: Option<(&'static str, Vec<u8>)>,
    /// `(lease_id, lease_duration, renewable)` of a leased secret.
    pub lease: Option<(String, i64, bool)>,
}

impl Reply {
    /// 200 with `data`.
    pub fn data(data: Value) -> Self {
        Reply {
            data: Some(data),
            ..Default::default()
        }
    }

    /// 204.
    pub fn empty() -> Self {
        Reply::default()
    }

    /// A bare JSON body with `status`, as Vault's `sys/seal-status` and `sys/health`.
    pub fn bare(status: u16, body: &Value) -> Self {
        Reply {
            status,
            raw: Some(("application/json", body.to_string().into_bytes())),
            ..Default::default()
        }
    }

    /// Data also repeated at the top level (Vault's legacy listing shape).
    pub fn listing(data: Map<String, Value>) -> Self {
        Reply {
            top_level: Some(data.clone()),
            data: Some(Value::Object(data)),
            ..Default::default()
        }
    }

    /// The JSON envelope, or `None` for 204.
    pub fn envelope(&mut self, request_id: &str) -> Option<Value> {
        if self.data.is_none()
            && self.auth.is_none()
            && self.warnings.is_empty()
            && self.lease.is_none()
        {
            return None;
        }
        let mut body = self.top_level.take().unwrap_or_default();
        let (lease_id, duration, renewable) = self.lease.take().unwrap_or_default();
        body.insert("request_id".into(), json!(request_id));
        body.insert("lease_id".into(), json!(lease_id));
        body.insert("renewable".into(), json!(renewable));
        body.insert("lease_duration".into(), json!(duration));
        body.insert("data".into(), self.data.take().unwrap_or(Value::Null));
        body.insert("wrap_info".into(), Value::Null);
        let warnings = std::mem::take(&mut self.warnings);
        body.insert(
            "warnings".into(),
            if warnings.is_empty() {
                Value::Null
            } else {
                json!(warnings)
            },
        );
        body.insert("auth".into(), self.auth.take().unwrap_or(Value::Null));
        body.insert("mount_type".into(), json!(""));
        Some(Value::Object(body))
    }

    /// Build the envelope once: the reply comes back in its wire form, with
    /// the envelope value beside it for the audit log.
    pub fn render(mut self, request_id: &str) -> (Reply, Option<Value>) {
        if self.raw.is_some() {
            return (self, None);
        }
        let status = self.status;
        match self.envelope(request_id) {
            None => (
                Reply {
                    status: 204,
                    raw: Some(("application/json", Vec::new())),
                    ..Default::default()
                },
                None,
            ),
            Some(env) => {
                let bytes = serde_json::to_vec(&env).unwrap_or_default();
                (
                    Reply {
                        status,
                        raw: Some(("application/json", bytes)),
                        ..Default::default()
                    },
                    Some(env),
                )
            }
        }
    }

    /// Render to HTTP.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let (wire, _) = self.render(request_id);
        let status = StatusCode::from_u16(if wire.status == 0 { 200 } else { wire.status })
            .unwrap_or(StatusCode::OK);
        let (content_type, bytes) = wire.raw.unwrap_or(("application/json", Vec::new()));
        respond(status, content_type, bytes)
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A failed request: a status and Vault's `{"errors": [...]}`. Messages are
/// meant for the client and never carry secrets; internal details are logged
/// once where the error is turned into a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<String>,
    /// Logged, never sent.
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![message.into()],
            internal: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission denied")
    }
    pub fn not_found() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
            internal: None,
        }
    }
    pub fn sealed() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed")
    }
    pub fn unsupported_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, "unsupported path")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
    }
    /// 500 with a generic message; `detail` goes to the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            errors: vec!["internal error".into()],
            internal: Some(detail.into()),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({ "errors": self.errors });
        respond(
            self.status,
            "application/json",
            body.to_string().into_bytes(),
        )
    }
}

impl From<BarrierError> for ApiError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => ApiError::sealed(),
            BarrierError::TooLarge => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "value is too large")
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::BadRequest(m) | EngineError::Conflict(m) => ApiError::bad_request(m),
            EngineError::NotFound => ApiError::not_found(),
            EngineError::Denied(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            EngineError::Upstream(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
            EngineError::UnsupportedOperation => ApiError::method_not_allowed(),
            EngineError::Barrier(b) => b.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::PermissionDenied => ApiError::denied(),
            TokenError::NotFound(m) => ApiError::bad_request(m),
            TokenError::BadRequest(m) => ApiError::bad_request(m),
            TokenError::Barrier(b) => b.into(),
        }
    }
}

impl From<MountError> for ApiError {
    fn from(e: MountError) -> Self {
        match e {
            MountError::BadRequest(m) => ApiError::bad_request(m),
            MountError::NotMounted(p) => ApiError::bad_request(format!("no mount at {p}")),
            MountError::Barrier(b) => b.into(),
        }
    }
}

impl From<PolicyStoreError> for ApiError {
    fn from(e: PolicyStoreError) -> Self {
        match e {
            PolicyStoreError::Invalid(p) => ApiError::bad_request(p.to_string()),
            PolicyStoreError::Protected(..) => ApiError::bad_request(e.to_string()),
            PolicyStoreError::Barrier(b) => b.into(),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Sealed => ApiError::sealed(),
            NodeError::AlreadyInitialized | NodeError::Unseal(_) | NodeError::SealConfig(_) => {
                ApiError::bad_request(e.to_string())
            }
            NodeError::NotInitialized => ApiError::bad_request(e.to_string()),
            NodeError::Barrier(b) => b.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}
