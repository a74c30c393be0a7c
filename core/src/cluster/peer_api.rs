//! The server side of the cluster port: openraft's RPCs, the leader services
//! (forwarded writes, read index, join) and forwarded client requests. Every
//! connection is authenticated by peer TLS before it reaches these handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::join::{
    self, ForwardWrite, JoinRequest, FORWARD_WRITE_PATH, JOIN_PATH, READ_INDEX_PATH,
};
use super::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};
use super::Cluster;
use crate::listener::{self, ListenerError};
use crate::storage::raft::{codec, typ, ProposeOutcome};

/// Cluster path of forwarded client requests.
pub const API_PATH: &str = "/cluster/api";

/// Largest peer message: log batches and snapshot chunks.
const MAX_PEER_BODY: usize = 256 << 20;

/// A client request a follower hands to the leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedRequest {
    pub method: String,
    /// Path and query, e.g. `/v1/secret/data/a?version=2`.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "crate::storage::raft::types::b64")]
    pub body: Vec<u8>,
}

/// The leader's answer to a [`ForwardedRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedResponse {
    pub status: u16,
    #[serde(with = "crate::storage::raft::types::b64")]
    pub body: Vec<u8>,
}

/// The cluster port's router.
pub fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(FORWARD_WRITE_PATH, post(forward_write))
        .route(READ_INDEX_PATH, post(read_index))
        .route(JOIN_PATH, post(join_handler))
        .route(API_PATH, post(api))
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY))
        .with_state(cluster)
}

/// Bind the cluster listener at `addr` and serve peers. With `tls` the
/// handshake demands a client certificate from the cluster CA.
pub async fn serve(
    cluster: Arc<Cluster>,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<tokio::task::JoinHandle<()>, ListenerError> {
    let tcp = listener::bind(addr).await?;
    tracing::info!(%addr, tls = tls.is_some(), "cluster listener ready");
    Ok(tokio::spawn(listener::serve(tcp, tls, router(cluster))))
}

type S = State<Arc<Cluster>>;

/// Entries come in the log's binary form; JSON is still accepted, so a
/// leader of an earlier version can still replicate to this node during a
/// rolling upgrade (the other way round, an earlier follower refuses the
/// binary form until it is upgraded too).
async fn append(
    State(c): S,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let binary = headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == codec::APPEND_CONTENT_TYPE.as_bytes());
    let rpc: typ::AppendEntriesRequest = if binary {
        codec::decode_append(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
    } else {
        serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
    };
    Ok(Json(
        serde_json::to_value(c.raft().append_entries(rpc).await).unwrap_or_default(),
    ))
}

async fn vote(State(c): S, Json(rpc): Json<typ::VoteRequest>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(c.raft().vote(rpc).await).unwrap_or_default())
}

async fn snapshot(
    State(c): S,
    Json(rpc): Json<typ::InstallSnapshotRequest>,
) -> Json<serde_json::Value> {
    Json(serde_json::to_value(c.raft().install_snapshot(rpc).await).unwrap_or_default())
}

async fn forward_write(State(c): S, Json(req): Json<ForwardWrite>) -> Json<Result<u64, String>> {
    let answer = match c.storage.propose(req.ops).await {
        Ok(ProposeOutcome::Committed(index)) => Ok(index),
        Ok(ProposeOutcome::NotLeader(_)) => {
            Err("this node is no longer the raft leader; retry".to_owned())
        }
        Err(e) => Err(e.to_string()),
    };
    Json(answer)
}

async fn read_index(State(c): S) -> Json<Result<u64, String>> {
    Json(
        c.storage
            .shared_read_index()
            .await
            .map_err(|e| e.to_string()),
    )
}

async fn join_handler(State(c): S, Json(req): Json<JoinRequest>) -> Json<Result<(), String>> {
    let answer = if c.storage.is_leader() {
        c.add_member(req.node).await.map_err(|e| e.to_string())
    } else {
        match c.known_leader() {
            Some((_, leader)) => join::join_via_node(&c, &leader.cluster_addr, req.node)
                .await
                .map_err(|e| e.to_string()),
            None => Err("this node knows no raft leader; retry".to_owned()),
        }
    };
    Json(answer)
}

async fn api(
    State(c): S,
    Json(req): Json<ForwardedRequest>,
) -> Json<Result<ForwardedResponse, String>> {
    Json(serve_forwarded(&c, req).await)
}

/// Run a forwarded client request through this node's own API router.
async fn serve_forwarded(c: &Cluster, req: ForwardedRequest) -> Result<ForwardedResponse, String> {
    // Say so before running anything, so the follower retries elsewhere; a
    // leadership change after this point is caught by the term guard.
    if !c.storage.is_leader() {
        return Err(super::routing::NOT_LEADER.to_owned());
    }
    let router = c.api.get().cloned().ok_or("this node's API is not ready")?;
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|_| "bad method".to_owned())?;
    let mut http = Request::builder().method(method).uri(req.uri.as_str());
    for (name, value) in &req.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            http = http.header(n, v);
        }
    }
    // A forwarded request never forwards again: loops are impossible even while
    // leadership moves.
    http = http.header(super::routing::FORWARDED_HEADER, "1");
    let http = http.body(Body::from(req.body)).map_err(|e| e.to_string())?;
    let resp = router.oneshot(http).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), MAX_PEER_BODY)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ForwardedResponse {
        status,
        body: body.to_vec(),
    })
}
