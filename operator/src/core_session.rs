//! The operator's own session with the core: it logs in with its projected
//! service-account token (Kubernetes auth, audience `cairn`) and logs in
//! again before the Cairn token expires, re-reading the token file since
//! the kubelet rotates it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientError, ClientOptions};
use tokio::sync::RwLock;

/// Why the session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The token file could not be read.
    #[error("failed to read the service-account token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The client could not be built or the login failed.
    #[error("failed to log in to the core")]
    Login(#[source] ClientError),
}

/// Where and how to log in.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The core's address.
    pub addr: String,
    /// CA of the core.
    pub ca_cert: Option<PathBuf>,
    /// Kubernetes auth mount.
    pub mount: String,
    /// The operator's role.
    pub role: String,
    /// The projected token.
    pub token_file: PathBuf,
}

/// A logged-in client, refreshed in the background.
pub struct CoreSession {
    config: SessionConfig,
    /// A client without token sharing the connection pool, for workload
    /// logins.
    base: Client,
    current: RwLock<Client>,
}

impl std::fmt::Debug for CoreSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreSession")
            .field("addr", &self.config.addr)
            .finish()
    }
}

impl CoreSession {
    /// Logs in once; answers the session and the token's TTL.
    pub async fn open(config: SessionConfig) -> Result<(Arc<Self>, Duration), SessionError> {
        let options = ClientOptions {
            ca_cert: config.ca_cert.clone(),
            ..ClientOptions::default()
        };
        let base =
            Client::with_options(&config.addr, None, &options).map_err(SessionError::Login)?;
        let (client, ttl) = login(&config, &base).await?;
        Ok((
            Arc::new(Self {
                config,
                base,
                current: RwLock::new(client),
            }),
            ttl,
        ))
    }

    /// A session with a fixed token (tests, and `bootstrap`).
    pub fn with_token(client: Client, config: SessionConfig) -> Result<Arc<Self>, ClientError> {
        let mut base = client.clone();
        base.set_token(None)?;
        Ok(Arc::new(Self {
            config,
            base,
            current: RwLock::new(client),
        }))
    }

    /// The operator's client (cheap clone).
    pub async fn client(&self) -> Client {
        self.current.read().await.clone()
    }

    /// A client carrying `token` (a workload's login), sharing the pool.
    pub fn client_with(&self, token: String) -> Result<Client, ClientError> {
        let mut client = self.base.clone();
        client.set_token(Some(token))?;
        Ok(client)
    }

    /// A client without token (for logins), sharing the pool.
    pub fn anonymous(&self) -> Client {
        self.base.clone()
    }

    /// The auth mount workloads log in through.
    pub fn mount(&self) -> &str {
        &self.config.mount
    }

    /// Logs in again at two thirds of each token's TTL, forever; after a
    /// failure, retries with backoff while the old token may still work.
    pub async fn refresh_forever(self: Arc<Self>, first_ttl: Duration) {
        let mut wait = first_ttl.mul_f64(2.0 / 3.0).max(Duration::from_secs(5));
        let mut attempt = 0;
        loop {
            tokio::time::sleep(wait).await;
            match login(&self.config, &self.base).await {
                Ok((client, ttl)) => {
                    *self.current.write().await = client;
                    attempt = 0;
                    wait = ttl.mul_f64(2.0 / 3.0).max(Duration::from_secs(5));
                    tracing::debug!(ttl_seconds = ttl.as_secs(), "logged in to the core again");
                }
                Err(error) => {
                    attempt += 1;
                    wait = crate::error::backoff(attempt, Duration::from_secs(60));
                    tracing::warn!(error = %error, "failed to renew the operator's core login");
                }
            }
        }
    }
}

async fn login(config: &SessionConfig, base: &Client) -> Result<(Client, Duration), SessionError> {
    let jwt = tokio::fs::read_to_string(&config.token_file)
        .await
        .map_err(|source| SessionError::TokenFile {
            path: config.token_file.clone(),
            source,
        })?;
    let auth = base
        .login_kubernetes(&config.mount, Some(&config.role), jwt.trim())
        .await
        .map_err(SessionError::Login)?;
    let mut client = base.clone();
    client
        .set_token(Some(auth.client_token.clone()))
        .map_err(SessionError::Login)?;
    // A token without TTL never needs refreshing; check daily anyway.
    let ttl = if auth.lease_duration == 0 {
        Duration::from_secs(86_400)
    } else {
        Duration::from_secs(auth.lease_duration)
    };
    Ok((client, ttl))
}
