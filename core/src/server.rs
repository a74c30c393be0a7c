//! `cairn server`: configuration, startup and the listener.

use std::process::ExitCode;

/// Flags of `cairn server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Server configuration file (Vault's HCL format).
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Start a throwaway, initialised and unsealed node with `secret/` mounted.
    #[arg(long)]
    pub dev: bool,
}

/// Run the server until it is stopped.
pub fn main(_args: ServerArgs) -> ExitCode {
    ExitCode::from(1)
}
