//! The command-line client: `cairn status`, `cairn kv ...`, `cairn operator ...`.
//! Every command goes through `cairn-client` over HTTP, as a user's would.

use std::process::ExitCode;

use clap::Subcommand;

/// Client commands.
#[derive(Subcommand)]
pub enum Command {
    /// Show the seal status of the server.
    Status,
}

/// Run a client command; exit codes follow Vault's (0 ok, 1 error, 2 usage).
pub fn main(_cmd: Command) -> ExitCode {
    ExitCode::from(1)
}
