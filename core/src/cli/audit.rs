//! `cairn audit enable|disable|list|verify`. `verify` is local: it re-walks
//! an audit file's hash chain without talking to the server.

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_client::EnableAudit;
use clap::{Args, Subcommand};
use serde_json::json;

use super::input::parse_pairs;
use super::output::{columns, emit, emit_json};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: AuditCommand,
}

/// Audit commands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Enable an audit device: `audit enable file file_path=/var/log/cairn/audit.log`.
    Enable {
        /// Device path (default: the device type).
        #[arg(long)]
        path: Option<String>,
        /// Human description.
        #[arg(long)]
        description: Option<String>,
        /// Local to this cluster.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        local: Option<bool>,
        /// Device type, e.g. `file`.
        device_type: String,
        /// Device options `KEY=VALUE`, e.g. `file_path=...`.
        options: Vec<String>,
    },
    /// Disable an audit device.
    Disable {
        /// Device path.
        path: String,
    },
    /// List enabled audit devices.
    List {
        /// Show options too.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        detailed: bool,
    },
    /// Check an audit file's hash chain; names the first broken line.
    Verify {
        /// The audit log file.
        file: PathBuf,
    },
}

fn with_slash(path: &str) -> String {
    format!("{}/", path.trim_matches('/'))
}

/// Runs an audit command.
pub(crate) async fn run(ctx: &Ctx, command: AuditCommand) -> Outcome {
    if let AuditCommand::Verify { file } = command {
        return verify(ctx, &file);
    }
    let client = ctx.client()?;
    match command {
        AuditCommand::Enable {
            path,
            description,
            local,
            device_type,
            options,
        } => {
            let path = path.unwrap_or_else(|| device_type.clone());
            let device = EnableAudit {
                device_type: device_type.clone(),
                description,
                options: parse_pairs(&options, "option")?,
                local,
            };
            client
                .enable_audit(&path, &device)
                .await
                .map_err(CliError::api(format!(
                    "enabling audit device at {}",
                    with_slash(&path)
                )))?;
            if !ctx.json() {
                emit(&format!(
                    "Success! Enabled the {device_type} audit device at: {}",
                    with_slash(&path)
                ))?;
            }
        }
        AuditCommand::Disable { path } => {
            client
                .disable_audit(&path)
                .await
                .map_err(CliError::api(format!(
                    "disabling audit device at {}",
                    with_slash(&path)
                )))?;
            if !ctx.json() {
                emit(&format!(
                    "Success! Disabled audit device (if it was enabled) at: {}",
                    with_slash(&path)
                ))?;
            }
        }
        AuditCommand::List { detailed } => {
            let devices = client
                .list_audit()
                .await
                .map_err(CliError::api("listing audit devices"))?;
            if ctx.json() {
                emit_json(&devices)?;
            } else if devices.is_empty() {
                emit("No audit devices are enabled.")?;
            } else {
                let mut headers = vec!["Path", "Type", "Description"];
                if detailed {
                    headers.push("Options");
                }
                let rows: Vec<Vec<String>> = devices
                    .iter()
                    .map(|(path, device)| {
                        let mut row = vec![
                            path.clone(),
                            device.device_type.clone(),
                            device.description.clone(),
                        ];
                        if detailed {
                            let options: Vec<String> = device
                                .options
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect();
                            row.push(options.join(" "));
                        }
                        row
                    })
                    .collect();
                emit(&columns(&headers, &rows))?;
            }
        }
        AuditCommand::Verify { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies the hash chain of `file` (see `cairn_core::audit::verify`).
fn verify(ctx: &Ctx, file: &std::path::Path) -> Outcome {
    let shown = file.display();
    match crate::audit::verify(file) {
        Ok(report) => {
            if ctx.json() {
                emit_json(&json!({"file": shown.to_string(), "ok": true, "lines": report.lines}))?;
            } else {
                emit(&format!(
                    "Success! {shown}: {} lines, hash chain intact",
                    report.lines
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if ctx.json() {
                emit_json(&json!({
                    "file": shown.to_string(),
                    "ok": false,
                    "line": err.line(),
                    "error": err.to_string(),
                }))?;
            }
            let detail = match &err {
                crate::audit::VerifyError::Io(io) => format!("{err}: {io}"),
                other => other.to_string(),
            };
            Err(CliError::Failed(format!(
                "Error verifying {shown}: {detail}"
            )))
        }
    }
}
