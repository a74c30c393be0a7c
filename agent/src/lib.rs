//! `cairn-agent`: the init/sidecar agent of Cairn. It logs in with the pod's
//! projected service-account token (Kubernetes auth), renders each configured
//! secret into a file atomically, renews its token and leases at two thirds
//! of their TTL, re-renders KV secrets when the core's change stream reports
//! a change, keeps the last good files while the core is unavailable, and on
//! SIGTERM revokes what it owns when asked to.
//!
//! The config is [`cairn_client::agent_config::AgentConfig`], handed over by
//! the injector as JSON in `CAIRN_AGENT_CONFIG`.

#![forbid(unsafe_code)]

pub mod agent;
pub mod backoff;
pub mod cli;
pub mod command;
pub mod content;
pub mod health;
pub mod login;
pub mod metrics;
pub mod output;
mod refresh;
pub mod secret;
pub mod state;
pub mod watcher;

use std::sync::Arc;

use anyhow::Context as _;
use cairn_client::agent_config::AgentConfig;
use tokio::signal::unix::{signal, SignalKind};

pub use agent::{Agent, AgentError};
pub use cli::{Args, LogFormat};
pub use health::HealthState;

/// Run the agent as the flags say; returns when `--init` is done or the
/// sidecar was told to stop.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = AgentConfig::from_json(&args.config)
        .context("the agent config (CAIRN_AGENT_CONFIG) is not usable")?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        init = args.init,
        mode = ?config.mode,
        core = %config.cairn_addr,
        files = config.files.len(),
        output_dir = %config.output_dir,
        "cairn-agent starting"
    );
    let state = Arc::new(HealthState::new());
    let mut agent = Agent::new(config, state.clone())?;
    if args.init {
        agent.render_once(args.init_timeout).await?;
        tracing::info!("every file rendered; exiting");
        return Ok(());
    }
    let mut term = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let listener = health::bind(args.http_addr)
        .await
        .with_context(|| format!("failed to listen on {}", args.http_addr))?;
    tracing::info!(addr = %args.http_addr, "serving /healthz, /readyz and /metrics");
    let server = tokio::spawn(health::serve(listener, state));
    agent
        .run(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
        .await;
    server.abort();
    Ok(())
}
