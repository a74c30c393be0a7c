//! The two listeners: the webhook (`POST /mutate`, HTTPS) and the plain
//! HTTP port for probes and metrics (`/healthz`, `/readyz`, `/metrics`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::Config;
use crate::metrics::{Metrics, Outcome};
use crate::review::review;

/// Largest review accepted: a pod may be up to ~1.5 MiB in etcd, and the
/// review carries it plus metadata.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Time for a client to send its headers or body, or to finish the handshake.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time given to open connections after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The mutation's settings.
    pub config: Config,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// The webhook's routes.
pub fn webhook_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate_handler))
        .with_state(state)
}

/// The probe and metrics routes.
pub fn http_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(metrics): State<Arc<Metrics>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }),
        )
        .with_state(metrics)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn mutate_handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let body =
        match tokio::time::timeout(READ_TIMEOUT, to_bytes(request.into_body(), MAX_BODY_BYTES))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                let too_large =
                    std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| e.is::<http_body_util::LengthLimitError>());
                state.metrics.admission(Outcome::Invalid, Duration::ZERO);
                return if too_large {
                    error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the review is larger than 3 MiB",
                    )
                } else {
                    error(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read",
                    )
                };
            }
            Err(_) => {
                state.metrics.admission(Outcome::Invalid, Duration::ZERO);
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time",
                );
            }
        };
    let start = Instant::now();
    let result = review(&body, &state.config);
    match result {
        Ok((answer, outcome)) => {
            let response = axum::Json(answer).into_response();
            state.metrics.admission(outcome, start.elapsed());
            response
        }
        Err(e) => {
            state.metrics.admission(Outcome::Invalid, start.elapsed());
            tracing::warn!(error = %e, "malformed admission review");
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// Bind `addr` now, so a taken port fails at start.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `router` on every connection of `listener` (over TLS when an
/// acceptor is given) until `shutdown` resolves, then let open connections
/// finish for up to [`DRAIN_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let watcher = graceful.watcher();
        match tls.clone() {
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_connection(s, remote, router, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
            None => {
                tokio::spawn(serve_connection(stream, remote, router, watcher));
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
}

async fn serve_connection<S>(
    stream: S,
    remote: SocketAddr,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        router.clone().oneshot(req.map(Body::new))
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(256);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%remote, error = %e, "connection closed with error");
    }
}
