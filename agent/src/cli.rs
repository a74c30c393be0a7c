//! Command-line flags (`cairn-agent --help`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// `cairn-agent`: renders secrets from a Cairn core into files and keeps them
/// current. The injector starts it with `--init` (render once, exit) in an
/// init container and without it as a sidecar.
#[derive(Debug, Parser)]
#[command(name = "cairn-agent", version, about)]
pub struct Args {
    /// Render every file once and exit (0 when all were written).
    #[arg(long)]
    pub init: bool,
    /// The agent config as JSON (written by the injector).
    #[arg(long, env = "CAIRN_AGENT_CONFIG", hide_env_values = true)]
    pub config: String,
    /// Address of `/healthz`, `/readyz` and `/metrics` (sidecar only).
    #[arg(long, env = "CAIRN_AGENT_HTTP_ADDR", default_value = "127.0.0.1:8099")]
    pub http_addr: SocketAddr,
    /// How long `--init` retries while the core is unavailable.
    #[arg(long, env = "CAIRN_AGENT_INIT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub init_timeout: Duration,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "CAIRN_LOG_LEVEL", default_value = "info")]
    pub log_level: tracing::Level,
    /// Log format.
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}
