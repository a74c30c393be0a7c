//! Logging in to the core with the pod's projected service-account token.

use std::path::PathBuf;

use cairn_client::agent_config::AgentConfig;
use cairn_client::{Auth, Client, ClientError};

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The projected token file could not be read (not mounted yet?).
    #[error("failed to read the service-account token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("the service-account token file {0} is empty")]
    EmptyToken(PathBuf),
    /// The core refused the login or could not be reached.
    #[error("Kubernetes login at auth/{mount}/login failed")]
    Core {
        /// The auth mount.
        mount: String,
        /// What the client reported.
        #[source]
        source: ClientError,
    },
}

/// Log in at `auth/<auth_mount>/login` with the token file's current content
/// (kubelet rotates it, so it is read on every login). An empty role lets the
/// core pick the identity's `<namespace>.<serviceAccount>` role.
pub async fn login(client: &Client, config: &AgentConfig) -> Result<Auth, LoginError> {
    let path = PathBuf::from(&config.token_file);
    let jwt = tokio::fs::read_to_string(&path)
        .await
        .map_err(|source| LoginError::TokenFile {
            path: path.clone(),
            source,
        })?;
    let jwt = jwt.trim();
    if jwt.is_empty() {
        return Err(LoginError::EmptyToken(path));
    }
    let role = Some(config.role.trim()).filter(|r| !r.is_empty());
    client
        .login_kubernetes(&config.auth_mount, role, jwt)
        .await
        .map_err(|source| LoginError::Core {
            mount: config.auth_mount.clone(),
            source,
        })
}
