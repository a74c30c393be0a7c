//! Command-line configuration of `cairn-operator run` (the contract the Helm
//! chart relies on: flag names and environment variables are fixed).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::templates::DEFAULT_TEMPLATES;

/// Flags of `cairn-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The core's address, e.g. `https://cairn.cairn.svc:8200`.
    #[arg(long, env = "CAIRN_ADDR")]
    pub cairn_addr: String,
    /// PEM file with the CA that signs the core's certificate.
    #[arg(long, env = "CAIRN_CACERT")]
    pub cairn_ca_cert: Option<PathBuf>,
    /// Mount of the Kubernetes auth method in the core.
    #[arg(long, env = "CAIRN_AUTH_MOUNT", default_value = "kubernetes")]
    pub auth_mount: String,
    /// The operator's own role in that auth method.
    #[arg(long, env = "CAIRN_AUTH_ROLE", default_value = "cairn-operator")]
    pub auth_role: String,
    /// Audience of the service-account tokens presented to the core.
    #[arg(long, env = "CAIRN_TOKEN_AUDIENCE", default_value = "cairn")]
    pub token_audience: String,
    /// The operator's projected service-account token (audience `cairn`).
    #[arg(
        long,
        env = "CAIRN_TOKEN_FILE",
        default_value = "/var/run/secrets/cairn/token"
    )]
    pub token_file: PathBuf,
    /// Paths a SecretPolicy may name, comma-separated, `{namespace}` being
    /// the SecretPolicy's namespace, followed by `/`, `_`, `.` or the end;
    /// `*` only at the end.
    #[arg(long, env = "CAIRN_PATH_TEMPLATES", default_value = DEFAULT_TEMPLATES)]
    pub path_templates: String,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "CAIRN_LEASE_NAME", default_value = "cairn-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "CAIRN_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Seconds between sweeps of the pod-lease garbage collector.
    #[arg(long, env = "CAIRN_POD_GC_INTERVAL", default_value_t = 60)]
    pub pod_gc_interval_seconds: u64,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "CAIRN_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_seconds: u32,
    /// Reconciles each controller runs at once. Every reconcile in flight
    /// holds its own connections to the API server and the core, so this
    /// bounds the operator's memory when many objects change together
    /// (creation in bulk, a re-list, a new leader adopting every object).
    #[arg(long, env = "CAIRN_RECONCILE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub reconcile_concurrency: u16,
}

/// Flags shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// `json` or `text`.
    #[arg(long, env = "CAIRN_LOG_FORMAT", default_value = "json", global = true)]
    pub log_format: String,
    /// A level (`info`) or a filter (`cairn_operator=debug,kube=info`).
    #[arg(long, env = "CAIRN_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
}
