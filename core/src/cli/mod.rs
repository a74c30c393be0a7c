//! The command-line client: `cairn status`, `cairn kv ...`, `cairn operator ...`.
//! Every command goes through `cairn-client` over HTTP, as a user's would.
//!
//! Settings come from flags, then the environment, as in Vault:
//! `--address` / `CAIRN_ADDR` / `VAULT_ADDR` (default `https://127.0.0.1:8200`),
//! token from `CAIRN_TOKEN` / `VAULT_TOKEN` / `~/.cairn-token`,
//! `--ca-cert` / `CAIRN_CACERT` / `VAULT_CACERT`,
//! `--tls-skip-verify` / `CAIRN_SKIP_VERIFY` / `VAULT_SKIP_VERIFY`,
//! `--format` / `CAIRN_FORMAT` / `VAULT_FORMAT` (`table` or `json`).
//!
//! Vault spells long flags with one dash (`-format=json`); clap wants two.
//! [`normalize_args`] rewrites `-name` and `-name=value` to `--name...` for
//! the long flag names the command tree knows, and nothing else, so `-` (stdin)
//! and values such as `k=-x` pass untouched.
//!
//! Exit codes: 0 success, 1 error, 2 usage (and, as in Vault, `status` on a
//! sealed server).

mod audit;
mod generic;
mod input;
mod kv;
mod operator;
mod output;
mod policy;
mod raft;
mod secrets;
mod status;
mod token;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_client::{Client, ClientError, ClientOptions};
use clap::{Args, Subcommand};

pub use output::Format;

/// Client commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the seal status of the server (exit code 2 when sealed).
    Status(status::StatusArgs),
    /// Initialise, unseal, seal and rotate the server.
    Operator(operator::OperatorArgs),
    /// Read and write secrets in a KV version 2 engine.
    Kv(kv::KvArgs),
    /// Read any path.
    Read(generic::ReadArgs),
    /// Write to any path.
    Write(generic::WriteArgs),
    /// Delete any path.
    Delete(generic::DeleteArgs),
    /// List any path.
    List(generic::ListArgs),
    /// Create, look up, renew and revoke tokens.
    Token(token::TokenArgs),
    /// Manage ACL policies.
    Policy(policy::PolicyArgs),
    /// Enable, disable, tune and list secrets engines.
    Secrets(secrets::SecretsArgs),
    /// Manage audit devices and verify audit files.
    Audit(audit::AuditArgs),
}

/// Flags every client command takes (also after the subcommand name).
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Server address [env: CAIRN_ADDR, VAULT_ADDR] [default: https://127.0.0.1:8200].
    #[arg(long, global = true, value_name = "URL")]
    pub address: Option<String>,
    /// Output format [env: CAIRN_FORMAT, VAULT_FORMAT] [default: table].
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// PEM file of the CA that signs the server's certificate [env: CAIRN_CACERT, VAULT_CACERT].
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the server's TLS certificate [env: CAIRN_SKIP_VERIFY, VAULT_SKIP_VERIFY].
    #[arg(
        long = "tls-skip-verify",
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls_skip_verify: Option<bool>,
}

/// Failures of a command, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Bad arguments found after parsing (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server refused or failed (exit 1).
    #[error("Error {action}: {}", render_client_error(.source))]
    Api {
        /// What we were doing, e.g. `reading secret/data/app`.
        action: String,
        /// What went wrong.
        #[source]
        source: ClientError,
    },
    /// A local failure: a file, stdin, the client settings (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// Wraps a client error with the action that failed.
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(ClientError) -> CliError {
        let action = action.into();
        move |source| CliError::Api { action, source }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Api { .. } | CliError::Failed(_) => ExitCode::from(1),
        }
    }
}

/// A client error with its causes, e.g. "failed to reach the server: ...:
/// Connection refused". Causes carry URLs but never the token, which only
/// travels in a header.
pub(crate) fn render_client_error(err: &ClientError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The result of a command: the exit code to use on success.
pub(crate) type Outcome = Result<ExitCode, CliError>;

/// What a command needs: resolved settings and, on demand, a client.
pub(crate) struct Ctx {
    pub(crate) format: Format,
    address: String,
    token: Option<String>,
    options: ClientOptions,
}

impl Ctx {
    fn from_env(common: &CommonArgs) -> Result<Self, CliError> {
        let address = common
            .address
            .clone()
            .or_else(|| env_any(&["CAIRN_ADDR", "VAULT_ADDR"]))
            .unwrap_or_else(|| "https://127.0.0.1:8200".to_string());
        let format = match common.format {
            Some(format) => format,
            None => match env_any(&["CAIRN_FORMAT", "VAULT_FORMAT"]) {
                Some(name) => Format::parse(&name).ok_or_else(|| {
                    CliError::Usage(format!("invalid output format {name:?}: use table or json"))
                })?,
                None => Format::Table,
            },
        };
        let skip_verify = match common.tls_skip_verify {
            Some(value) => value,
            None => match env_any(&["CAIRN_SKIP_VERIFY", "VAULT_SKIP_VERIFY"]) {
                Some(value) => parse_env_bool(&value).ok_or_else(|| {
                    CliError::Usage(format!("invalid CAIRN_SKIP_VERIFY value {value:?}"))
                })?,
                None => false,
            },
        };
        let ca_cert = common
            .ca_cert
            .clone()
            .or_else(|| env_any(&["CAIRN_CACERT", "VAULT_CACERT"]).map(PathBuf::from));
        Ok(Self {
            format,
            address,
            token: find_token(),
            options: ClientOptions {
                ca_cert,
                tls_skip_verify: skip_verify,
                ..ClientOptions::default()
            },
        })
    }

    /// A client of the configured server with the configured token.
    pub(crate) fn client(&self) -> Result<Client, CliError> {
        Client::with_options(&self.address, self.token.clone(), &self.options)
            .map_err(|e| CliError::Failed(format!("Error: {}", render_client_error(&e))))
    }

    /// Whether output is JSON.
    pub(crate) fn json(&self) -> bool {
        self.format == Format::Json
    }
}

/// The first of `names` that is set and not empty.
fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
}

fn parse_env_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" => Some(true),
        "0" | "f" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// `CAIRN_TOKEN`, `VAULT_TOKEN`, then `~/.cairn-token` (as Vault's
/// `~/.vault-token`); an unreadable file simply means no token.
fn find_token() -> Option<String> {
    if let Some(token) = env_any(&["CAIRN_TOKEN", "VAULT_TOKEN"]) {
        return Some(token.trim().to_string());
    }
    let home = std::env::var_os("HOME")?;
    let text = std::fs::read_to_string(PathBuf::from(home).join(".cairn-token")).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Run a client command; exit codes follow Vault's (0 ok, 1 error, 2 usage).
pub fn main(cmd: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error starting the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cmd)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{err}");
            err.exit_code()
        }
    }
}

async fn run(cmd: Command) -> Outcome {
    let ctx = Ctx::from_env(cmd.common())?;
    match cmd {
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Operator(args) => operator::run(&ctx, args.command).await,
        Command::Kv(args) => kv::run(&ctx, args.command).await,
        Command::Read(args) => generic::read(&ctx, args).await,
        Command::Write(args) => generic::write(&ctx, args).await,
        Command::Delete(args) => generic::delete(&ctx, args).await,
        Command::List(args) => generic::list(&ctx, args).await,
        Command::Token(args) => token::run(&ctx, args.command).await,
        Command::Policy(args) => policy::run(&ctx, args.command).await,
        Command::Secrets(args) => secrets::run(&ctx, args.command).await,
        Command::Audit(args) => audit::run(&ctx, args.command).await,
    }
}

impl Command {
    fn common(&self) -> &CommonArgs {
        match self {
            Command::Status(args) => &args.common,
            Command::Operator(args) => &args.common,
            Command::Kv(args) => &args.common,
            Command::Read(args) => &args.common,
            Command::Write(args) => &args.common,
            Command::Delete(args) => &args.common,
            Command::List(args) => &args.common,
            Command::Token(args) => &args.common,
            Command::Policy(args) => &args.common,
            Command::Secrets(args) => &args.common,
            Command::Audit(args) => &args.common,
        }
    }
}

/// Rewrites Vault-style single-dash long flags (`-format=json`,
/// `-key-shares 1`) to clap's `--format=json`, `--key-shares 1`.
///
/// Only names that are long flags somewhere in the `cairn` command tree
/// (client commands, `server`, `help`, `version`) are rewritten, and only
/// before a `--` terminator; the first element (the program) is kept as is.
/// Call it on `std::env::args_os()` before clap parses.
pub fn normalize_args<I>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    let known = long_flag_names();
    let mut out = Vec::new();
    let mut terminated = false;
    for (index, arg) in args.into_iter().enumerate() {
        if index == 0 || terminated {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            terminated = true;
            out.push(arg);
            continue;
        }
        out.push(normalize_one(arg, &known));
    }
    out
}

fn normalize_one(arg: OsString, known: &BTreeSet<String>) -> OsString {
    let Some(text) = arg.to_str() else {
        return arg;
    };
    let Some(rest) = text.strip_prefix('-') else {
        return arg;
    };
    if rest.starts_with('-') {
        return arg;
    }
    let name = rest.split_once('=').map_or(rest, |(name, _)| name);
    // One-letter names are clap short flags (`-h`); leave them to clap.
    if name.len() > 1 && known.contains(name) {
        OsString::from(format!("-{text}"))
    } else {
        arg
    }
}

/// Every long flag name in the command tree, `server` included.
fn long_flag_names() -> BTreeSet<String> {
    let server = <crate::server::ServerArgs as Args>::augment_args(clap::Command::new("server"));
    let root = Command::augment_subcommands(clap::Command::new("cairn")).subcommand(server);
    let mut names = BTreeSet::from(["help".to_string(), "version".to_string()]);
    collect_long_names(&root, &mut names);
    names
}

fn collect_long_names(cmd: &clap::Command, names: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            names.insert(long.to_string());
        }
    }
    for sub in cmd.get_subcommands() {
        collect_long_names(sub, names);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn rewrites_known_single_dash_long_flags() {
        assert_eq!(
            norm(&[
                "cairn",
                "kv",
                "get",
                "-format=json",
                "-version",
                "2",
                "secret/a"
            ]),
            [
                "cairn",
                "kv",
                "get",
                "--format=json",
                "--version",
                "2",
                "secret/a"
            ]
        );
        assert_eq!(
            norm(&[
                "cairn",
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold",
                "1"
            ]),
            [
                "cairn",
                "operator",
                "init",
                "--key-shares=1",
                "--key-threshold",
                "1"
            ]
        );
        assert_eq!(
            norm(&["cairn", "server", "-dev", "-dev-root-token-id=x"]),
            ["cairn", "server", "--dev", "--dev-root-token-id=x"]
        );
    }

    #[test]
    fn leaves_everything_else_alone() {
        assert_eq!(
            norm(&["cairn", "kv", "put", "secret/a", "k=-x", "-", "-h", "--format", "json"]),
            ["cairn", "kv", "put", "secret/a", "k=-x", "-", "-h", "--format", "json"]
        );
        assert_eq!(
            norm(&["cairn", "write", "p", "-unknown-flag", "--", "-format"]),
            ["cairn", "write", "p", "-unknown-flag", "--", "-format"]
        );
        // The program name is never touched, even if it looks like a flag.
        assert_eq!(norm(&["-format"]), ["-format"]);
    }

    #[test]
    fn env_bools() {
        assert_eq!(parse_env_bool("TRUE"), Some(true));
        assert_eq!(parse_env_bool("0"), Some(false));
        assert_eq!(parse_env_bool("maybe"), None);
    }

    #[test]
    fn command_tree_is_consistent() {
        // clap's debug asserts catch duplicate flags (e.g. `--version` against
        // the propagated version flag) only when the tree is built.
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        #[command(name = "cairn", version, propagate_version = true)]
        struct Cli {
            #[command(subcommand)]
            command: Command,
        }
        Cli::command().debug_assert();
    }
}
