//! `cairn-csi-provider`: a provider for the Secrets Store CSI Driver. The
//! driver calls it over a unix socket (`<name>.sock` in the provider
//! directories) with the pod's identity and service-account token; it logs
//! in to the Cairn core as the pod and returns the SecretProviderClass's
//! objects as files: KV secrets, and dynamic credentials under leases owned
//! by the pod, which later rotation polls renew instead of re-issuing.
//!
//! Layers: [`params`] and [`object`] parse and validate what the driver
//! sends, [`mount`] decides what to fetch and builds the files, [`upstream`]
//! talks to the core, [`service`] is the gRPC adapter, [`socket`] and
//! [`http`] the transports, [`run`] ties them together.

#![forbid(unsafe_code)]

pub mod cache;
pub mod error;
pub mod http;
pub mod metrics;
pub mod mount;
pub mod object;
pub mod params;
pub mod service;
pub mod socket;
pub mod upstream;
pub mod version;

/// Code generated from `proto/v1alpha1/service.proto` (the driver's
/// provider API).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
}

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::pin::Pin;

use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt as _};

pub use mount::{CoreSettings, Provider};

/// Everything the provider process is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directories to put the socket in.
    pub socket_dirs: Vec<PathBuf>,
    /// Provider name; the socket is `<name>.sock`.
    pub provider_name: String,
    /// How to reach the core by default.
    pub core: CoreSettings,
    /// Address of the health and metrics endpoint.
    pub http_addr: SocketAddr,
}

/// Why the provider stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No socket could be bound.
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    /// The HTTP address could not be bound.
    #[error("failed to listen on {addr}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed")]
    Grpc(#[source] tonic::transport::Error),
}

/// Serves the sockets and the HTTP endpoint until `shutdown` completes,
/// then removes the socket files.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(metrics::Metrics::default());
    let provider = Arc::new(Provider::new(settings.core.clone(), metrics.clone()));
    let service = service::CsiService::new(provider, metrics.clone(), settings.core.timeout);

    let http_listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .map_err(|source| RunError::Http {
            addr: settings.http_addr,
            source,
        })?;
    let sockets = socket::bind(&settings.socket_dirs, &settings.provider_name)?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        let app = http::router(metrics);
        let stopped = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(http_listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the HTTP endpoint failed");
        }
    });

    let mut sockets = sockets;
    let incoming = merged(std::mem::take(&mut sockets.listeners));
    let mut grpc_stop = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .add_service(
            proto::csi_driver_provider_server::CsiDriverProviderServer::new(service)
                .max_encoding_message_size(mount::MAX_RESPONSE_BYTES)
                .max_decoding_message_size(mount::MAX_RESPONSE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        });
    // The driver keeps its connections open: after the signal, in-flight
    // Mounts get one request timeout to finish, then the process exits.
    let mut grace_stop = stop_rx;
    let grace = settings.core.timeout;
    let served = tokio::select! {
        served = server => served,
        () = async move {
            let _ = grace_stop.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::info!("connections still open after the grace period; closing them");
            Ok(())
        }
    };
    let _ = http.await;
    drop(sockets);
    tracing::info!("stopped");
    served.map_err(RunError::Grpc)
}

type Incoming = Pin<Box<dyn Stream<Item = std::io::Result<UnixStream>> + Send>>;

/// The connections of all listeners as one stream.
fn merged(listeners: Vec<UnixListener>) -> Incoming {
    let mut streams = listeners.into_iter().map(UnixListenerStream::new);
    let mut all: Incoming = match streams.next() {
        Some(first) => Box::pin(first),
        None => Box::pin(tokio_stream::empty()),
    };
    for next in streams {
        all = Box::pin(all.merge(next));
    }
    all
}
