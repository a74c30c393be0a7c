//! Test harness: real `cairn server` processes on free loopback ports.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process; killed (SIGKILL) on drop.
pub struct Server {
    pub child: Option<Child>,
    pub addr: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub client: reqwest::Client,
    pub scheme: &'static str,
    /// Arguments after `server --config FILE`.
    pub extra_args: Vec<&'static str>,
}

impl Server {
    /// Start a server from config `body` (the listener stanza is added here).
    pub async fn start(dir: &Path, extra_listener: &str, body: &str) -> Server {
        Self::start_with(dir, extra_listener, body, "http", reqwest::Client::new()).await
    }

    pub async fn start_with(
        dir: &Path,
        extra_listener: &str,
        body: &str,
        scheme: &'static str,
        client: reqwest::Client,
    ) -> Server {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join(format!("config-{port}.hcl"));
        let tls = if scheme == "http" {
            "tls_disable = true"
        } else {
            ""
        };
        std::fs::write(
            &config,
            format!("listener \"tcp\" {{\n address = \"{addr}\"\n {tls}\n {extra_listener}\n}}\n{body}\n"),
        )
        .unwrap();
        let mut s = Server {
            child: None,
            addr,
            dir: dir.to_owned(),
            config,
            log: dir.join(format!("server-{port}.log")),
            client,
            scheme,
            extra_args: Vec::new(),
        };
        s.spawn().await;
        s
    }

    /// (Re)start the process on the same config and port.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["server", "--config"])
            .arg(&self.config)
            .args(&self.extra_args)
            .env("CAIRN_LOG_LEVEL", "debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Poll `sys/health` until it answers (any code), with a deadline.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.client.get(self.url("sys/health")).send().await {
                if r.status().as_u16() > 0 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited early with {status}: {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}/v1/{}", self.scheme, self.addr, path)
    }

    /// Send a request; returns (status, JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            self.url(path),
        );
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Send a request exactly as written (no client-side path normalisation);
    /// returns (status, body).
    pub async fn raw(&self, method: &str, target: &str, token: &str, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    /// Initialise with 5/3 shares; returns (keys, root token).
    pub async fn init(&self) -> (Vec<String>, String) {
        let (status, body) = self
            .call(
                "PUT",
                "sys/init",
                None,
                Some(json!({"secret_shares": 5, "secret_threshold": 3})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let keys = body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        (keys, body["root_token"].as_str().unwrap().to_owned())
    }

    pub async fn unseal(&self, keys: &[String]) {
        for k in keys.iter().take(3) {
            let (status, body) = self
                .call("PUT", "sys/unseal", None, Some(json!({"key": k})))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let (_, body) = self.call("GET", "sys/seal-status", None, None).await;
        assert_eq!(body["sealed"], false, "{body}");
    }

    /// A new token made with `params` (the body of `auth/token/create`).
    pub async fn create_token(&self, root: &str, params: serde_json::Value) -> String {
        let (status, body) = self
            .call("POST", "auth/token/create", Some(root), Some(params))
            .await;
        assert_eq!(status, 200, "{body}");
        body["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// Create or replace ACL policy `name` with the HCL `policy`.
    pub async fn write_policy(&self, token: &str, name: &str, policy: &str) {
        let (status, body) = self
            .call(
                "PUT",
                &format!("sys/policies/acl/{name}"),
                Some(token),
                Some(json!({ "policy": policy })),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    /// Enable a kv v2 mount at `secret/`.
    pub async fn mount_secret(&self, token: &str) {
        let (status, body) = self
            .call(
                "POST",
                "sys/mounts/secret",
                Some(token),
                Some(json!({"type": "kv", "options": {"version": "2"}})),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
