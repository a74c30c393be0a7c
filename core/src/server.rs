//! `cairn server`: configuration, startup, dev mode and the listeners.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;

use crate::api::{self, AppState, Metrics, DEFAULT_MAX_REQUEST_SIZE};
use crate::config::{ListenerConfig, SealStanza, ServerConfig, StorageConfig};
use crate::listener;
use crate::node::Node;
use crate::seal::static_key;
use crate::storage::memory::MemoryStorage;
use crate::storage::Storage;

/// Flags of `cairn server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Server configuration file (Vault's HCL format).
    #[arg(long, env = "CAIRN_CONFIG", required_unless_present = "dev")]
    pub config: Option<PathBuf>,
    /// Start a throwaway node: in-memory storage, initialised, unsealed, `secret/` mounted.
    #[arg(long)]
    pub dev: bool,
    /// Address of the dev server's plaintext listener.
    #[arg(
        long,
        default_value = "127.0.0.1:8200",
        env = "CAIRN_DEV_LISTEN_ADDRESS"
    )]
    pub dev_listen_address: SocketAddr,
    /// Use this value as the dev server's root token instead of a random one.
    #[arg(long, env = "CAIRN_DEV_ROOT_TOKEN_ID")]
    pub dev_root_token_id: Option<String>,
    /// Serve the raft cluster port in plaintext, without peer TLS (development only).
    #[arg(long, env = "CAIRN_INSECURE_CLUSTER")]
    pub insecure_cluster: bool,
    /// Log level (overrides the config's `log_level`).
    #[arg(long, env = "CAIRN_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Startup failures, reported once on stderr.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Listener(#[from] listener::ListenerError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    SealKey(#[from] static_key::StaticKeyError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error("listener {0} has no TLS certificate: set tls_cert_file and tls_key_file, or tls_disable = true")]
    NoTls(SocketAddr),
    #[error("failed to create storage directory {path}: {source}")]
    StorageDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("failed to start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Dependencies kept at `warn` whatever the configured level: their debug
/// output would carry secrets (tokio_postgres logs every statement, and
/// CREATE ROLE ... PASSWORD holds a generated password) or floods the log.
const QUIET_DEPENDENCIES: &str =
    "h2=warn,hyper=warn,rustls=warn,tokio_postgres=warn,postgres_protocol=warn,reqwest=warn";

/// Run the server until SIGINT or SIGTERM.
pub fn main(args: ServerArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {}", StartError::Runtime(e));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error starting server: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},{QUIET_DEPENDENCIES}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn run(args: ServerArgs) -> Result<(), StartError> {
    let started = Instant::now();
    if args.dev {
        init_logging(args.log_level.as_deref().unwrap_or("info"), "standard");
        return run_dev(args, started).await;
    }
    let path = args.config.clone().unwrap_or_default();
    let config = ServerConfig::load(&path)?;
    init_logging(
        args.log_level.as_deref().unwrap_or(&config.log_level),
        &config.log_format,
    );
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %path.display(), "starting cairn server");
    for key in &config.ignored {
        tracing::warn!(key = %key, "config key is not used by cairn");
    }
    let mut cluster = None;
    let (storage, storage_type): (Arc<dyn Storage>, &'static str) = match &config.storage {
        StorageConfig::Inmem => (Arc::new(MemoryStorage::new()), "inmem"),
        StorageConfig::Raft { path, node_id } => {
            std::fs::create_dir_all(path).map_err(|source| StartError::StorageDir {
                path: path.display().to_string(),
                source,
            })?;
            tracing::info!(path = %path.display(), node_id = %node_id, "opening raft storage");
            let (cluster_config, listens) =
                crate::cluster::config_from_server(&config, path, node_id)?;
            let c = crate::cluster::Cluster::start(cluster_config).await?;
            cluster = Some((c.clone(), listens));
            (c.storage.clone(), "raft")
        }
    };
    let static_key = match &config.seal {
        SealStanza::Shamir => None,
        SealStanza::Static { key_file } => Some(static_key::read_key_file(key_file)?),
    };
    let node = Arc::new(Node::new(storage, storage_type, static_key));
    let mut tasks = Vec::new();
    if let Some((c, listens)) = cluster {
        node.set_cluster(c.clone());
        crate::cluster::follow_changes(c.clone(), node.clone());
        let state = Arc::new(AppState {
            node: node.clone(),
            metrics: Metrics::default(),
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
        });
        tasks.extend(
            crate::cluster::launch(c, api::router(state), listens, args.insecure_cluster).await?,
        );
    }
    if node.auto_unseal().await? {
        tracing::info!("unsealed with the static seal key");
    }

    for l in &config.listeners {
        tasks.push(start_listener(l, node.clone()).await?);
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "server ready"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    for t in tasks {
        t.abort();
    }
    node.seal().await;
    Ok(())
}

async fn start_listener(
    l: &ListenerConfig,
    node: Arc<Node>,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let addr = l.socket_addr()?;
    let tls = match (&l.tls_cert_file, &l.tls_key_file) {
        (Some(cert), Some(key)) if !l.tls_disable => Some(listener::tls_acceptor(cert, key)?),
        _ if l.tls_disable => None,
        _ if addr.ip().is_loopback() => {
            tracing::warn!(%addr, "no TLS certificate configured: serving plaintext on loopback only");
            None
        }
        _ => return Err(StartError::NoTls(addr)),
    };
    let max = if l.max_request_size > 0 {
        l.max_request_size as usize
    } else {
        DEFAULT_MAX_REQUEST_SIZE
    };
    let state = Arc::new(AppState {
        node,
        metrics: Metrics::default(),
        max_request_size: max,
    });
    let tcp = listener::bind(addr).await?;
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    Ok(tokio::spawn(listener::serve(tcp, tls, api::router(state))))
}

async fn run_dev(args: ServerArgs, started: Instant) -> Result<(), StartError> {
    let node = Arc::new(Node::new(Arc::new(MemoryStorage::new()), "inmem", None));
    let init = node
        .initialize(1, 1, args.dev_root_token_id.clone())
        .await?;
    let key_hex = init
        .keys
        .first()
        .map(|k| hex::encode(k.as_slice()))
        .unwrap_or_default();
    let key_b64 = init
        .keys
        .first()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_slice()))
        .unwrap_or_default();
    node.submit_share(&key_hex).await?;
    node.unsealed()?
        .mounts
        .enable(
            "secret",
            "kv",
            "key/value secret storage".into(),
            Default::default(),
            Default::default(),
            false,
        )
        .await
        .map_err(|e| StartError::Node(crate::node::NodeError::Mounts(e)))?;

    let addr = args.dev_listen_address;
    let state = Arc::new(AppState {
        node: node.clone(),
        metrics: Metrics::default(),
        max_request_size: DEFAULT_MAX_REQUEST_SIZE,
    });
    let tcp = listener::bind(addr).await?;
    let task = tokio::spawn(listener::serve(tcp, None, api::router(state)));
    // The dev banner is the one place a root token is shown, on stdout, as
    // Vault's dev server does; logs (stderr) never carry it.
    println!(
        "==> Cairn dev server started in {} ms. Do NOT use it in production: data is in memory and TLS is off.\n\n\
         You may need to set the following environment variables:\n\n    \
         export CAIRN_ADDR='http://{addr}'\n\n\
         The unseal key and root token are displayed below in case you want to\n\
         seal/unseal the server or re-authenticate.\n\n\
         Unseal Key: {key_b64}\n\
         Root Token: {}\n\n\
         Development mode should NOT be used in production installations!\n",
        started.elapsed().as_millis(),
        init.root_token.as_str(),
    );
    tracing::info!(%addr, "dev server listening");
    shutdown_signal().await;
    task.abort();
    node.seal().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
