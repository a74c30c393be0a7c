//! `cairn token create|lookup|renew|revoke|capabilities`.

use std::process::ExitCode;

use cairn_client::{ClientError, Secret, TokenCreateRequest, TokenInfo};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use super::generic::print_envelope;
use super::input::parse_pairs;
use super::output::{duration_text, emit, emit_json, kv_table, quoted_list, value_text};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: TokenCommand,
}

/// Token commands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token (a child of the caller's, or an orphan with `--orphan`).
    Create(CreateArgs),
    /// Show a token's properties (the caller's own without TOKEN).
    Lookup {
        /// TOKEN is an accessor.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        accessor: bool,
        /// Look up the caller's own token.
        #[arg(long = "self", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        self_: bool,
        /// Token (or accessor with `--accessor`).
        token: Option<String>,
    },
    /// Extend a token's TTL (the caller's own without TOKEN).
    Renew {
        /// Requested TTL extension, e.g. `1h`.
        #[arg(long)]
        increment: Option<String>,
        /// TOKEN is an accessor.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        accessor: bool,
        /// Token (or accessor with `--accessor`).
        token: Option<String>,
    },
    /// Revoke a token and its children.
    Revoke {
        /// TOKEN is an accessor.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        accessor: bool,
        /// Revoke the caller's own token.
        #[arg(long = "self", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
        self_: bool,
        /// `orphan` revokes only the token, leaving its children as orphans.
        #[arg(long, value_parser = ["orphan", "path"])]
        mode: Option<String>,
        /// Token (or accessor with `--accessor`).
        token: Option<String>,
    },
    /// Show the caller's capabilities on paths.
    Capabilities {
        /// API paths, e.g. `secret/data/app/db`.
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

/// Arguments of `token create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Policy to attach; repeatable.
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Initial TTL, e.g. `1h`.
    #[arg(long)]
    ttl: Option<String>,
    /// Hard limit on the token's life, renewals included.
    #[arg(long = "explicit-max-ttl")]
    explicit_max_ttl: Option<String>,
    /// Make the token periodic: each renewal resets its TTL to this.
    #[arg(long)]
    period: Option<String>,
    /// Create the token without a parent (needs root or sudo).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    orphan: bool,
    /// Whether the token can be renewed (`--renewable=false` to forbid).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true")]
    renewable: bool,
    /// Number of uses before the token expires (0: unlimited).
    #[arg(long = "use-limit")]
    use_limit: Option<u64>,
    /// Display name.
    #[arg(long = "display-name")]
    display_name: Option<String>,
    /// Metadata `KEY=VALUE`; repeatable.
    #[arg(long)]
    metadata: Vec<String>,
    /// Do not attach the `default` policy.
    #[arg(long = "no-default-policy", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    no_default_policy: bool,
    /// Token type: `service` or `batch`.
    #[arg(long = "type")]
    token_type: Option<String>,
    /// Print only this field (e.g. `token`, `token_accessor`).
    #[arg(long)]
    field: Option<String>,
}

/// Runs a token command.
pub(crate) async fn run(ctx: &Ctx, command: TokenCommand) -> Outcome {
    let client = ctx.client()?;
    match command {
        TokenCommand::Create(args) => {
            let request = TokenCreateRequest {
                policies: args.policies,
                meta: parse_pairs(&args.metadata, "metadata")?,
                no_default_policy: args.no_default_policy.then_some(true),
                renewable: Some(args.renewable),
                ttl: args.ttl,
                explicit_max_ttl: args.explicit_max_ttl,
                period: args.period,
                display_name: args.display_name,
                num_uses: args.use_limit,
                token_type: args.token_type,
                ..TokenCreateRequest::default()
            };
            let created = if args.orphan {
                client.token_create_orphan(&request).await
            } else {
                client.token_create(&request).await
            }
            .map_err(CliError::api("creating token"))?;
            // Token create is where Vault shows the new token; so do we.
            print_envelope(ctx, &to_value(&created)?, args.field.as_deref(), true)?;
        }
        TokenCommand::Lookup {
            accessor,
            self_,
            token,
        } => {
            let info = match (token, self_) {
                (Some(_), true) => {
                    return Err(CliError::Usage(
                        "--self and a TOKEN argument cannot be used together".into(),
                    ))
                }
                (Some(accessor_id), false) if accessor => {
                    client.token_lookup_accessor(&accessor_id).await
                }
                (Some(token), false) => client.token_lookup(&token).await,
                (None, _) if accessor => {
                    return Err(CliError::Usage(
                        "--accessor needs an ACCESSOR argument".into(),
                    ))
                }
                (None, _) => client.token_lookup_self().await,
            }
            .map_err(CliError::api("looking up token"))?;
            print_lookup(ctx, info)?;
        }
        TokenCommand::Renew {
            increment,
            accessor,
            token,
        } => {
            let renewed = match token {
                Some(accessor_id) if accessor => {
                    client
                        .token_renew_accessor(&accessor_id, increment.as_deref())
                        .await
                }
                Some(token) => client.token_renew(&token, increment.as_deref()).await,
                None if accessor => {
                    return Err(CliError::Usage(
                        "--accessor needs an ACCESSOR argument".into(),
                    ))
                }
                None => client.token_renew_self(increment.as_deref()).await,
            }
            .map_err(CliError::api("renewing token"))?;
            // The token was our input; do not echo it back.
            print_envelope(ctx, &to_value(&renewed)?, None, false)?;
        }
        TokenCommand::Revoke {
            accessor,
            self_,
            mode,
            token,
        } => {
            let orphan = mode.as_deref() == Some("orphan");
            let result: Result<(), ClientError> = match (token, self_) {
                (Some(_), true) => {
                    return Err(CliError::Usage(
                        "--self and a TOKEN argument cannot be used together".into(),
                    ))
                }
                (None, true) => client.token_revoke_self().await,
                (None, false) => {
                    return Err(CliError::Usage(
                        "missing TOKEN: give a token, an accessor with --accessor, or --self"
                            .into(),
                    ))
                }
                (Some(accessor_id), false) if accessor => {
                    client.token_revoke_accessor(&accessor_id).await
                }
                (Some(token), false) if orphan => client.token_revoke_orphan(&token).await,
                (Some(token), false) => client.token_revoke(&token).await,
            };
            result.map_err(CliError::api("revoking token"))?;
            if !ctx.json() {
                emit("Success! Revoked token (if it existed)")?;
            }
        }
        TokenCommand::Capabilities { paths } => {
            let caps = client
                .capabilities_self(&paths)
                .await
                .map_err(CliError::api("checking capabilities"))?;
            if ctx.json() {
                emit_json(&caps)?;
            } else {
                let rows: Vec<(String, String)> = paths
                    .iter()
                    .map(|p| {
                        let list = caps.get(p).cloned().unwrap_or_default();
                        (p.clone(), list.join(", "))
                    })
                    .collect();
                if paths.len() == 1 {
                    emit(&rows[0].1)?;
                } else {
                    emit(&kv_table(&rows))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_value<T: Serialize>(value: &T) -> Result<Value, CliError> {
    serde_json::to_value(value)
        .map_err(|err| CliError::Failed(format!("Error encoding the answer: {err}")))
}

/// Prints a lookup without `id`: the token itself stays off the screen.
fn print_lookup(ctx: &Ctx, info: Secret<TokenInfo>) -> Result<(), CliError> {
    let mut envelope = to_value(&info)?;
    if let Some(data) = envelope.get_mut("data").and_then(Value::as_object_mut) {
        data.remove("id");
    }
    if ctx.json() {
        return emit_json(&envelope);
    }
    let Some(data) = envelope.get("data").and_then(Value::as_object) else {
        return Err(CliError::Failed("the server returned no token data".into()));
    };
    let sorted: std::collections::BTreeMap<&String, &Value> = data.iter().collect();
    let rows: Vec<(String, String)> = sorted
        .into_iter()
        .map(|(k, v)| {
            let text = match (k.as_str(), v) {
                ("creation_ttl" | "explicit_max_ttl" | "ttl" | "period", Value::Number(n)) => {
                    duration_text(n.as_u64().unwrap_or(0))
                }
                ("policies", Value::Array(items)) => {
                    quoted_list(&items.iter().map(value_text).collect::<Vec<_>>())
                }
                _ => value_text(v),
            };
            (k.clone(), text)
        })
        .collect();
    emit(&kv_table(&rows))
}
