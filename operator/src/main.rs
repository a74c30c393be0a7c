//! `cairn-operator`: `run` the controllers, print the `crd` YAML, or
//! `bootstrap` the operator's identity in the core.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

use cairn_operator::bootstrap::{bootstrap, BootstrapArgs};
use cairn_operator::config::{LogArgs, RunArgs};

#[derive(Parser)]
#[command(
    name = "cairn-operator",
    version,
    about = "Reconciles SecretPolicy and DynamicCredential resources against the Cairn core"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (leader-elected).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Enable and configure Kubernetes auth in the core and write the
    /// operator's role and policy (needs a privileged token).
    Bootstrap(Box<BootstrapArgs>),
}

fn init_logs(log: &LogArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format.as_str() {
        "json" => builder.json().flatten_event(true).init(),
        "text" => builder.init(),
        other => anyhow::bail!("unknown --log-format {other:?} (json or text)"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", cairn_operator::crd::crd_yaml()?);
            Ok(())
        }
        Command::Run(args) => {
            init_logs(&cli.log)?;
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                "cairn-operator starting"
            );
            cairn_operator::run::run(*args).await
        }
        Command::Bootstrap(args) => {
            init_logs(&cli.log)?;
            bootstrap(*args).await
        }
    }
}
