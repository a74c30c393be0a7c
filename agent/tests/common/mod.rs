//! Fixtures of the agent's tests: a real `cairn server` (single-node Raft on
//! disk, so it survives a kill), a TokenReview endpoint for its Kubernetes
//! auth, and the `cairn-agent` binary run as a process.
#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../core/tests/common/tokenreview.rs"]
pub mod tokenreview;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use tokenreview::TokenReviewServer;

/// The namespace and service account of the test workload.
pub const NAMESPACE: &str = "team-a";
pub const SERVICE_ACCOUNT: &str = "web";

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/<profile>/<name>`, next to the directory of this test executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p cairn-core --bin cairn` \
         (same profile and CARGO_TARGET_DIR as these tests)",
        path.display()
    );
    path
}

/// A `cairn server` process with Raft storage in a temp dir; killed on drop.
pub struct Core {
    pub dir: tempfile::TempDir,
    pub addr: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    keys: Vec<String>,
    pub root: String,
    http: reqwest::Client,
}

impl Core {
    /// Start, initialise (5/3 shares), unseal, mount `secret/` as KV v2.
    pub async fn start() -> Core {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("core.hcl");
        std::fs::write(
            &config,
            format!(
                "listener \"tcp\" {{\n address = \"{addr}\"\n tls_disable = true\n}}\n\
                 storage \"raft\" {{\n path = \"{}\"\n node_id = \"node1\"\n}}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut core = Core {
            log: dir.path().join("core.log"),
            dir,
            addr,
            config,
            child: None,
            keys: Vec::new(),
            root: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        core.spawn().await;
        let (status, body) = core
            .call(
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 5, "secret_threshold": 3})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        core.keys = body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        core.root = body["root_token"].as_str().unwrap().to_owned();
        core.unseal().await;
        core.ok(
            "POST",
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        core
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(workspace_binary("cairn"))
            .args(["server", "--config"])
            .arg(&self.config)
            .env("CAIRN_LOG_LEVEL", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = format!("{}/v1/sys/health", self.url());
            if self.http.get(url).send().await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("cairn server exited with {status}: {}", self.logs());
            }
            assert!(Instant::now() < deadline, "core not up: {}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn unseal(&self) {
        for key in self.keys.iter().take(3) {
            let (status, body) = self
                .call("PUT", "sys/unseal", Some(json!({"key": key})))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        // Raft elects itself leader shortly after unsealing.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, _) = self.call("GET", "sys/health", None).await;
            if status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "core not active: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same data and port, and unseal.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
        self.unseal().await;
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A root request: (status, JSON body or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.url()),
            )
            .header("X-Vault-Token", &self.root);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A root request that must succeed.
    pub async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// `kv put secret/<path>` with `fields`.
    pub async fn put(&self, path: &str, fields: Value) {
        self.ok(
            "POST",
            &format!("secret/data/{path}"),
            json!({"data": fields}),
        )
        .await;
    }

    /// Kubernetes auth against `reviewer`, a policy reading the team's KV
    /// secrets and database credentials, and the identity role
    /// `team-a.web` with the given token TTLs (seconds).
    pub async fn kubernetes_auth(&self, reviewer: &TokenReviewServer, ttl: u64, max_ttl: u64) {
        self.ok("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"}))
            .await;
        self.ok(
            "POST",
            "auth/kubernetes/config",
            json!({"kubernetes_host": reviewer.url, "token_reviewer_jwt": reviewer.reviewer_jwt}),
        )
        .await;
        let policy = format!(
            "path \"secret/data/{NAMESPACE}/*\" {{ capabilities = [\"read\"] }}\n\
             path \"database/creds/{NAMESPACE}-*\" {{ capabilities = [\"read\", \"update\"] }}\n"
        );
        self.ok("PUT", "sys/policies/acl/web", json!({"policy": policy}))
            .await;
        self.ok(
            "POST",
            &format!("auth/kubernetes/role/{NAMESPACE}.{SERVICE_ACCOUNT}"),
            json!({
                "bound_service_account_names": [SERVICE_ACCOUNT],
                "bound_service_account_namespaces": [NAMESPACE],
                "token_policies": ["web"],
                "token_ttl": ttl,
                "token_max_ttl": max_ttl,
                "audience": "cairn",
            }),
        )
        .await;
    }

    /// The database engine on `pg` with role `team-a-app` (lease TTLs in
    /// seconds).
    pub async fn database(&self, pg: &cairn_e2e::Postgres, ttl: u64, max_ttl: u64) {
        self.ok("POST", "sys/mounts/database", json!({"type": "database"}))
            .await;
        self.ok(
            "POST",
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.template_url(),
                "username": pg.superuser,
                "password": pg.password,
                "allowed_roles": ["team-a-app"],
            }),
        )
        .await;
        self.ok(
            "POST",
            "database/roles/team-a-app",
            json!({
                "db_name": "pg",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"],
                "default_ttl": ttl,
                "max_ttl": max_ttl,
            }),
        )
        .await;
    }

    /// `sys/leases/lookup` of `lease_id`: (status, body).
    pub async fn lookup_lease(&self, lease_id: &str) -> (u16, Value) {
        self.call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything a test needs: core with Kubernetes auth, a projected token
/// file, an output directory.
pub struct World {
    pub core: Core,
    pub reviewer: TokenReviewServer,
    pub jwt: String,
    pub dir: tempfile::TempDir,
}

impl World {
    /// A core whose identity role issues tokens with `ttl` / `max_ttl`
    /// seconds, and a token file for `team-a/web`.
    pub async fn start(ttl: u64, max_ttl: u64) -> World {
        let reviewer = TokenReviewServer::start().await;
        let core = Core::start().await;
        core.kubernetes_auth(&reviewer, ttl, max_ttl).await;
        let jwt = reviewer.mint(NAMESPACE, SERVICE_ACCOUNT, &["cairn"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), &jwt).unwrap();
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        World {
            core,
            reviewer,
            jwt,
            dir,
        }
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// The content of output file `name`, if present.
    pub fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.output().join(name)).ok()
    }

    /// An agent config JSON for `files` (objects of the `FileSpec` schema).
    pub fn config(&self, files: Value, revoke_on_shutdown: bool) -> String {
        json!({
            "version": 1,
            "cairn_addr": self.core.url(),
            "auth_mount": "kubernetes",
            "role": format!("{NAMESPACE}.{SERVICE_ACCOUNT}"),
            "token_file": self.dir.path().join("token"),
            "output_dir": self.output(),
            "mode": "sidecar",
            "revoke_on_shutdown": revoke_on_shutdown,
            "files": files,
        })
        .to_string()
    }
}

/// A `cairn-agent` process; killed on drop.
pub struct AgentProcess {
    child: Option<Child>,
    pub log: PathBuf,
    pub http: String,
}

impl AgentProcess {
    /// Start the sidecar with `config`.
    pub fn sidecar(world: &World, config: &str) -> AgentProcess {
        Self::spawn(world, config, &[])
    }

    fn spawn(world: &World, config: &str, extra: &[&str]) -> AgentProcess {
        let http = format!("127.0.0.1:{}", free_port());
        let log = world.dir.path().join(format!("agent-{}.log", free_port()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cairn-agent"))
            .args([
                "--http-addr",
                &http,
                "--log-level",
                "debug",
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("CAIRN_AGENT_CONFIG", config)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        AgentProcess {
            child: Some(child),
            log,
            http,
        }
    }

    /// Run `--init` to completion: (exit status, logs).
    pub fn init(world: &World, config: &str, extra: &[&str]) -> (ExitStatus, String) {
        let mut args = vec!["--init"];
        args.extend_from_slice(extra);
        let mut agent = Self::spawn(world, config, &args);
        let status = agent.child.take().unwrap().wait().unwrap();
        (status, agent.logs())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a probe path: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        match reqwest::get(format!("http://{}{path}", self.http)).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// Wait for `/readyz` to answer 200.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("agent exited with {status}: {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A sample of `/metrics` (`name{labels}` as printed).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        cairn_agent::metrics::sample(&text, name).unwrap_or(0.0)
    }

    /// Send SIGTERM and wait for the exit (at most 10 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent ignored SIGTERM: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Poll `check` every 10 ms until it holds; answers how long that took.
pub async fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The agent's logs must hold none of `secrets`.
pub fn assert_no_secrets(logs: &str, secrets: &[&str]) {
    assert!(!logs.is_empty(), "the agent wrote no logs");
    for secret in secrets {
        assert!(
            !secret.is_empty() && !logs.contains(secret),
            "a secret value appears in the agent's logs"
        );
    }
}
