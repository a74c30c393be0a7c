//! `cairn`: the server and its command-line client in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cairn: a Kubernetes-native secrets manager with a Vault-compatible API.
#[derive(Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Cairn server (`--dev` for a throwaway, unsealed dev node).
    Server(cairn_core::server::ServerArgs),
    #[command(flatten)]
    Client(cairn_core::cli::Command),
}

fn main() -> ExitCode {
    match Cli::parse_from(cairn_core::cli::normalize_args(std::env::args_os())).command {
        Command::Server(args) => cairn_core::server::main(args),
        Command::Client(cmd) => cairn_core::cli::main(cmd),
    }
}
