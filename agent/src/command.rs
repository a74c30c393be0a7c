//! The command a file asks for after each render that changed it, run as
//! `sh -c <command>` with a time limit. Its output is discarded: it may well
//! print the secret it just reloaded.

use std::process::Stdio;
use std::time::Duration;

use crate::metrics::{Metrics, Outcome};

/// How long a command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `command` for file `file`; logs and counts the outcome.
pub async fn run(command: String, file: String, metrics: &Metrics) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(file = %file, error = %e, "failed to start the file's command");
            metrics.command(Outcome::Failure);
            return;
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            tracing::info!(file = %file, "command after render succeeded");
            metrics.command(Outcome::Success);
        }
        Ok(Ok(status)) => {
            tracing::warn!(file = %file, status = %status, "command after render failed");
            metrics.command(Outcome::Failure);
        }
        Ok(Err(e)) => {
            tracing::error!(file = %file, error = %e, "failed to wait for the file's command");
            metrics.command(Outcome::Failure);
        }
        Err(_) => {
            tracing::warn!(file = %file, timeout = ?COMMAND_TIMEOUT, "command after render timed out and was killed");
            metrics.command(Outcome::Failure);
        }
    }
}
