//! The HTTP API: Vault-compatible paths and JSON under `/v1/`.
//!
//! One handler receives every request (Vault's path space does not fit a
//! static route table, and `LIST` is not a method axum's router knows); it
//! parses a [`call::Call`], then [`pipeline`] runs seal check -> token ->
//! ACL -> audit -> handler -> audit, and [`reply`] renders the envelope.

pub mod call;
mod login;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod reply;
mod sys;
mod to_completion;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, Response, StatusCode};
use axum::Router;

use crate::node::Node;
pub use metrics::Metrics;
use to_completion::ToCompletion;

/// Vault's default `max_request_size`: 32 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 << 20;

/// Shared by every request.
pub struct AppState {
    pub node: Arc<Node>,
    pub metrics: Metrics,
    pub max_request_size: usize,
}

/// The axum router for the whole API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response<Body> {
    // Every request runs to its end, even if the client (or the follower that
    // forwarded it) goes away: see `to_completion`.
    match ToCompletion::new(serve_request(state, req)).await {
        Ok(resp) => resp,
        Err(to_completion::Panicked) => {
            tracing::error!("request handler panicked");
            reply::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                .into_response()
        }
    }
}

async fn serve_request(state: Arc<AppState>, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().clone();
    let resp = match pipeline::run(&state, req, &remote, &request_id).await {
        Ok(reply) => reply.into_response(&request_id),
        Err(err) => {
            if let Some(detail) = &err.internal {
                tracing::error!(request_id = %request_id, error = %detail, "request failed");
            }
            err.into_response()
        }
    };
    state
        .metrics
        .observe(&method, resp.status(), started.elapsed());
    resp
}

/// A 404 for anything outside `/v1/`.
pub fn not_found() -> Response<Body> {
    reply::ApiError::new(StatusCode::NOT_FOUND, "not found").into_response()
}
