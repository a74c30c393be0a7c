//! `/healthz`, `/readyz` and `/metrics` on a local port, for the sidecar's
//! probes (a native sidecar's startup probe waits on `/readyz`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What the probes report, shared with the agent's loop.
pub struct HealthState {
    ready: AtomicBool,
    /// The agent's metrics.
    pub metrics: Metrics,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    /// Not ready, metrics at zero.
    pub fn new() -> Self {
        HealthState {
            ready: AtomicBool::new(false),
            metrics: Metrics::new(),
        }
    }

    /// Every file was rendered once: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        if !self.ready.swap(true, Ordering::SeqCst) {
            self.metrics.set_ready();
        }
    }

    /// Whether the first render is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Bind `addr`; fails at once when the port is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve the probes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<HealthState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "failed to accept a probe connection");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&req, &state)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "probe connection ended with an error");
            }
        });
    }
}

fn answer(req: &Request<Incoming>, state: &HealthState) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "first render pending\n"),
        "/metrics" => {
            let mut response = text(StatusCode::OK, &state.metrics.encode());
            if let Ok(value) = http::HeaderValue::from_str(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, value);
            }
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}
