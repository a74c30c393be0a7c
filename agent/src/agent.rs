//! The agent's loop: log in, render every file, then keep token, leases and
//! files current until told to stop. One task does all of it; watchers only
//! report changes, so no two steps ever race on a file or a lease.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::agent_config::AgentConfig;
use cairn_client::{Client, ClientError, ClientOptions};
use minijinja::Environment;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::health::HealthState;
use crate::login::{login, LoginError};
use crate::metrics::Outcome;
use crate::state::{Source, TokenState};
use crate::watcher::{watch_loop, Event, WATCH_WAIT};

/// A 403 on a token younger than this is a policy refusal, not an expired
/// token, so it does not cause another login.
const FRESH_TOKEN: Duration = Duration::from_secs(5);
/// How long revoking on shutdown may take.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the agent could not start or finish its first render.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The client could not be built (address, CA file).
    #[error("failed to set up the client of {addr}")]
    Client {
        /// The core's address.
        addr: String,
        /// What the client reported.
        #[source]
        source: ClientError,
    },
    /// The first render failed for good.
    #[error("first render failed: {0}")]
    FirstRender(String),
    /// The first render did not finish in time (the core stayed unreachable).
    #[error("first render did not finish within {timeout:?}: {last}")]
    Timeout {
        /// The limit.
        timeout: Duration,
        /// The last failure seen.
        last: String,
    },
}

/// How a call to the core failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Unreachable, sealed, overloaded: back off and try again, keep files.
    Unavailable,
    /// 401/403: the token may be gone.
    Denied,
    /// Anything else (400, 404, bad answers): a problem of the config or the
    /// secret, retried slowly.
    Refused,
}

pub(crate) fn classify(e: &ClientError) -> Failure {
    match e {
        ClientError::Connection(_) => Failure::Unavailable,
        ClientError::Api { status, .. } if *status >= 500 || *status == 429 => Failure::Unavailable,
        ClientError::Api {
            status: 401 | 403, ..
        } => Failure::Denied,
        _ => Failure::Refused,
    }
}

/// A step stopped early: the core is unavailable and the loop backs off.
pub(crate) struct Halt;

/// The agent.
pub struct Agent {
    pub(crate) config: AgentConfig,
    pub(crate) output_dir: PathBuf,
    pub(crate) client: Client,
    clients: watch::Sender<Client>,
    pub(crate) env: Environment<'static>,
    pub(crate) sources: Vec<Source>,
    token: TokenState,
    /// Clients holding earlier tokens, until those expire: their leases live
    /// as long as they do, and revoke-on-shutdown revokes them too.
    retired: Vec<(Client, Instant)>,
    backoff: Backoff,
    blocked_until: Option<Instant>,
    pub(crate) state: Arc<HealthState>,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    watchers: Vec<JoinHandle<()>>,
    pub(crate) commands: JoinSet<()>,
    /// The last failure that retrying soon will not fix, for `--init`.
    pub(crate) permanent: Option<String>,
    /// The last failure of any kind.
    pub(crate) last_failure: Option<String>,
}

impl Agent {
    /// An agent for `config`, reporting to `state`.
    pub fn new(config: AgentConfig, state: Arc<HealthState>) -> Result<Self, AgentError> {
        let options = ClientOptions {
            ca_cert: config.ca_file.as_ref().map(PathBuf::from),
            tls_skip_verify: false,
            // Longer than a watch's wait, so a long poll is not cut short.
            timeout: WATCH_WAIT + Duration::from_secs(15),
        };
        let client =
            Client::with_options(&config.cairn_addr, None, &options).map_err(|source| {
                AgentError::Client {
                    addr: config.cairn_addr.clone(),
                    source,
                }
            })?;
        let (clients, _) = watch::channel(client.clone());
        let (events_tx, events) = mpsc::channel(64);
        Ok(Agent {
            output_dir: PathBuf::from(&config.output_dir),
            sources: Source::from_config(&config),
            config,
            client,
            clients,
            env: cairn_client::agent_config::template_environment(),
            token: TokenState::new(),
            retired: Vec::new(),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            blocked_until: None,
            state,
            events_tx,
            events,
            watchers: Vec::new(),
            commands: JoinSet::new(),
            permanent: None,
            last_failure: None,
        })
    }

    /// `--init`: render every file once, retrying while the core is
    /// unavailable for up to `timeout`; fails at once on anything retrying
    /// will not fix. Commands are waited for.
    pub async fn render_once(&mut self, timeout: Duration) -> Result<(), AgentError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.step().await;
            if self.all_rendered() {
                while self.commands.join_next().await.is_some() {}
                return Ok(());
            }
            if let Some(message) = self.permanent.take() {
                return Err(AgentError::FirstRender(message));
            }
            if Instant::now() >= deadline {
                return Err(AgentError::Timeout {
                    timeout,
                    last: self
                        .last_failure
                        .clone()
                        .unwrap_or_else(|| "no answer from the core".into()),
                });
            }
            tokio::time::sleep_until(self.next_due().min(deadline)).await;
        }
    }

    /// Sidecar: keep everything current until `shutdown` completes, then stop
    /// watchers and, when configured, revoke the agent's token and leases.
    pub async fn run(mut self, shutdown: impl Future<Output = &'static str>) {
        tokio::pin!(shutdown);
        loop {
            self.step().await;
            let due = self.next_due();
            tokio::select! {
                signal = &mut shutdown => {
                    tracing::info!(signal, "stopping");
                    break;
                }
                Some(event) = self.events.recv() => {
                    self.on_event(event);
                    while let Ok(more) = self.events.try_recv() {
                        self.on_event(more);
                    }
                }
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        self.stop().await;
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Changed(i) => {
                if let Some(source) = self.sources.get_mut(i) {
                    tracing::debug!(path = %source.path, "change reported");
                    source.dirty = true;
                    source.retry_at = None;
                }
            }
            Event::Denied(_) => {
                self.denied();
            }
        }
    }

    /// Whether every file was rendered at least once.
    pub fn all_rendered(&self) -> bool {
        self.sources.iter().all(|s| s.rendered)
    }

    /// One pass over whatever is due. Stops early when the core is
    /// unavailable (the loop then waits for the backoff).
    async fn step(&mut self) {
        let now = Instant::now();
        if let Some(until) = self.blocked_until {
            if until > now {
                return;
            }
            self.blocked_until = None;
        }
        if self.token_work(now).await.is_err() {
            return;
        }
        for i in 0..self.sources.len() {
            let lease_due = self.sources[i]
                .lease
                .as_ref()
                .is_some_and(|l| !l.ttl.is_zero() && l.due <= now);
            if lease_due && self.lease_work(i).await.is_err() {
                return;
            }
        }
        for i in 0..self.sources.len() {
            let source = &self.sources[i];
            if source.dirty && source.retry_at.is_none_or(|t| t <= now) {
                if self.refresh(i).await.is_err() {
                    return;
                }
                if !self.token.logged_in {
                    // A 403 made the token suspect: log in before reading on.
                    return;
                }
            }
        }
        if !self.state.is_ready() && self.all_rendered() {
            tracing::info!(files = self.config.files.len(), "first render done");
            self.state.set_ready();
        }
    }

    /// The earliest time anything is due.
    fn next_due(&self) -> Instant {
        if let Some(until) = self.blocked_until {
            return until;
        }
        let mut due = Instant::now() + Duration::from_secs(3600);
        let candidates = self
            .token
            .next_due()
            .into_iter()
            .chain(self.sources.iter().filter_map(Source::next_due));
        for t in candidates {
            due = due.min(t);
        }
        due
    }

    /// The core is unavailable: count, remember, and pause the loop.
    pub(crate) fn unavailable(&mut self, what: &str, e: &ClientError) -> Halt {
        let delay = self.backoff.next_delay();
        self.state.metrics.core_error();
        tracing::warn!(error = %e, retry_in = ?delay, "{what}: the core is unavailable; keeping the current files");
        self.last_failure = Some(format!("{what}: {e}"));
        self.blocked_until = Some(Instant::now() + delay);
        Halt
    }

    /// The core answered: the next failure backs off from the start.
    pub(crate) fn available(&mut self) {
        if self.backoff.failing() {
            tracing::info!("the core is reachable again");
        }
        self.backoff.reset();
    }

    /// A 403: log in again unless the token is fresh (then it is policy).
    /// Answers whether a new login was scheduled.
    pub(crate) fn denied(&mut self) -> bool {
        if self.token.logged_in && self.token.older_than(FRESH_TOKEN) {
            tracing::info!("the core denied a request; logging in again");
            self.token.logged_in = false;
            return true;
        }
        false
    }

    async fn token_work(&mut self, now: Instant) -> Result<(), Halt> {
        let relogin = self.token.relogin_at.is_some_and(|t| t <= now);
        if !self.token.logged_in || relogin {
            return self.log_in().await;
        }
        if self.token.renew_at.is_some_and(|t| t <= now) {
            match self.client.token_renew_self(None).await {
                Ok(answer) => {
                    self.available();
                    self.state.metrics.token_renewal(Outcome::Success);
                    let ttl = answer.auth.map(|a| a.lease_duration).unwrap_or(0);
                    tracing::debug!(ttl, "token renewed");
                    self.token.renewed(Duration::from_secs(ttl));
                }
                Err(e) => {
                    self.state.metrics.token_renewal(Outcome::Failure);
                    if classify(&e) == Failure::Unavailable {
                        return Err(self.unavailable("token renewal", &e));
                    }
                    tracing::warn!(error = %e, "token renewal refused; logging in again");
                    return self.log_in().await;
                }
            }
        }
        Ok(())
    }

    async fn log_in(&mut self) -> Result<(), Halt> {
        match login(&self.client, &self.config).await {
            Ok(auth) => {
                self.available();
                let previous = self.client.clone();
                if let Err(e) = self.client.set_token(Some(auth.client_token.clone())) {
                    return Err(self.refused_login(&e.to_string()));
                }
                self.state.metrics.login(Outcome::Success);
                let had_token = self.token.logged_in || previous.has_token();
                let ttl = Duration::from_secs(auth.lease_duration);
                if had_token {
                    // The old token's leases die with it: issue new secrets
                    // under the new one, and keep the old client for revoke.
                    let expires = Instant::now() + self.token.login_ttl.max(FRESH_TOKEN);
                    self.retired.retain(|(_, t)| *t > Instant::now());
                    self.retired.push((previous, expires));
                    for source in &mut self.sources {
                        if source.lease.take().is_some() {
                            source.dirty = true;
                            source.retry_at = None;
                        }
                    }
                }
                self.token.issued(ttl, auth.renewable);
                self.clients.send_replace(self.client.clone());
                tracing::info!(
                    accessor = %auth.accessor,
                    ttl_seconds = auth.lease_duration,
                    renewable = auth.renewable,
                    policies = ?auth.policies,
                    "logged in"
                );
                Ok(())
            }
            Err(LoginError::Core { source, .. }) if classify(&source) == Failure::Unavailable => {
                self.state.metrics.login(Outcome::Failure);
                Err(self.unavailable("login", &source))
            }
            Err(e) => {
                self.state.metrics.login(Outcome::Failure);
                let message = match &e {
                    LoginError::Core { source, .. } => format!("{e}: {source}"),
                    other => other.to_string(),
                };
                Err(self.refused_login(&message))
            }
        }
    }

    /// A login the core refused (or a token file missing): retry with
    /// backoff, and let `--init` fail with the reason.
    fn refused_login(&mut self, message: &str) -> Halt {
        let delay = self.backoff.next_delay();
        tracing::error!(error = %message, retry_in = ?delay, "login failed");
        self.permanent = Some(message.to_owned());
        self.last_failure = Some(message.to_owned());
        self.blocked_until = Some(Instant::now() + delay);
        Halt
    }

    /// Start watching source `i` (a KV v2 secret) if not yet watched.
    pub(crate) fn watch(&mut self, i: usize) {
        let Some(source) = self.sources.get_mut(i) else {
            return;
        };
        if source.watched {
            return;
        }
        source.watched = true;
        self.watchers.push(tokio::spawn(watch_loop(
            i,
            source.path.clone(),
            self.clients.subscribe(),
            self.events_tx.clone(),
            self.state.clone(),
        )));
    }

    async fn stop(mut self) {
        for watcher in self.watchers.drain(..) {
            watcher.abort();
        }
        self.commands.abort_all();
        if !self.config.revoke_on_shutdown || !self.token.logged_in {
            return;
        }
        let leases = self.sources.iter().filter(|s| s.lease.is_some()).count();
        let mut clients: Vec<Client> = self.retired.drain(..).map(|(c, _)| c).collect();
        clients.push(self.client.clone());
        let revoke = async {
            let mut revoked = 0;
            for client in &clients {
                // Revoking a token revokes the leases it owns.
                match client.token_revoke_self().await {
                    Ok(()) => revoked += 1,
                    Err(e) => tracing::debug!(error = %e, "an earlier token was already gone"),
                }
            }
            revoked
        };
        match tokio::time::timeout(REVOKE_TIMEOUT, revoke).await {
            Ok(revoked) if revoked > 0 => {
                tracing::info!(
                    tokens = revoked,
                    leases,
                    "revoked the agent's tokens and their leases"
                )
            }
            Ok(_) => tracing::warn!("failed to revoke the agent's token on shutdown"),
            Err(_) => tracing::warn!(timeout = ?REVOKE_TIMEOUT, "revoking on shutdown timed out"),
        }
    }
}
