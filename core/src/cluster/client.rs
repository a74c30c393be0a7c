//! The client side of the cluster port: JSON over HTTP/1.1 keep-alive
//! connections, mutually authenticated with peer TLS (or plaintext under
//! `--insecure-cluster`).
//!
//! HTTP/1.1 rather than HTTP/2: openraft sends one append-entries RPC at a
//! time per follower, so HTTP/2's multiplexing buys nothing on the hot path,
//! while its server spawns a task per stream and its client hands every
//! frame to a connection task. Without those hand-offs (3 nodes on one
//! 2-core machine, alternated runs): a single client's replicated write took
//! 1.73 instead of 1.94 ms (p50) and 14 % less CPU, a read-index round a
//! quarter less CPU, and 256 clients wrote 12,000 instead of 9,600/s.
//! Concurrent forwarded requests each take a pooled connection of their own.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use hyper::StatusCode;
use tokio_rustls::TlsConnector;

use super::peer_conn::{self, PeerConn};
use super::tls::{PeerTlsError, PeerTlsFiles};

/// Failures talking to a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made: the request was not sent, so retrying is safe.
    #[error("peer {addr} is unreachable: {message}")]
    Connect { addr: String, message: String },
    /// The connection broke or no answer came in time.
    #[error("peer {addr} is unreachable: {message}")]
    Unreachable { addr: String, message: String },
    /// The peer answered with an HTTP error.
    #[error("peer {addr} answered {status}: {message}")]
    Status {
        addr: String,
        status: u16,
        message: String,
    },
    /// The peer's answer was not what the protocol says.
    #[error("peer {addr} sent a malformed answer: {message}")]
    Malformed { addr: String, message: String },
}

/// How long opening a connection to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTP client for peers' cluster listeners: pooled connections for
/// votes, snapshots and forwarded requests, and [`PeerConn`]s of their own
/// for the replication tasks.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    scheme: &'static str,
    /// Peer TLS for [`PeerConn`]s; `None` under `--insecure-cluster`.
    connector: Option<TlsConnector>,
}

impl PeerClient {
    /// A client presenting `tls` (peer TLS), or plaintext when `tls` is `None`.
    pub fn new(tls: Option<&PeerTlsFiles>) -> Result<Self, PeerTlsError> {
        let builder = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            // Below the listener's 30 s idle close (`listener::serve_connection`),
            // so this side drops an idle connection before the peer does and a
            // request never races the peer's close.
            .pool_idle_timeout(peer_conn::IDLE_TIMEOUT)
            .tcp_nodelay(true);
        let (builder, scheme, connector) = match tls {
            Some(files) => {
                // Read the files once; the pool and the owned connections share it.
                let config = files.client_config()?;
                (
                    builder.use_preconfigured_tls(config.clone()),
                    "https",
                    Some(peer_conn::connector(config)),
                )
            }
            None => (builder, "http", None),
        };
        let http = builder
            .build()
            .map_err(|e| PeerTlsError::Config(e.to_string()))?;
        Ok(PeerClient {
            http,
            scheme,
            connector,
        })
    }

    /// A connection of its own to the peer at `addr` (`host:port`), for a
    /// task that sends one request at a time (see [`PeerConn`]).
    pub fn conn(&self, addr: &str) -> PeerConn {
        PeerConn::new(addr.to_owned(), self.connector.clone())
    }

    /// POST `body` as JSON to `path` on the peer at `addr` (`host:port`).
    pub async fn post<Req, Resp>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(body).map_err(|e| PeerError::Unreachable {
            addr: addr.to_owned(),
            message: format!("cannot encode the request: {e}"),
        })?;
        self.post_bytes(addr, path, "application/json", body, timeout)
            .await
    }

    /// POST `body` of `content_type` to `path` on the peer at `addr`; the
    /// answer is JSON.
    pub async fn post_bytes<Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let url = format!("{}://{}{}", self.scheme, addr, path);
        let unreachable = |e: reqwest::Error| PeerError::Unreachable {
            addr: addr.to_owned(),
            message: error_chain(&e),
        };
        let resp = self
            .http
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    PeerError::Connect {
                        addr: addr.to_owned(),
                        message: error_chain(&e),
                    }
                } else {
                    unreachable(e)
                }
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        answer(addr, status, &bytes)
    }
}

/// A peer's answer: the JSON body of a success, or the error it names.
pub(super) fn answer<Resp: DeserializeOwned>(
    addr: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<Resp, PeerError> {
    if !status.is_success() {
        return Err(PeerError::Status {
            addr: addr.to_owned(),
            status: status.as_u16(),
            message: String::from_utf8_lossy(bytes).chars().take(300).collect(),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| PeerError::Malformed {
        addr: addr.to_owned(),
        message: e.to_string(),
    })
}

/// An error with its sources, so "TLS handshake failed: unknown CA" survives.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
