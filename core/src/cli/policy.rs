//! `cairn policy write|read|list|delete`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::input::{read_text, RealStdin};
use super::output::{emit, emit_json};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn policy`.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: PolicyCommand,
}

/// Policy commands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Create or replace a policy from a file (`-` for stdin), HCL or JSON.
    Write {
        /// Policy name.
        name: String,
        /// Policy file, or `-` for stdin.
        file: String,
    },
    /// Print a policy's text.
    Read {
        /// Policy name.
        name: String,
    },
    /// List policy names.
    List,
    /// Delete a policy.
    Delete {
        /// Policy name.
        name: String,
    },
}

/// Runs a policy command.
pub(crate) async fn run(ctx: &Ctx, command: PolicyCommand) -> Outcome {
    let client = ctx.client()?;
    match command {
        PolicyCommand::Write { name, file } => {
            let text = read_text(&file, &mut RealStdin)?;
            client
                .write_policy(&name, &text)
                .await
                .map_err(CliError::api(format!("uploading policy {name}")))?;
            if !ctx.json() {
                emit(&format!("Success! Uploaded policy: {name}"))?;
            }
        }
        PolicyCommand::Read { name } => {
            let policy = match client.read_policy(&name).await {
                Ok(policy) => policy,
                Err(err) if err.is_not_found() => {
                    return Err(CliError::Failed(format!("No policy named: {name}")))
                }
                Err(err) => return Err(CliError::api(format!("reading policy {name}"))(err)),
            };
            if ctx.json() {
                emit_json(&policy)?;
            } else {
                emit(policy.policy.trim_end())?;
            }
        }
        PolicyCommand::List => {
            let names = client
                .list_policies()
                .await
                .map_err(CliError::api("listing policies"))?;
            if ctx.json() {
                emit_json(&names)?;
            } else {
                emit(&names.join("\n"))?;
            }
        }
        PolicyCommand::Delete { name } => {
            client
                .delete_policy(&name)
                .await
                .map_err(CliError::api(format!("deleting policy {name}")))?;
            if !ctx.json() {
                emit(&format!("Success! Deleted policy: {name}"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
