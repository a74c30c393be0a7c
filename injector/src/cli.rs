//! The command line (fixed by the chart's contract) and the program's start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser, ValueEnum};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::server::{self, AppState};
use crate::tls::{ReloadingCert, TlsError};

/// Mutating admission webhook that adds the Cairn agent to annotated pods.
#[derive(Debug, Clone, Parser)]
#[command(name = "cairn-injector", version, about)]
pub struct Args {
    /// Address of the webhook (HTTPS, path `/mutate`).
    #[arg(long, env = "CAIRN_INJECTOR_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM certificate chain of the webhook, reloaded when the file changes.
    #[arg(
        long,
        env = "CAIRN_INJECTOR_TLS_CERT",
        default_value = "/etc/cairn/tls/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM private key of the webhook, reloaded when the file changes.
    #[arg(
        long,
        env = "CAIRN_INJECTOR_TLS_KEY",
        default_value = "/etc/cairn/tls/tls.key"
    )]
    pub tls_key: PathBuf,
    /// The `cairn-agent` image added to pods.
    #[arg(long, env = "CAIRN_AGENT_IMAGE")]
    pub agent_image: String,
    /// The Cairn core's address, handed to the agent.
    #[arg(long, env = "CAIRN_ADDR")]
    pub cairn_addr: String,
    /// A ConfigMap with `ca.crt` (the core's CA) that the agent mounts.
    #[arg(long, env = "CAIRN_CA_CONFIGMAP")]
    pub cairn_ca_configmap: Option<String>,
    /// The injector's namespace; its pods are never touched.
    #[arg(long, env = "POD_NAMESPACE")]
    pub own_namespace: Option<String>,
    /// Run the agent as a native sidecar (Kubernetes 1.29+) unless a pod's
    /// `cairn.dev/native-sidecar` says otherwise.
    #[arg(long, env = "CAIRN_NATIVE_SIDECAR", default_value_t = true, action = ArgAction::Set)]
    pub native_sidecar: bool,
    /// The auth mount the agent logs in at, unless a pod names another.
    #[arg(long, env = "CAIRN_AUTH_MOUNT", default_value = "kubernetes")]
    pub auth_mount: String,
    /// Address of the plain HTTP port: `/healthz`, `/readyz`, `/metrics`.
    #[arg(long, env = "CAIRN_INJECTOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`).
    #[arg(long, env = "CAIRN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Failures to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The serving certificate cannot be loaded.
    #[error("failed to load the serving certificate: {0}")]
    Tls(#[from] TlsError),
    /// A port cannot be bound.
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An argument has an unusable value.
    #[error("invalid --{flag}: {reason}")]
    Arg {
        /// The flag.
        flag: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl Args {
    /// The mutation's settings.
    pub fn config(&self) -> Result<Config, StartError> {
        let agent_image = self.agent_image.trim();
        if agent_image.is_empty() {
            return Err(StartError::Arg {
                flag: "agent-image",
                reason: "empty",
            });
        }
        let addr = self.cairn_addr.trim();
        if !(addr.starts_with("https://") || addr.starts_with("http://")) {
            return Err(StartError::Arg {
                flag: "cairn-addr",
                reason: "expected an http:// or https:// URL",
            });
        }
        let mut config = Config::new(agent_image, addr);
        config.ca_configmap = self
            .cairn_ca_configmap
            .clone()
            .filter(|c| !c.trim().is_empty());
        config.own_namespace = self.own_namespace.clone().filter(|n| !n.trim().is_empty());
        config.native_sidecar = self.native_sidecar;
        config.auth_mount = self.auth_mount.trim().trim_matches('/').to_owned();
        if config.auth_mount.is_empty() {
            return Err(StartError::Arg {
                flag: "auth-mount",
                reason: "empty",
            });
        }
        Ok(config)
    }
}

/// Start both listeners and serve until `shutdown` resolves.
pub async fn run(
    args: Args,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let config = args.config()?;
    let metrics = Arc::new(Metrics::default());
    let cert = ReloadingCert::load(&args.tls_cert, &args.tls_key, metrics.clone())?;
    let acceptor = TlsAcceptor::from(Arc::new(cert.server_config()?));
    let bind = |addr: SocketAddr| async move {
        server::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let webhook = bind(args.listen).await?;
    let http = bind(args.http_addr).await?;
    // Tests and operators read the bound addresses (port 0 picks a free one).
    for (listener, name) in [(&webhook, "webhook"), (&http, "http")] {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(listener = name, %addr, "listening");
        }
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        agent_image = %config.agent_image,
        native_sidecar = config.native_sidecar,
        "cairn-injector started"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let state = Arc::new(AppState {
        config,
        metrics: metrics.clone(),
    });
    let webhook_task = tokio::spawn(server::serve(
        webhook,
        Some(acceptor),
        server::webhook_router(state),
        stopped(),
    ));
    let http_task = tokio::spawn(server::serve(
        http,
        None,
        server::http_router(metrics),
        stopped(),
    ));
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = webhook_task.await;
    let _ = http_task.await;
    Ok(())
}
