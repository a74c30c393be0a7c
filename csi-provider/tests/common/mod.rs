//! Fixtures of the provider's integration tests: a real `cairn server`
//! (dev mode), a TokenReview endpoint for its Kubernetes auth, the provider
//! binary on unix sockets, and a tonic client of those sockets.
#![allow(dead_code)]

// The core's TokenReview stand-in, shared rather than copied.
#[path = "../../../core/tests/common/tokenreview.rs"]
pub mod tokenreview;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::{Client, KubernetesRole};
use cairn_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use cairn_csi_provider::proto::{MountRequest, MountResponse, VersionRequest};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tonic::transport::{Channel, Endpoint};

pub use tokenreview::TokenReviewServer;

/// Namespace and service account of the test pods.
pub const NAMESPACE: &str = "team-a";
pub const SERVICE_ACCOUNT: &str = "web";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `cairn` binary of this workspace: `$CAIRN_BIN`, or next to the
/// test executable's directory (target/<profile>/cairn).
pub fn cairn_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CAIRN_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("cairn");
    assert!(
        bin.exists(),
        "the cairn binary is missing at {}: build it first with `cargo build -p cairn-core --bin cairn` \
         (same CARGO_TARGET_DIR), or set CAIRN_BIN",
        bin.display()
    );
    bin
}

/// The provider binary: Cargo's for integration tests, else the one in
/// the profile directory above the running example (`--release` benches).
pub fn provider_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_cairn-csi-provider") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("cairn-csi-provider");
    assert!(bin.exists(), "build the provider first: {}", bin.display());
    bin
}

/// Waits for `ready` with a deadline, polling.
pub async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `cairn server --dev` process; killed on drop.
pub struct Core {
    child: Child,
    pub addr: String,
    pub root_token: String,
    pub log: PathBuf,
    pub root: Client,
}

impl Core {
    pub async fn start(dir: &Path) -> Core {
        let port = free_port();
        let root_token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let log = dir.join(format!("core-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(cairn_bin())
            .args(["server", "--dev", "--dev-listen-address"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--dev-root-token-id")
            .arg(&root_token)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let addr = format!("http://127.0.0.1:{port}");
        let root = Client::new(&addr, Some(root_token.clone())).unwrap();
        let mut core = Core {
            child,
            addr,
            root_token,
            log,
            root,
        };
        let probe = reqwest::Client::new();
        let url = format!("{}/v1/sys/health", core.addr);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = probe.get(&url).send().await {
                if r.status().as_u16() == 200 {
                    break;
                }
            }
            if let Some(status) = core.child.try_wait().unwrap() {
                panic!("cairn exited with {status}: {}", read(&core.log));
            }
            assert!(
                Instant::now() < deadline,
                "cairn not ready: {}",
                read(&core.log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        core
    }

    /// Enables Kubernetes auth against `reviewer`, and a role for the
    /// identity `team-a.web` with policy `policy` (HCL).
    pub async fn kubernetes_auth(&self, reviewer: &TokenReviewServer, policy: &str) {
        self.root
            .enable_auth("kubernetes", "kubernetes")
            .await
            .unwrap();
        self.root
            .configure_kubernetes_auth(
                "kubernetes",
                &reviewer.url,
                None,
                Some(&reviewer.reviewer_jwt),
            )
            .await
            .unwrap();
        self.root.write_policy("team-a-web", policy).await.unwrap();
        let role = KubernetesRole {
            bound_service_account_names: vec![SERVICE_ACCOUNT.into()],
            bound_service_account_namespaces: vec![NAMESPACE.into()],
            token_policies: vec!["team-a-web".into()],
            token_ttl: 3600,
            token_max_ttl: 7200,
            audience: "cairn".into(),
        };
        self.root
            .write_kubernetes_role(
                "kubernetes",
                &format!("{NAMESPACE}.{SERVICE_ACCOUNT}"),
                &role,
            )
            .await
            .unwrap();
    }

    /// Writes a KV v2 secret under `secret/`.
    pub async fn put(&self, path: &str, data: Value) {
        let map: Map<String, Value> = data.as_object().unwrap().clone();
        self.root
            .kv2("secret")
            .write(path, &map, None)
            .await
            .unwrap();
    }

    /// Root call; (status, body).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", self.addr),
            )
            .header("X-Vault-Token", &self.root_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The ids of the leases owned by `owner`.
    pub async fn owner_leases(&self, owner: &str) -> Vec<String> {
        let (st, body) = self
            .call(
                "PUT",
                "sys/cairn/leases/owner",
                Some(json!({ "owner": owner })),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        body["data"]["leases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn logs(&self) -> String {
        read(&self.log)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// The provider binary on sockets in two directories; killed on drop.
pub struct Provider {
    child: Option<Child>,
    pub dirs: Vec<PathBuf>,
    pub http: String,
    pub log: PathBuf,
    core_addr: String,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl Provider {
    pub async fn start(dir: &Path, core_addr: &str, extra: &[&str]) -> Provider {
        Provider::start_with_env(dir, core_addr, extra, &[]).await
    }

    /// As [`Provider::start`], with `env` added to the process environment.
    pub async fn start_with_env(
        dir: &Path,
        core_addr: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Provider {
        let mut p = Provider {
            child: None,
            dirs: vec![dir.join("providers"), dir.join("legacy/providers")],
            http: String::new(),
            log: dir.join("provider.log"),
            core_addr: core_addr.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        p.spawn().await;
        p
    }

    /// (Re)starts the process; logs are appended.
    pub async fn spawn(&mut self) {
        let port = free_port();
        self.http = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        let level: &[&str] = if self.extra.iter().any(|a| a == "--log-level") {
            &[]
        } else {
            &["--log-level", "trace"]
        };
        let child = Command::new(provider_bin())
            .arg("--socket-dirs")
            .arg(dirs.join(","))
            .args(["--cairn-addr", &self.core_addr, "--http-addr", &self.http])
            .args(level)
            .args(["--log-format", "json"])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let socket = self.socket(0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if socket.exists() {
                if let Ok(mut c) = connect(&socket).await {
                    if c.version(VersionRequest {
                        version: "v1alpha1".into(),
                    })
                    .await
                    .is_ok()
                    {
                        break;
                    }
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("provider exited with {status}: {}", read(&self.log));
            }
            assert!(
                Instant::now() < deadline,
                "provider not ready: {}",
                read(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id (for RSS readings).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn socket(&self, i: usize) -> PathBuf {
        self.dirs[i].join("cairn.sock")
    }

    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        connect(&self.socket(0)).await.unwrap()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (without blocking the runtime): the graceful path.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the provider ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        read(&self.log)
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of a counter line starting with `prefix` (0 when absent).
    pub async fn counter(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tonic client over the unix socket at `path`.
pub async fn connect(
    path: &Path,
) -> Result<CsiDriverProviderClient<Channel>, tonic::transport::Error> {
    let path = path.to_owned();
    // The URI is required by the API and ignored by the connector.
    let channel = Endpoint::try_from("http://[::1]:50051")?
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(CsiDriverProviderClient::new(channel).max_decoding_message_size(8 * 1024 * 1024))
}

/// A test pod and the Mount requests the driver would send for it.
#[derive(Clone)]
pub struct Pod {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub service_account: String,
    /// audience -> token
    pub tokens: Vec<(String, String)>,
}

impl Pod {
    /// A pod of `team-a/web` with a token of audience `cairn`.
    pub fn new(reviewer: &TokenReviewServer, name: &str) -> Pod {
        Pod {
            name: name.into(),
            uid: uuid::Uuid::new_v4().to_string(),
            namespace: NAMESPACE.into(),
            service_account: SERVICE_ACCOUNT.into(),
            tokens: vec![(
                "cairn".into(),
                reviewer.mint(NAMESPACE, SERVICE_ACCOUNT, &["cairn"]),
            )],
        }
    }

    pub fn owner(&self) -> String {
        format!("{}/Pod/{}/{}", self.namespace, self.name, self.uid)
    }

    pub fn token(&self, audience: &str) -> &str {
        &self.tokens.iter().find(|(a, _)| a == audience).unwrap().1
    }

    /// The MountRequest for SecretProviderClass `parameters`.
    pub fn request(&self, parameters: Value) -> MountRequest {
        let tokens: Map<String, Value> = self
            .tokens
            .iter()
            .map(|(aud, tok)| {
                (
                    aud.clone(),
                    json!({"token": tok, "expirationTimestamp": "2030-01-01T00:00:00Z"}),
                )
            })
            .collect();
        let mut attributes = json!({
            "csi.storage.k8s.io/pod.name": self.name,
            "csi.storage.k8s.io/pod.namespace": self.namespace,
            "csi.storage.k8s.io/pod.uid": self.uid,
            "csi.storage.k8s.io/serviceAccount.name": self.service_account,
            "csi.storage.k8s.io/ephemeral": "true",
            "csi.storage.k8s.io/serviceAccount.tokens": Value::Object(tokens).to_string(),
            "secretProviderClass": "test",
        });
        for (k, v) in parameters.as_object().unwrap() {
            attributes[k] = v.clone();
        }
        MountRequest {
            attributes: attributes.to_string(),
            secrets: "{}".into(),
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/secrets/mount".into(),
            permission: "420".into(),
            current_object_version: vec![],
        }
    }
}

/// (file path -> contents) and (id -> version) of a response.
pub fn files(resp: &MountResponse) -> std::collections::BTreeMap<String, (i32, Vec<u8>)> {
    resp.files
        .iter()
        .map(|f| (f.path.clone(), (f.mode, f.contents.clone())))
        .collect()
}

pub fn versions(resp: &MountResponse) -> std::collections::BTreeMap<String, String> {
    resp.object_version
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect()
}

/// The policy of the test identity.
pub const POLICY: &str = r#"
path "secret/data/team-a/*" { capabilities = ["read"] }
path "database/creds/team-a-*" { capabilities = ["read", "update"] }
path "sys/cairn/leases/owner" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;
