//! A real `cairn server --dev` process on a free loopback port; killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// A running dev-mode core: in-memory, initialised, unsealed, `secret/` mounted.
pub struct CoreServer {
    child: Child,
    addr: String,
    root_token: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The `cairn` binary of this workspace: `$CAIRN_BIN`, else next to the test executable's
/// directory (`target/<profile>/deps/<test>` → `target/<profile>/cairn`).
pub fn cairn_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .unwrap_or_else(|| panic!("test executable {} has no parent directory", exe.display()));
    let bin = profile_dir.join("cairn");
    assert!(
        bin.exists(),
        "the cairn binary is missing at {}: build it first with `cargo build -p cairn-core --bin cairn` (same CARGO_TARGET_DIR), or set CAIRN_BIN",
        bin.display()
    );
    bin
}

impl CoreServer {
    /// Start `cairn server --dev` and wait until `sys/health` answers.
    pub async fn start() -> CoreServer {
        Self::start_with(&[], &[]).await
    }

    /// Start with extra flags and environment variables.
    pub async fn start_with(args: &[&str], env: &[(&str, &str)]) -> CoreServer {
        let bin = cairn_binary();
        let mut last_error = String::new();
        // A port picked free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            match Self::spawn(&bin, args, env) {
                Ok(server) => {
                    server.wait_healthy().await;
                    return server;
                }
                Err(e) => last_error = e,
            }
        }
        panic!("cairn server --dev did not start: {last_error}");
    }

    fn spawn(bin: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Result<CoreServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("cairn-core")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let log = dir.path().join("server.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin);
        cmd.args(["server", "--dev", "--dev-listen-address", &listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = mpsc::channel::<String>();
        // Reads the banner, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(t) = line.trim().strip_prefix("Root Token:") {
                    let _ = tx.send(t.trim().to_string());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(token) = rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(CoreServer {
                    child,
                    addr: format!("http://{listen}"),
                    root_token: token,
                    log,
                    _dir: dir,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "exited with {status} before printing its root token: {err}"
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("no root token printed within 30 s".into());
            }
        }
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/v1/sys/health", self.addr);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cairn server at {} not healthy within 30 s; log:\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The root token printed by the dev server.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The server's stderr (its logs) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request to `/v1/<path>` with the root token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(
                method,
                format!("{}/v1/{}", self.addr, path.trim_start_matches('/')),
            )
            .header("X-Vault-Token", &self.root_token)
    }

    /// Process id (to send signals in fault tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for CoreServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
