//! Shared test helpers: pod fixtures, applying patches, the Kubernetes schema
//! check, a test CA, and the `cairn-injector` process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::Value;

/// A pod fixture from `tests/pods/`.
pub fn pod(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pods")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `pod` with `patch` applied, as the API server would.
pub fn apply(pod: &Value, patch: &json_patch::Patch) -> Value {
    let mut out = pod.clone();
    json_patch::patch(&mut out, patch)
        .unwrap_or_else(|e| panic!("patch does not apply: {e}\n{patch:?}"));
    out
}

/// `kubernetes-validate` of the workspace's venv, if installed.
pub fn kubernetes_validate() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let bin = root.join(".venv/bin/kubernetes-validate");
    bin.exists().then_some(bin)
}

/// Validate objects against the Kubernetes 1.33 schema, strictly (unknown
/// fields are errors). Skips, loudly, when the venv is absent.
pub fn validate_against_schema(objects: &[(String, Value)]) {
    let Some(bin) = kubernetes_validate() else {
        eprintln!(
            "\n!!!!! SKIPPED: kubernetes-validate not found at <workspace>/.venv/bin; \
             run scripts/test --install-only to create the venv. {} patched pods NOT schema-checked !!!!!\n",
            objects.len()
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, object) in objects {
        let mut object = object.clone();
        // Webhooks see pods of controllers before the API server has turned
        // generateName into a name; the schema requires one.
        if object["metadata"]["name"].is_null() {
            let generated = format!(
                "{}x7k2q",
                object["metadata"]["generateName"]
                    .as_str()
                    .unwrap_or("pod-")
            );
            object["metadata"]["name"] = generated.into();
        }
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&object).unwrap()).unwrap();
        files.push(path);
    }
    let out = Command::new(&bin)
        .args(["--strict", "--kubernetes-version", "1.33.0", "--no-warn"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate refused a patched pod:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA that issues server certificates for 127.0.0.1.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cairn-injector test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate and key for 127.0.0.1 and `cn`, as PEM, and the
    /// certificate's DER.
    pub fn issue(&self, cn: &str) -> (String, String, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// A running `cairn-injector`, killed on drop.
pub struct Injector {
    pub child: Child,
    pub webhook: SocketAddr,
    pub http: SocketAddr,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Injector {
    /// Start the binary with the given cert files and extra arguments; wait
    /// (with a deadline) until it logged both bound addresses.
    pub fn start(cert: &Path, key: &Path, extra: &[&str]) -> Injector {
        Injector::start_with_env(cert, key, extra, &[])
    }

    /// As [`Injector::start`], with `env` added to the process environment.
    pub fn start_with_env(
        cert: &Path,
        key: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Injector {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-injector"))
            .args(["--listen", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args([
                "--agent-image",
                "ghcr.io/cairn-dev/cairn-agent:0.1.0",
                "--cairn-addr",
                "https://cairn.cairn-system.svc:8200",
                "--log-format",
                "json",
                "--log-level",
                "debug",
            ])
            .args(extra)
            .env_remove("POD_NAMESPACE")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut webhook, mut http) = (None, None);
        while webhook.is_none() || http.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("cairn-injector did not log its addresses within 20 s");
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["message"] == "listening" {
                let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
                match v["listener"].as_str() {
                    Some("webhook") => webhook = Some(addr),
                    Some("http") => http = Some(addr),
                    _ => {}
                }
            }
        }
        Injector {
            child,
            webhook: webhook.unwrap(),
            http: http.unwrap(),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.webhook.port())
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `AdmissionReview` v1 request for creating `pod`, as the API server sends it.
pub fn admission_review(uid: &str, pod: &Value) -> Value {
    let namespace = pod["metadata"]["namespace"].clone();
    serde_json::json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// An HTTPS client that trusts `ca`.
pub fn client(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

/// POSTs `review` to the injector's `/mutate`; the `response` of its AdmissionReview.
pub async fn post_review(client: &reqwest::Client, injector: &Injector, review: &Value) -> Value {
    let response = client
        .post(injector.url("/mutate"))
        .json(review)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    body["response"].clone()
}
