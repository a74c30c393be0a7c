//! What the agent's loop keeps between steps: its token's schedule and, per
//! secret path, the files it feeds, its lease and its retry state.

use std::time::Duration;

use cairn_client::agent_config::AgentConfig;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// Renew at two thirds of a TTL.
pub fn two_thirds(ttl: Duration) -> Duration {
    ttl * 2 / 3
}

/// The agent's own token.
#[derive(Debug)]
pub struct TokenState {
    /// Whether the client holds a token believed valid.
    pub logged_in: bool,
    /// When the current token was issued.
    pub obtained: Instant,
    /// The TTL it was issued with.
    pub login_ttl: Duration,
    /// When to renew it.
    pub renew_at: Option<Instant>,
    /// When to log in again instead (not renewable, or near its max TTL).
    pub relogin_at: Option<Instant>,
}

impl TokenState {
    /// No token yet.
    pub fn new() -> Self {
        TokenState {
            logged_in: false,
            obtained: Instant::now(),
            login_ttl: Duration::ZERO,
            renew_at: None,
            relogin_at: None,
        }
    }

    /// A token was just issued with `ttl` (zero: it never expires).
    pub fn issued(&mut self, ttl: Duration, renewable: bool) {
        let now = Instant::now();
        self.logged_in = true;
        self.obtained = now;
        self.login_ttl = ttl;
        self.renew_at = None;
        self.relogin_at = None;
        if ttl.is_zero() {
            return;
        }
        if renewable {
            self.renew_at = Some(now + two_thirds(ttl));
        } else {
            self.relogin_at = Some(now + two_thirds(ttl));
        }
    }

    /// The token was renewed and has `ttl` left. Once renewals no longer give
    /// back half of the original TTL, the max TTL is near: log in again at
    /// two thirds of what is left.
    pub fn renewed(&mut self, ttl: Duration) {
        let now = Instant::now();
        if ttl < self.login_ttl / 2 {
            self.renew_at = None;
            self.relogin_at = Some(now + two_thirds(ttl));
        } else {
            self.renew_at = Some(now + two_thirds(ttl));
        }
    }

    /// Whether the token is older than `age` (a 403 on a fresh token is a
    /// policy matter, not an expired token).
    pub fn older_than(&self, age: Duration) -> bool {
        self.obtained.elapsed() > age
    }

    /// The next time the token needs work.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.logged_in {
            return Some(Instant::now());
        }
        self.renew_at.or(self.relogin_at)
    }
}

impl Default for TokenState {
    fn default() -> Self {
        Self::new()
    }
}

/// A lease the agent keeps alive.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The lease id (not a secret: using it needs a token).
    pub id: String,
    /// Its duration when issued.
    pub ttl: Duration,
    /// When to act on it.
    pub due: Instant,
    /// At `due`, issue a new secret instead of renewing (not renewable, or
    /// near its max TTL).
    pub reissue: bool,
}

impl Lease {
    /// A lease just issued.
    pub fn issued(id: String, ttl: Duration, renewable: bool) -> Self {
        Lease {
            id,
            ttl,
            due: Instant::now() + two_thirds(ttl),
            reissue: !renewable,
        }
    }
}

/// One secret path and the files rendered from it.
#[derive(Debug)]
pub struct Source {
    /// The secret path.
    pub path: String,
    /// Indexes into the config's files.
    pub files: Vec<usize>,
    /// The lease of the last read, when it had one.
    pub lease: Option<Lease>,
    /// Whether a watcher runs for it.
    pub watched: bool,
    /// Whether it must be read (and its files rendered) again.
    pub dirty: bool,
    /// Not before this time (after a failure).
    pub retry_at: Option<Instant>,
    /// Backoff of this source's failures.
    pub retry: Backoff,
    /// Whether all its files were rendered at least once.
    pub rendered: bool,
}

impl Source {
    /// The sources of `config`, one per distinct path, in file order.
    pub fn from_config(config: &AgentConfig) -> Vec<Source> {
        let mut sources: Vec<Source> = Vec::new();
        for (i, file) in config.files.iter().enumerate() {
            match sources.iter_mut().find(|s| s.path == file.path) {
                Some(source) => source.files.push(i),
                None => sources.push(Source {
                    path: file.path.clone(),
                    files: vec![i],
                    lease: None,
                    watched: false,
                    dirty: true,
                    retry_at: None,
                    retry: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
                    rendered: false,
                }),
            }
        }
        sources
    }

    /// The next time this source needs work.
    pub fn next_due(&self) -> Option<Instant> {
        let read = self
            .dirty
            .then(|| self.retry_at.unwrap_or_else(Instant::now));
        let lease = self
            .lease
            .as_ref()
            .filter(|l| !l.ttl.is_zero())
            .map(|l| l.due);
        match (read, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cairn_client::agent_config::{AgentMode, FileFormat, FileSpec};

    #[tokio::test]
    async fn token_schedule_moves_to_login_near_max_ttl() {
        let mut t = TokenState::new();
        assert!(t.next_due().is_some());
        t.issued(Duration::from_secs(300), true);
        assert!(t.renew_at.is_some() && t.relogin_at.is_none());
        t.renewed(Duration::from_secs(290));
        assert!(t.renew_at.is_some());
        t.renewed(Duration::from_secs(100));
        assert!(t.renew_at.is_none() && t.relogin_at.is_some());
        t.issued(Duration::from_secs(60), false);
        assert!(t.renew_at.is_none() && t.relogin_at.is_some());
        t.issued(Duration::ZERO, true);
        assert!(t.next_due().is_none());
    }

    #[tokio::test]
    async fn files_of_one_path_share_a_source() {
        let file = |name: &str, path: &str| FileSpec {
            name: name.into(),
            path: path.into(),
            key: None,
            template: None,
            format: FileFormat::Json,
            mode: 0o644,
            command: None,
        };
        let config = AgentConfig {
            version: 1,
            cairn_addr: "http://127.0.0.1:1".into(),
            ca_file: None,
            auth_mount: "kubernetes".into(),
            role: "r".into(),
            token_file: "/t".into(),
            output_dir: "/o".into(),
            mode: AgentMode::Sidecar,
            revoke_on_shutdown: false,
            files: vec![
                file("a", "secret/data/x"),
                file("b", "database/creds/y"),
                file("c", "secret/data/x"),
            ],
        };
        let sources = Source::from_config(&config);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].files, vec![0, 2]);
        assert!(sources.iter().all(|s| s.dirty && s.next_due().is_some()));
    }
}
