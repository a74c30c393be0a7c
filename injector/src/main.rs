//! `cairn-injector`: the mutating admission webhook of Cairn.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use cairn_injector::cli::{run, Args, LogFormat};
use clap::Parser;

fn init_logging(level: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},h2=warn,hyper=warn,rustls=warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                () = ctrl_c => {}
            }
        }
        Err(_) => ctrl_c.await,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_level, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cairn-injector failed");
            ExitCode::FAILURE
        }
    }
}
