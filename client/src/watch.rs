//! Cairn's change stream: a long poll on one KV v2 secret
//! (`GET sys/cairn/watch/<path>?index=..&wait=..`).

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use crate::client::{Body, Client};
use crate::envelope::Secret;
use crate::error::ClientError;

/// What a watch answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WatchState {
    /// The watched path.
    #[serde(default)]
    pub path: String,
    /// The secret's current state; pass it to the next watch.
    pub index: String,
    /// Whether the state differs from the index the caller passed.
    pub changed: bool,
}

impl Client {
    /// Wait up to `wait` (the server caps it at 60 s) for the secret at
    /// `path` (e.g. `secret/data/app/db`) to differ from `index` (empty: answer
    /// at once with the current index). The caller needs `read` on `path`.
    /// The HTTP client's own timeout must exceed `wait`.
    pub async fn watch_secret(
        &self,
        path: &str,
        index: &str,
        wait: Duration,
    ) -> Result<WatchState, ClientError> {
        let query = [
            ("index", index.to_owned()),
            ("wait", format!("{}s", wait.as_secs())),
        ];
        let secret: Secret<WatchState> = self
            .json(
                Method::GET,
                &format!("sys/cairn/watch/{}", path.trim_matches('/')),
                &query,
                Body::Empty,
            )
            .await?;
        secret.data.ok_or_else(|| ClientError::Api {
            status: 200,
            errors: vec!["the watch response carried no data".into()],
        })
    }
}
