//! `cairn secrets enable|disable|tune|list`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use cairn_client::{EnableMount, MountConfigInput, MountTune};
use clap::{Args, Subcommand};

use super::input::parse_pairs;
use super::output::{columns, duration_text, emit, emit_json};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn secrets`.
#[derive(Args, Debug)]
pub struct SecretsArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: SecretsCommand,
}

/// Secrets engine commands.
#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Enable a secrets engine: `secrets enable -path=team -version=2 kv`.
    #[command(disable_version_flag = true)]
    Enable {
        /// Mount path (default: the engine type).
        #[arg(long)]
        path: Option<String>,
        /// Engine version; sets the `version` option (`2` for kv v2).
        #[arg(long)]
        version: Option<u32>,
        /// Human description.
        #[arg(long)]
        description: Option<String>,
        /// Default lease TTL, e.g. `1h`.
        #[arg(long = "default-lease-ttl")]
        default_lease_ttl: Option<String>,
        /// Maximum lease TTL.
        #[arg(long = "max-lease-ttl")]
        max_lease_ttl: Option<String>,
        /// Engine option `KEY=VALUE`; repeatable.
        #[arg(long = "options")]
        options: Vec<String>,
        /// Engine type, e.g. `kv`.
        engine_type: String,
    },
    /// Disable a secrets engine and delete its data.
    Disable {
        /// Mount path.
        path: String,
    },
    /// Change a mount's lease TTLs or description.
    Tune {
        /// Default lease TTL.
        #[arg(long = "default-lease-ttl")]
        default_lease_ttl: Option<String>,
        /// Maximum lease TTL.
        #[arg(long = "max-lease-ttl")]
        max_lease_ttl: Option<String>,
        /// Human description.
        #[arg(long)]
        description: Option<String>,
        /// Mount path.
        path: String,
    },
    /// List enabled secrets engines.
    List {
        /// Show TTLs and options too.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        detailed: bool,
    },
}

/// `team/kv` -> `team/kv/`, the form Vault prints mount paths in.
fn with_slash(path: &str) -> String {
    format!("{}/", path.trim_matches('/'))
}

/// Runs a secrets command.
pub(crate) async fn run(ctx: &Ctx, command: SecretsCommand) -> Outcome {
    let client = ctx.client()?;
    match command {
        SecretsCommand::Enable {
            path,
            version,
            description,
            default_lease_ttl,
            max_lease_ttl,
            options,
            engine_type,
        } => {
            let path = path.unwrap_or_else(|| engine_type.clone());
            let mut options: BTreeMap<String, String> = parse_pairs(&options, "option")?;
            if let Some(version) = version {
                options.insert("version".into(), version.to_string());
            }
            let config = (default_lease_ttl.is_some() || max_lease_ttl.is_some()).then_some(
                MountConfigInput {
                    default_lease_ttl,
                    max_lease_ttl,
                },
            );
            let mount = EnableMount {
                mount_type: engine_type.clone(),
                description,
                config,
                options: (!options.is_empty()).then_some(options),
                local: None,
            };
            client
                .enable_mount(&path, &mount)
                .await
                .map_err(CliError::api(format!(
                    "enabling {engine_type} at {}",
                    with_slash(&path)
                )))?;
            if !ctx.json() {
                emit(&format!(
                    "Success! Enabled the {engine_type} secrets engine at: {}",
                    with_slash(&path)
                ))?;
            }
        }
        SecretsCommand::Disable { path } => {
            client
                .disable_mount(&path)
                .await
                .map_err(CliError::api(format!("disabling {}", with_slash(&path))))?;
            if !ctx.json() {
                emit(&format!(
                    "Success! Disabled the secrets engine (if it existed) at: {}",
                    with_slash(&path)
                ))?;
            }
        }
        SecretsCommand::Tune {
            default_lease_ttl,
            max_lease_ttl,
            description,
            path,
        } => {
            let tune = MountTune {
                default_lease_ttl,
                max_lease_ttl,
                description,
                options: None,
            };
            client
                .tune_mount(&path, &tune)
                .await
                .map_err(CliError::api(format!("tuning {}", with_slash(&path))))?;
            if !ctx.json() {
                emit(&format!(
                    "Success! Tuned the secrets engine at: {}",
                    with_slash(&path)
                ))?;
            }
        }
        SecretsCommand::List { detailed } => {
            let mounts = client
                .list_mounts()
                .await
                .map_err(CliError::api("listing secrets engines"))?;
            if ctx.json() {
                emit_json(&mounts)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut headers = vec!["Path", "Type", "Accessor", "Description"];
            if detailed {
                headers.extend(["Default TTL", "Max TTL", "Options"]);
            }
            let rows: Vec<Vec<String>> = mounts
                .iter()
                .map(|(path, info)| {
                    let mut row = vec![
                        path.clone(),
                        info.mount_type.clone(),
                        info.accessor.clone(),
                        info.description.clone(),
                    ];
                    if detailed {
                        row.push(ttl_or_system(info.config.default_lease_ttl));
                        row.push(ttl_or_system(info.config.max_lease_ttl));
                        row.push(match &info.options {
                            Some(options) if !options.is_empty() => options
                                .iter()
                                .map(|(k, v)| format!("{k}:{v}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                            _ => "n/a".to_string(),
                        });
                    }
                    row
                })
                .collect();
            emit(&columns(&headers, &rows))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ttl_or_system(secs: u64) -> String {
    if secs == 0 {
        "system".to_string()
    } else {
        duration_text(secs)
    }
}
