//! `cairn-agent`: see the library's documentation.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use cairn_agent::{Args, LogFormat};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    // One thread: the agent waits on the network almost all the time, and a
    // sidecar in every pod should cost as little memory as it can.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "failed to start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cairn_agent::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cairn-agent failed");
            ExitCode::FAILURE
        }
    }
}
