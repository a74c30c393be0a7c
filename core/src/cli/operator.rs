//! `cairn operator init|unseal|seal|rotate|key-status`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use cairn_client::{InitRequest, InitResponse, KeyStatus};
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{emit, emit_json, kv_table};
use super::status::seal_status_rows;
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn operator`.
#[derive(Args, Debug)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: OperatorCommand,
}

/// Operator commands.
#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Initialise the server: prints the unseal key shares and the root token once.
    Init {
        /// Number of key shares to split the root key into.
        #[arg(long = "key-shares", default_value_t = 5)]
        key_shares: u32,
        /// Number of shares needed to unseal.
        #[arg(long = "key-threshold", default_value_t = 3)]
        key_threshold: u32,
    },
    /// Submit one unseal key share (read from stdin when KEY is omitted or `-`).
    Unseal {
        /// The key share; prefer stdin so it stays out of shell history.
        key: Option<String>,
        /// Discard the shares submitted so far.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        reset: bool,
    },
    /// Seal the server.
    Seal,
    /// Add a new encryption key term; new writes use it.
    Rotate,
    /// Show the active encryption key term.
    #[command(name = "key-status")]
    KeyStatus,
    /// Raft cluster membership and backups.
    Raft {
        #[command(subcommand)]
        command: super::raft::RaftCommand,
    },
}

/// Runs an operator command.
pub(crate) async fn run(ctx: &Ctx, command: OperatorCommand) -> Outcome {
    if let OperatorCommand::Raft { command } = command {
        return super::raft::run(ctx, command).await;
    }
    let client = ctx.client()?;
    match command {
        OperatorCommand::Init {
            key_shares,
            key_threshold,
        } => {
            let request = InitRequest {
                secret_shares: key_shares,
                secret_threshold: key_threshold,
            };
            let init = client
                .init(&request)
                .await
                .map_err(CliError::api("initializing"))?;
            print_init(ctx, &request, &init)?;
        }
        OperatorCommand::Unseal { key, reset } => {
            let status = if reset {
                client.unseal_reset().await
            } else {
                let key = match key.as_deref() {
                    Some(key) if key != "-" => key.to_string(),
                    _ => read_key()?,
                };
                client.unseal(&key).await
            }
            .map_err(CliError::api("unsealing"))?;
            if ctx.json() {
                emit_json(&status)?;
            } else {
                emit(&kv_table(&seal_status_rows(&status)))?;
            }
        }
        OperatorCommand::Seal => {
            client.seal().await.map_err(CliError::api("sealing"))?;
            if !ctx.json() {
                emit("Success! Cairn is sealed.")?;
            }
        }
        OperatorCommand::Rotate => {
            client
                .rotate()
                .await
                .map_err(CliError::api("rotating key"))?;
            let status = client
                .key_status()
                .await
                .map_err(CliError::api("reading key status"))?;
            if ctx.json() {
                emit_json(&status)?;
            } else {
                emit(&format!(
                    "Success! Rotated key\n\n{}",
                    kv_table(&key_status_rows(&status))
                ))?;
            }
        }
        OperatorCommand::KeyStatus => {
            let status = client
                .key_status()
                .await
                .map_err(CliError::api("reading key status"))?;
            if ctx.json() {
                emit_json(&status)?;
            } else {
                emit(&kv_table(&key_status_rows(&status)))?;
            }
        }
        OperatorCommand::Raft { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the shares and root token: this is the one time they are shown.
fn print_init(ctx: &Ctx, request: &InitRequest, init: &InitResponse) -> Result<(), CliError> {
    if ctx.json() {
        return emit_json(&json!({
            "unseal_keys_b64": init.keys_base64,
            "unseal_keys_hex": init.keys,
            "unseal_shares": request.secret_shares,
            "unseal_threshold": request.secret_threshold,
            "root_token": init.root_token,
        }));
    }
    let mut text = String::new();
    for (i, key) in init.keys_base64.iter().enumerate() {
        text.push_str(&format!("Unseal Key {}: {key}\n", i + 1));
    }
    text.push_str(&format!("\nInitial Root Token: {}\n\n", init.root_token));
    text.push_str(&format!(
        "Cairn initialized with {} key shares and a key threshold of {}. Please securely\n\
         distribute the key shares printed above. When the server is re-sealed,\n\
         restarted, or stopped, you must supply at least {} of these keys to unseal it\n\
         before it can start servicing requests.\n\n\
         Cairn does not store the generated root key. Without at least {} keys to\n\
         reconstruct the root key, Cairn will remain permanently sealed!",
        request.secret_shares,
        request.secret_threshold,
        request.secret_threshold,
        request.secret_threshold
    ));
    emit(&text)
}

fn key_status_rows(status: &KeyStatus) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Key Term".to_string(), status.term.to_string()),
        ("Install Time".to_string(), status.install_time.clone()),
    ];
    if let Some(count) = status.encryptions {
        rows.push(("Encryption Count".to_string(), count.to_string()));
    }
    rows
}

/// Reads one key share from stdin. On a terminal, echo is turned off with
/// `stty` (best effort: without it the prompt says the key will be shown).
fn read_key() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let hidden = interactive && set_echo(false);
    if interactive {
        let note = if hidden {
            "will be hidden"
        } else {
            "will be echoed"
        };
        eprint!("Unseal Key ({note}): ");
        // A prompt that fails to show is not worth failing the unseal.
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if hidden {
        set_echo(true);
        eprintln!();
    }
    read.map_err(|err| CliError::Failed(format!("Error reading the unseal key: {err}")))?;
    let key = line.trim().to_string();
    if key.is_empty() {
        return Err(CliError::Usage("no unseal key given".into()));
    }
    Ok(key)
}

/// Turns terminal echo on or off through `stty`; false if that failed.
fn set_echo(on: bool) -> bool {
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
