//! `cairn-csi-provider`: the Secrets Store CSI Driver provider of Cairn.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use cairn_csi_provider::{run, CoreSettings, Settings};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// Serves the Secrets Store CSI Driver's provider API for Cairn.
#[derive(Debug, Parser)]
#[command(name = "cairn-csi-provider", version)]
struct Args {
    /// Directories to create the provider socket in (comma-separated).
    #[arg(
        long,
        env = "CAIRN_CSI_SOCKET_DIRS",
        value_delimiter = ',',
        default_value = "/var/run/secrets-store-csi-providers,/etc/kubernetes/secrets-store-csi-providers"
    )]
    socket_dirs: Vec<PathBuf>,
    /// Provider name: the socket is `<name>.sock` and SecretProviderClasses say `provider: <name>`.
    #[arg(long, env = "CAIRN_CSI_PROVIDER_NAME", default_value = "cairn")]
    provider_name: String,
    /// Address of the Cairn core (a SecretProviderClass may name another with `address`).
    #[arg(
        long,
        env = "CAIRN_ADDR",
        default_value = "https://cairn.cairn.svc:8200"
    )]
    cairn_addr: String,
    /// PEM file with the CA certificate of the core.
    #[arg(long, env = "CAIRN_CACERT")]
    cairn_ca_cert: Option<PathBuf>,
    /// Address of the health and metrics endpoint.
    #[arg(long, env = "CAIRN_CSI_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    http_addr: SocketAddr,
    /// Timeout of one Mount (and of each request to the core), e.g. `10s`.
    #[arg(long, env = "CAIRN_CSI_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Log level or filter (`info`, `debug`, `cairn_csi_provider=debug`).
    #[arg(long, env = "CAIRN_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        provider = %args.provider_name,
        core = %args.cairn_addr,
        "starting cairn-csi-provider"
    );
    let settings = Settings {
        socket_dirs: args.socket_dirs,
        provider_name: args.provider_name,
        core: CoreSettings {
            address: args.cairn_addr,
            ca_cert: args.cairn_ca_cert,
            timeout: args.request_timeout,
        },
        http_addr: args.http_addr,
    };
    run(settings, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = ctrl_c => {},
            }
        }
        Err(_) => ctrl_c.await,
    }
    tracing::info!("shutting down");
}
