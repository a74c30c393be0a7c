//! The life of one request: seal check, token, ACL, audit, handler, audit.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::call::{self, Call};
use super::reply::{ApiError, Reply};
use super::{login, sys, token, AppState};
use crate::audit::{AuditAuth, AuditRequest, AuditResponse};
use crate::auth::token::TokenEntry;
use crate::engines::{self, Operation};
use crate::lease::Owner;
use crate::node::Unsealed;
use crate::policy::{Acl, Capabilities};
use crate::time;

/// Paths answered without a token (and on a sealed node).
fn is_unauthenticated(path: &str) -> bool {
    matches!(
        path,
        "sys/init"
            | "sys/seal-status"
            | "sys/unseal"
            | "sys/health"
            | "sys/leader"
            | "sys/cairn/noop"
            | "sys/storage/raft/join"
            | "sys/internal/specs/openapi"
    )
}

/// Paths that need `sudo` besides the operation's capability (Vault's root-protected paths).
fn needs_sudo(path: &str) -> bool {
    path == "sys/audit"
        || path.starts_with("sys/audit/")
        || path == "sys/rotate"
        || path.starts_with("sys/auth/")
        || path == "sys/seal"
        || path == "sys/storage/raft/snapshot"
        || path == "sys/storage/raft/remove-peer"
        || path == "sys/capabilities"
        || path.starts_with("sys/raw")
        || path.starts_with("auth/token/revoke-orphan")
        || path.starts_with("sys/leases/revoke-prefix")
        || path.starts_with("sys/leases/revoke-force")
        || path.starts_with("sys/leases/lookup/")
        || path == "auth/token/accessors"
}

/// The capability an operation needs.
pub fn capability_of(op: Operation) -> Capabilities {
    match op {
        Operation::Read => Capabilities::READ,
        Operation::List => Capabilities::LIST,
        Operation::Create => Capabilities::CREATE,
        Operation::Update => Capabilities::UPDATE,
        Operation::Patch => Capabilities::PATCH,
        Operation::Delete => Capabilities::DELETE,
    }
}

/// Vault's operation names, for the audit log.
fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Read => "read",
        Operation::List => "list",
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Patch => "patch",
        Operation::Delete => "delete",
    }
}

/// An authenticated caller.
pub struct Caller {
    pub token: String,
    pub entry: TokenEntry,
    pub acl: Arc<Acl>,
}

/// Everything a handler may use.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub unsealed: Arc<Unsealed>,
    pub caller: Caller,
    /// The client's address, for the audit log.
    pub remote: &'a str,
}

async fn read_call(state: &AppState, req: Request<Body>) -> Result<Call, ApiError> {
    let (parts, body) = req.into_parts();
    let path = call::parse_path(parts.uri.path())?;
    let query = call::parse_query(parts.uri.query())?;
    let (operation, list) = call::operation_of(&parts.method, &query)?;
    let bytes = axum::body::to_bytes(body, state.max_request_size)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than the limit of {} bytes",
                    state.max_request_size
                ),
            )
        })?;
    let data = call::parse_body(&bytes)?;
    let lease_owner = parts
        .headers
        .get("x-cairn-lease-owner")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Call {
        lease_owner,
        token: call::token_from_headers(&parts.headers),
        method: parts.method,
        operation,
        path,
        data: data.into(),
        query,
        list,
    })
}

/// Run one request to its reply.
pub async fn run(
    state: &AppState,
    req: Request<Body>,
    remote: &str,
    request_id: &str,
) -> Result<Reply, ApiError> {
    // In a Raft cluster: forward writes to the leader, pass reads through a
    // read-index barrier (unless the client asked for stale reads).
    use crate::cluster::routing::{route, Routed};
    let Some(cluster) = state.node.cluster() else {
        return serve(state, req, remote, request_id).await;
    };
    let routed = route(cluster, state.node.is_sealed(), req, state.max_request_size).await?;
    if !matches!(routed, Routed::Forwarded(_)) {
        // Served here: first load what the log changed that memory lacks.
        cluster
            .state
            .ensure_current(&state.node)
            .await
            .map_err(|e| ApiError::internal(format!("reloading replicated state: {e}")))?;
    }
    match routed {
        Routed::Local(req) => serve(state, req, remote, request_id).await,
        Routed::Leader(req, term) => {
            use crate::storage::raft::{LeaderTerm, LEADER_TERM};
            let (reply, committed) = LEADER_TERM
                .scope(LeaderTerm::new(term), async {
                    let reply = serve(state, req, remote, request_id).await;
                    (reply, LEADER_TERM.with(LeaderTerm::committed))
                })
                .await;
            if !committed {
                crate::cluster::routing::confirm_leadership(cluster).await?;
            }
            reply
        }
        Routed::Forwarded(reply) => Ok(reply),
    }
}

/// Serve one request on this node.
async fn serve(
    state: &AppState,
    req: Request<Body>,
    remote: &str,
    request_id: &str,
) -> Result<Reply, ApiError> {
    let mut call = read_call(state, req).await?;
    if is_unauthenticated(&call.path) {
        return sys::unauthenticated(state, &call).await;
    }
    if login::is_login(&call.path) {
        return login::run(state, &call, remote, request_id).await;
    }
    let unsealed = state.node.unsealed().map_err(|_| ApiError::sealed())?;

    let token_value = call.token.take().unwrap_or_default();
    let entry = match unsealed.tokens.lookup(&token_value, time::now()).await? {
        Some(e) => e,
        None => return Err(ApiError::denied()),
    };
    let acl = unsealed.policies.acl(&entry.policies).await?;
    let ctx = Ctx {
        state,
        unsealed,
        caller: Caller {
            token: token_value,
            entry,
            acl,
        },
        remote,
    };
    serve_as(&ctx, call, request_id).await
}

/// Serve `call` as the authenticated caller: the ACL check, the audit
/// request, the handler, the audit response, the token's use. Also each
/// read of a `sys/cairn/read` batch.
pub async fn serve_as(ctx: &Ctx<'_>, mut call: Call, request_id: &str) -> Result<Reply, ApiError> {
    // POST/PUT on an engine path is `create` unless the target exists.
    let mount = ctx.unsealed.mounts.route(&call.path);
    if call.operation == Operation::Update {
        if let Some((m, rest)) = &mount {
            if !m.engine.exists(rest, &m.view).await? {
                call.operation = Operation::Create;
            }
        }
    }
    let acl_path = if call.list {
        format!("{}/", call.path)
    } else {
        call.path.clone()
    };
    let mut needed = capability_of(call.operation);
    if needs_sudo(&call.path) {
        needed = needed.union(Capabilities::SUDO);
    }
    let allowed = ctx.caller.acl.allows(&acl_path, needed);

    let auth = AuditAuth {
        client_token: Some(&ctx.caller.token),
        accessor: Some(&ctx.caller.entry.accessor),
        display_name: &ctx.caller.entry.display_name,
        policies: &ctx.caller.entry.policies,
        token_ttl: ctx.caller.entry.ttl(time::now()),
    };
    let audit_req = AuditRequest {
        id: request_id,
        operation: operation_name(call.operation),
        path: &call.path,
        data: (!call.data.is_empty()).then_some(&*call.data),
        remote_address: ctx.remote,
        auth: Some(auth),
    };
    let broker = ctx.unsealed.audit.broker.clone();
    broker
        .log_request(&audit_req)
        .await
        .map_err(|e| ApiError::internal(format!("audit: {e}")))?;

    let result = if allowed {
        dispatch(ctx, &call, mount, request_id).await
    } else {
        Err(ApiError::denied())
    };

    let result = audit_response(&broker, audit_req, request_id, result).await?;
    if result.is_ok() {
        ctx.unsealed.tokens.use_once(&ctx.caller.entry).await?;
    }
    result
}

/// Render a handler's result and audit it before anything leaves the server;
/// if no device can record it, the client gets a 500 and none of the data.
pub async fn audit_response(
    broker: &crate::audit::AuditBroker,
    audit_req: AuditRequest<'_>,
    request_id: &str,
    result: Result<Reply, ApiError>,
) -> Result<Result<Reply, ApiError>, ApiError> {
    let (result, envelope) = match result {
        Ok(reply) => {
            let (wire, envelope) = reply.render(request_id);
            (Ok(wire), envelope)
        }
        Err(e) => (Err(e), None),
    };
    let (status, error) = match &result {
        Ok(wire) => (if wire.status == 0 { 200 } else { wire.status }, None),
        Err(e) => (e.status.as_u16(), Some(e.errors.join("; "))),
    };
    broker
        .log_response(&AuditResponse {
            request: audit_req,
            status,
            data: envelope.as_ref(),
            error: error.as_deref(),
        })
        .await
        .map_err(|e| ApiError::internal(format!("audit: {e}")))?;
    Ok(result)
}

async fn dispatch(
    ctx: &Ctx<'_>,
    call: &Call,
    mount: Option<(crate::node::mounts::Mount, &str)>,
    request_id: &str,
) -> Result<Reply, ApiError> {
    if let Some(rest) = call.path.strip_prefix("sys/") {
        return sys::authenticated(ctx, call, rest, request_id).await;
    }
    if let Some(rest) = call.path.strip_prefix("auth/token/") {
        return token::route(ctx, call, rest).await;
    }
    let Some((m, rest)) = mount else {
        return Err(ApiError::unsupported_path());
    };
    let req = engines::Request {
        operation: call.operation,
        path: if call.list && !rest.is_empty() {
            format!("{rest}/")
        } else {
            rest.to_owned()
        },
        data: std::sync::Arc::clone(&call.data),
        query: call.query.clone(),
        mount_point: m.entry.path.clone(),
    };
    let owner = lease_owner(ctx, call)?;
    let resp = m.engine.handle(req, &m.view).await?;
    let lease = match resp.lease {
        None => None,
        Some(request) => {
            let issued = ctx
                .unsealed
                .leases
                .issue(&m.entry, rest, request.clone(), owner)
                .await;
            match issued {
                Ok(i) => Some(i),
                Err(e) => {
                    // Without a lease nothing would ever revoke the secret: destroy it now.
                    if let Err(revoke) = m.engine.revoke(&request.internal, &m.view).await {
                        tracing::error!(error = %revoke, "could not revoke a secret whose lease failed to record");
                    }
                    return Err(ApiError::internal(format!("failed to record lease: {e}")));
                }
            }
        }
    };
    Ok(Reply {
        data: resp.data,
        warnings: resp.warnings,
        status: resp.status,
        lease: lease.map(|i| (i.lease_id, i.lease_duration, i.renewable)),
        ..Default::default()
    })
}

/// Who will own a lease issued by this request: the object named by
/// `X-Cairn-Lease-Owner`, which must be in the caller's own namespace (root
/// may name any), or else the caller's token.
fn lease_owner(ctx: &Ctx<'_>, call: &Call) -> Result<Owner, ApiError> {
    let Some(text) = &call.lease_owner else {
        return Ok(Owner::Token {
            hash: ctx.caller.entry.hash.clone(),
        });
    };
    let owner = Owner::parse_object(text).map_err(ApiError::bad_request)?;
    if let Owner::Object { namespace, .. } = &owner {
        if !may_act_in_namespace(ctx, &call.path, namespace) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a token may bind leases only to objects of its own namespace",
            ));
        }
    }
    Ok(owner)
}

/// Whether the caller may act on objects of `namespace` at `path`: a token
/// bound to a namespace (Kubernetes login) only in its own, unless its
/// policies grant `sudo` on the path (the operator's cross-namespace
/// garbage collection) or it is root. A token bound to no namespace acts in
/// none.
pub fn may_act_in_namespace(ctx: &Ctx<'_>, path: &str, namespace: &str) -> bool {
    ctx.caller.entry.is_root()
        || ctx.caller.acl.allows(path, Capabilities::SUDO)
        || caller_namespace(&ctx.caller.entry) == Some(namespace)
}

/// The Kubernetes namespace a token was issued for (Kubernetes auth sets it).
pub fn caller_namespace(entry: &TokenEntry) -> Option<&str> {
    entry
        .meta
        .get("service_account_namespace")
        .map(String::as_str)
}
