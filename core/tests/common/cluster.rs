//! Cluster harness: three (or more) `cairn server` processes on 127.0.0.x
//! forming one Raft cluster over peer TLS, with a CA made here.
#![allow(dead_code)]

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use serde_json::{json, Value};

use crate::common::Server;

/// A cluster CA and the files of one identity it signed.
pub struct Pki {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    /// A fresh CA whose certificate is written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} cluster CA"));
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki {
            dir: dir.join(format!("{name}-ca.pem")),
            ca,
            ca_key,
        }
    }

    /// Path of the CA certificate.
    pub fn ca_file(&self) -> &Path {
        &self.dir
    }

    /// Issue a peer certificate for `ip`; returns (cert file, key file).
    pub fn issue(&self, dir: &Path, name: &str, ip: IpAddr) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress(ip));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_file = dir.join(format!("{name}.pem"));
        let key_file = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// A free port on `ip`.
pub fn free_port_on(ip: &str) -> u16 {
    TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node of a test cluster.
pub struct Node {
    pub name: String,
    pub ip: String,
    pub server: Server,
    pub cluster_addr: String,
    pub data: PathBuf,
}

/// Options of a test cluster.
#[derive(Clone)]
pub struct Options {
    pub snapshot_threshold: u64,
    pub trailing_logs: u64,
    /// Plaintext peer traffic (`--insecure-cluster`) instead of peer TLS.
    pub insecure: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            snapshot_threshold: 8192,
            trailing_logs: 10240,
            insecure: false,
        }
    }
}

/// A running cluster: nodes[0] bootstraps, the others join it.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub nodes: Vec<Node>,
    pub keys: Vec<String>,
    pub root: String,
}

impl Cluster {
    /// Start `n` nodes: the first is initialised and unsealed, the others join
    /// through `retry_join` and are unsealed with the same shares.
    pub async fn start(n: usize, options: Options) -> Cluster {
        // CAIRN_TEST_KEEP=1 keeps the nodes' data and logs for a post-mortem.
        let dir = tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .disable_cleanup(std::env::var_os("CAIRN_TEST_KEEP").is_some())
            .tempdir()
            .unwrap();
        let pki = Pki::new(dir.path(), "test");
        let mut nodes = Vec::new();
        let mut leader_api = String::new();
        let mut keys = Vec::new();
        let mut root = String::new();
        for i in 0..n {
            let node = start_node(
                dir.path(),
                &pki,
                i,
                if i == 0 { None } else { Some(&leader_api) },
                &options,
            )
            .await;
            if i == 0 {
                let (k, r) = node.server.init().await;
                keys = k;
                root = r;
                node.server.unseal(&keys).await;
                leader_api = format!("http://{}", node.server.addr);
            }
            nodes.push(node);
        }
        let cluster = Cluster {
            dir,
            pki,
            nodes,
            keys,
            root,
        };
        cluster.wait_voters(n).await;
        for node in &cluster.nodes[1..] {
            unseal_when_ready(&node.server, &cluster.keys).await;
        }
        cluster
    }

    /// Wait until the leader lists `n` voters.
    pub async fn wait_voters(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(leader) = self.leader_index().await {
                let (status, body) = self.nodes[leader]
                    .server
                    .call(
                        "GET",
                        "sys/storage/raft/configuration",
                        Some(&self.root),
                        None,
                    )
                    .await;
                if status == 200 {
                    let servers = body["data"]["config"]["servers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if servers.iter().filter(|s| s["voter"] == true).count() == n {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not reach {n} voters"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the node that says it is the leader, if any live one does.
    pub async fn leader_index(&self) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.server.child.is_none() {
                continue;
            }
            let Ok(resp) = node
                .server
                .client
                .get(node.server.url("sys/leader"))
                .send()
                .await
            else {
                continue;
            };
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if body["is_self"] == true {
                return Some(i);
            }
        }
        None
    }

    /// Wait for a leader among live nodes, up to `within`.
    pub async fn wait_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.leader_index().await {
                return i;
            }
            assert!(Instant::now() < deadline, "no leader within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Start node `i`; with `join`, it joins the node at that API address.
pub async fn start_node(
    dir: &Path,
    pki: &Pki,
    i: usize,
    join: Option<&str>,
    options: &Options,
) -> Node {
    let ip = format!("127.0.0.{}", i + 1);
    let name = format!("node{}", i + 1);
    let (cert, key) = pki.issue(dir, &name, ip.parse().unwrap());
    let port = free_port_on(&ip);
    let cluster_port = free_port_on(&ip);
    let data = dir.join(&name);
    let retry = join
        .map(|a| format!("retry_join {{\n leader_api_addr = \"{a}\"\n }}"))
        .unwrap_or_default();
    let (peer_tls, cluster_scheme) = if options.insecure {
        (String::new(), "http")
    } else {
        (
            format!(
                "cluster_tls_cert_file = \"{}\"\n cluster_tls_key_file = \"{}\"\n cluster_tls_ca_file = \"{}\"",
                cert.display(),
                key.display(),
                pki.ca_file().display()
            ),
            "https",
        )
    };
    let body = format!(
        "listener \"tcp\" {{\n address = \"{ip}:{port}\"\n tls_disable = true\n}}\n\
         storage \"raft\" {{\n path = \"{}\"\n node_id = \"{name}\"\n {peer_tls}\n snapshot_threshold = {}\n trailing_logs = {}\n {retry}\n}}\n\
         cluster_addr = \"{cluster_scheme}://{ip}:{cluster_port}\"\napi_addr = \"http://{ip}:{port}\"\n",
        data.display(),
        options.snapshot_threshold,
        options.trailing_logs,
    );
    let config = dir.join(format!("{name}.hcl"));
    std::fs::write(&config, body).unwrap();
    let mut server = Server {
        child: None,
        addr: format!("{ip}:{port}"),
        dir: dir.to_owned(),
        config,
        log: dir.join(format!("{name}.log")),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        scheme: "http",
        extra_args: if options.insecure {
            vec!["--insecure-cluster"]
        } else {
            Vec::new()
        },
    };
    server.spawn().await;
    let cluster_addr = format!("{ip}:{cluster_port}");
    Node {
        name,
        ip,
        server,
        cluster_addr,
        data,
    }
}

/// Unseal a node that joined: retry while the keyring has not arrived yet.
pub async fn unseal_when_ready(server: &Server, keys: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = server.call("GET", "sys/seal-status", None, None).await;
        if status["initialized"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "joined node never saw the cluster's data: {}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for k in keys.iter().take(3) {
        let (status, body) = server
            .call("PUT", "sys/unseal", None, Some(json!({ "key": k })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, body) = server.call("GET", "sys/seal-status", None, None).await;
    assert_eq!(body["sealed"], false, "{body}");
}
