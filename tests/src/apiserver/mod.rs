//! An in-process Kubernetes API server for tests: enough of list / watch / get / create /
//! update / patch (merge, JSON, strategic-as-merge, server-side apply) / delete, the status
//! subresource, finalizers, TokenRequest and TokenReview, discovery, and simulated workload
//! rollouts, for the kinds in [`resources::RESOURCES`], over plain HTTP on 127.0.0.1.
//! kube-rs clients and controllers run against it unchanged; every request is recorded.

mod authn;
mod discovery;
pub mod errors;
mod handlers;
pub mod managed;
pub mod meta;
pub mod patch;
pub mod recorder;
pub mod resources;
pub mod rollout;
mod routes;
pub mod selectors;
pub mod store;
pub mod tokens;
mod verbs;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::serve::ListenerExt as _;
use serde_json::{json, Value};

pub use errors::ApiError;
pub use recorder::{Call, Recorder, RequestRecord};
pub use resources::ResourceType;
pub use rollout::RolloutConfig;
pub use tokens::{API_AUDIENCES, ISSUER};

use meta::meta_str;
use store::Store;
use tokens::{BoundRef, TokenIssuer};

/// A failure a test asked for: the next `times` requests matching verb and resource fail with `code`.
#[derive(Debug, Clone)]
struct Injected {
    verb: String,
    resource: String,
    code: u16,
    times: usize,
}

#[derive(Debug, Default)]
struct RolloutState {
    cfg: RolloutConfig,
    pending: Vec<(&'static ResourceType, Option<String>, String, i64)>,
}

/// State shared by the handlers.
pub(crate) struct Shared {
    store: Arc<Mutex<Store>>,
    recorder: Recorder,
    tokens: TokenIssuer,
    rollouts: Arc<Mutex<RolloutState>>,
    failures: Mutex<Vec<Injected>>,
    shutdown: tokio::sync::watch::Sender<u64>,
    bookmark_every: Duration,
    min_token_ttl: Duration,
    address: String,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn complete_rollout(
    store: &Mutex<Store>,
    rollouts: &Mutex<RolloutState>,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    generation: i64,
) {
    let mut state = locked(rollouts);
    if state.cfg.paused {
        state
            .pending
            .push((rt, ns.map(str::to_string), name.to_string(), generation));
        return;
    }
    let cfg = state.cfg.clone();
    drop(state);
    let mut store = locked(store);
    let Ok(obj) = store.get(rt, ns, name) else {
        return;
    };
    if obj.pointer("/metadata/generation").and_then(Value::as_i64) != Some(generation) {
        return; // A newer rollout superseded this one.
    }
    let status = rollout::completed_status(rt, &obj, &cfg);
    if let Err(e) = store.set_status(rt, ns, name, status) {
        tracing::warn!(error = %e, name, "simulated rollout could not write the status");
    }
}

impl Shared {
    fn injected_failure(&self, r: &RequestRecord) -> Option<ApiError> {
        let mut failures = locked(&self.failures);
        let f = failures.iter_mut().find(|f| {
            f.times > 0
                && (f.verb == "*" || f.verb == r.verb)
                && (f.resource == "*" || f.resource == r.resource)
        })?;
        f.times -= 1;
        let mut e = ApiError::internal(format!(
            "failure injected by the test ({} {})",
            r.verb, r.resource
        ));
        e.code = f.code;
        if f.code == 429 {
            e.reason = "TooManyRequests";
        } else if f.code == 503 {
            e.reason = "ServiceUnavailable";
        }
        Some(e)
    }

    fn schedule_rollout(&self, rt: &'static ResourceType, obj: &Value) {
        let ns = meta_str(obj, "namespace").map(str::to_string);
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let generation = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let delay = locked(&self.rollouts).cfg.delay;
        let store = self.store.clone();
        let rollouts = self.rollouts.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            complete_rollout(&store, &rollouts, rt, ns.as_deref(), &name, generation);
        });
    }
}

/// Options of a [`TestApiServer`].
#[derive(Debug, Clone)]
pub struct TestApiServerBuilder {
    rollout: RolloutConfig,
    bookmark_every: Duration,
    min_token_ttl: Duration,
    history_limit: usize,
}

impl Default for TestApiServerBuilder {
    fn default() -> Self {
        TestApiServerBuilder {
            rollout: RolloutConfig::default(),
            bookmark_every: Duration::from_secs(5),
            min_token_ttl: Duration::from_secs(600),
            history_limit: 10_000,
        }
    }
}

impl TestApiServerBuilder {
    /// Time from a workload's generation change to its completed rollout status (default 200 ms).
    pub fn rollout_delay(mut self, d: Duration) -> Self {
        self.rollout.delay = d;
        self
    }

    /// Interval of BOOKMARK events on watches that allow them (default 5 s).
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_every = d;
        self
    }

    /// Smallest `expirationSeconds` a TokenRequest may ask (default 600 s, as Kubernetes).
    pub fn min_token_ttl(mut self, d: Duration) -> Self {
        self.min_token_ttl = d;
        self
    }

    /// Events kept for watches that resume from a resourceVersion (default 10,000).
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n.max(1);
        self
    }

    /// Bind a free port on 127.0.0.1 and serve. Must run inside a tokio runtime.
    pub async fn start(self) -> TestApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("test API server: cannot bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test API server: no local address: {e}"));
        let tokens = TokenIssuer::new().unwrap_or_else(|e| panic!("test API server: {e}"));
        let (shutdown, _) = tokio::sync::watch::channel(0u64);
        let shared = Arc::new(Shared {
            store: Arc::new(Mutex::new(Store::new(self.history_limit))),
            recorder: Recorder::default(),
            tokens,
            rollouts: Arc::new(Mutex::new(RolloutState {
                cfg: self.rollout,
                pending: Vec::new(),
            })),
            failures: Mutex::new(Vec::new()),
            shutdown,
            bookmark_every: self.bookmark_every,
            min_token_ttl: self.min_token_ttl,
            address: addr.to_string(),
        });
        let app = axum::Router::new()
            .fallback(handlers::handle)
            .with_state(shared.clone());
        // Counted before any HTTP is parsed, so a client that never gets a
        // request through (e.g. one trying TLS, as in-cluster config does) still shows.
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "test API server stopped with an error");
            }
        });
        TestApiServer {
            shared,
            addr,
            connections,
            stop: Some(stop_tx),
        }
    }
}

/// The running test API server; stops when dropped.
pub struct TestApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApiServer {
    /// Start with default options.
    pub async fn start() -> TestApiServer {
        TestApiServerBuilder::default().start().await
    }

    /// Options for [`TestApiServerBuilder::start`].
    pub fn builder() -> TestApiServerBuilder {
        TestApiServerBuilder::default()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the cluster URL (and the Kubernetes auth `kubernetes_host`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube-rs configuration for this server (namespace `default`, no credentials).
    pub fn config(&self) -> kube::Config {
        let uri: http::Uri = self
            .url()
            .parse()
            .unwrap_or_else(|e| panic!("test API server URL does not parse: {e}"));
        kube::Config::new(uri)
    }

    /// A kube-rs client (no credentials). Call inside a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).unwrap_or_else(|e| panic!("kube client: {e}"))
    }

    /// A kube-rs client sending `token` as its bearer token (requests are recorded with its user).
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut cfg = self.config();
        cfg.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(cfg).unwrap_or_else(|e| panic!("kube client: {e}"))
    }

    /// A kubeconfig (YAML) for this server, with `token` as the user's bearer token if given.
    pub fn kubeconfig(&self, token: Option<&str>) -> String {
        let user = match token {
            Some(t) => json!({"token": t}),
            None => json!({}),
        };
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cairn-e2e", "cluster": {"server": self.url()}}],
            "users": [{"name": "cairn-e2e", "user": user}],
            "contexts": [{"name": "cairn-e2e", "context": {"cluster": "cairn-e2e", "user": "cairn-e2e", "namespace": "default"}}],
            "current-context": "cairn-e2e",
        });
        // JSON is YAML; kube-rs and kubectl read it as a kubeconfig.
        serde_json::to_string_pretty(&cfg).unwrap_or_default()
    }

    /// Write [`TestApiServer::kubeconfig`] to `path` (mode 0600): set `KUBECONFIG` to it for a child process.
    pub fn write_kubeconfig(&self, path: &Path, token: Option<&str>) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(self.kubeconfig(token).as_bytes())
    }

    /// TCP connections accepted so far, whether or not a request came through them.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The environment that points every way a program may find its cluster at this server:
    /// `KUBECONFIG` (written to `kubeconfig`, with `token` as the bearer token) and the
    /// in-cluster `KUBERNETES_SERVICE_HOST` / `_PORT` / `_PORT_HTTPS`. In-cluster clients
    /// speak TLS, which this server does not; [`TestApiServer::connections`] still counts them.
    pub fn cluster_env(
        &self,
        kubeconfig: &Path,
        token: Option<&str>,
    ) -> std::io::Result<Vec<(String, String)>> {
        self.write_kubeconfig(kubeconfig, token)?;
        let port = self.addr.port().to_string();
        Ok(vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("KUBERNETES_SERVICE_HOST".into(), self.addr.ip().to_string()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port),
        ])
    }

    /// Panics, naming `program` and what was seen, if anything connected or sent a request.
    #[track_caller]
    pub fn assert_untouched(&self, program: &str) {
        let requests = self.recorder().requests();
        let connections = self.connections();
        assert!(
            requests.is_empty() && connections == 0,
            "{program} contacted the Kubernetes API ({connections} connections): {requests:#?}"
        );
    }

    /// The request log.
    pub fn recorder(&self) -> Recorder {
        self.shared.recorder.clone()
    }

    /// Issue a service-account token for `ns/sa` with `audiences` (the API server's own when
    /// empty), valid for `ttl` (any length; zero makes an already-expired token a second later).
    /// The service account is created when missing, as tokens are only valid while it exists.
    pub fn mint_token(&self, ns: &str, sa: &str, audiences: &[&str], ttl: Duration) -> String {
        let uid = self.ensure_service_account(ns, sa);
        let audiences: Vec<String> = if audiences.is_empty() {
            API_AUDIENCES.iter().map(|s| s.to_string()).collect()
        } else {
            audiences.iter().map(|s| s.to_string()).collect()
        };
        let sa = BoundRef {
            name: sa.to_string(),
            uid,
        };
        let (token, _) = self
            .shared
            .tokens
            .issue(ns, &sa, &audiences, ttl, None, None)
            .unwrap_or_else(|e| panic!("mint_token: {e}"));
        token
    }

    /// Create the service account `ns/name` if missing; returns its uid.
    pub fn ensure_service_account(&self, ns: &str, name: &str) -> String {
        let rt = resources::find("", "v1", "serviceaccounts")
            .unwrap_or_else(|| panic!("no serviceaccounts kind"));
        let mut store = locked(&self.shared.store);
        let obj = match store.get(rt, Some(ns), name) {
            Ok(o) => o,
            Err(_) => store
                .create(rt, Some(ns), json!({"metadata": {"name": name}}), false)
                .unwrap_or_else(|e| panic!("cannot create service account {ns}/{name}: {e}")),
        };
        meta_str(&obj, "uid").unwrap_or_default().to_string()
    }

    /// The PEM public key the server signs tokens with.
    pub fn token_public_key_pem(&self) -> String {
        self.shared.tokens.public_key_pem().to_string()
    }

    /// A stored object, by group (`""` for core), plural, namespace and name.
    pub fn object(&self, group: &str, plural: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let rt = resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.plural == plural)?;
        locked(&self.shared.store).get(rt, ns, name).ok()
    }

    /// All stored objects of a kind, across namespaces.
    pub fn objects(&self, group: &str, plural: &str) -> Vec<Value> {
        let Some(rt) = resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.plural == plural)
        else {
            return Vec::new();
        };
        let store = locked(&self.shared.store);
        store
            .list(rt, None, &Default::default(), &Default::default())
            .into_iter()
            .map(|(_, o)| o)
            .collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        locked(&self.shared.store).resource_version()
    }

    /// Drop the watch history: watches resuming from an older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        locked(&self.shared.store).compact();
    }

    /// End every open watch stream now (clients reconnect), as an API server restart would.
    pub fn close_watches(&self) {
        self.shared.shutdown.send_modify(|epoch| *epoch += 1);
    }

    /// Fail the next `times` requests with `verb` (RBAC verb or `*`) on `resource` (plural or `*`) with HTTP `code`.
    pub fn inject_failure(&self, verb: &str, resource: &str, code: u16, times: usize) {
        locked(&self.shared.failures).push(Injected {
            verb: verb.into(),
            resource: resource.into(),
            code,
            times,
        });
    }

    /// Change the simulated rollout delay.
    pub fn set_rollout_delay(&self, d: Duration) {
        locked(&self.shared.rollouts).cfg.delay = d;
    }

    /// Hold rollouts in progress until [`TestApiServer::resume_rollouts`].
    pub fn pause_rollouts(&self) {
        locked(&self.shared.rollouts).cfg.paused = true;
    }

    /// Complete the held rollouts and stop holding new ones.
    pub fn resume_rollouts(&self) {
        let pending = {
            let mut state = locked(&self.shared.rollouts);
            state.cfg.paused = false;
            std::mem::take(&mut state.pending)
        };
        for (rt, ns, name, generation) in pending {
            complete_rollout(
                &self.shared.store,
                &self.shared.rollouts,
                rt,
                ns.as_deref(),
                &name,
                generation,
            );
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.close_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
