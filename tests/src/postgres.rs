//! A real PostgreSQL server in a temporary directory, on a free loopback port, with a password
//! for its superuser; stopped on drop. Runs as the `postgres` user (via `runuser`) when root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ports::free_port;

/// A running PostgreSQL cluster.
pub struct Postgres {
    /// Data directory, socket directory and log live here.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL `bin` directory used.
    pub bin: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Superuser name (`postgres`).
    pub superuser: String,
    /// Superuser password.
    pub password: String,
    running: bool,
}

/// The newest `/usr/lib/postgresql/<v>/bin` holding `initdb`; installs the
/// `postgresql` package if none does.
fn find_bin() -> PathBuf {
    let scan = || -> Option<PathBuf> {
        let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .collect();
        dirs.sort();
        dirs.pop().map(|(_, b)| b)
    };
    if let Some(b) = scan() {
        return b;
    }
    // Not installed: scripts/test installs it; a bare `cargo test` on a fresh machine tries here.
    let ok = Command::new("apt-get")
        .args(["install", "-y", "postgresql"])
        .status()
        .map(|s| s.success());
    assert!(
        matches!(ok, Ok(true)),
        "PostgreSQL is not installed and apt-get install failed"
    );
    scan().unwrap_or_else(|| {
        panic!("initdb not found under /usr/lib/postgresql after installing postgresql")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Run a PostgreSQL program, as the `postgres` user when we are root.
fn run(bin: &Path, prog: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(prog);
    let out = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .output()
    } else {
        Command::new(&exe).args(args).output()
    }
    .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    out
}

impl Postgres {
    /// `initdb` and start.
    pub fn start() -> Postgres {
        let bin = find_bin();
        let dir = tempfile::Builder::new()
            .prefix("cairn-pg")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir for PostgreSQL: {e}"));
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))
            .unwrap_or_else(|e| panic!("writing the password file: {e}"));
        std::fs::create_dir(dir.path().join("sock"))
            .unwrap_or_else(|e| panic!("creating the socket directory: {e}"));
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
            assert!(st.success(), "chown of the PostgreSQL directory failed");
        }
        let data = dir.path().join("data");
        let out = run(
            &bin,
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            bin,
            port: free_port(),
            superuser: "postgres".into(),
            password,
            running: false,
        };
        pg.start_server();
        pg
    }

    /// (Re)start the server on the same port.
    pub fn start_server(&mut self) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().join("sock").display()
        );
        let log = self.dir.path().join("pg.log");
        let out = run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "30",
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stop the server immediately.
    pub fn stop(&mut self) {
        if self.running {
            let data = self.dir.path().join("data");
            let _ = run(
                &self.bin,
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
            self.running = false;
        }
    }

    /// A connection URL for `user`/`password`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// A connection URL with Vault's `{{username}}`/`{{password}}` templates.
    pub fn template_url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Log in over TCP as `user` with `password`.
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname("postgres");
        cfg.connect_timeout(std::time::Duration::from_secs(5));
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A superuser connection (with the password given at initdb, or `password`).
    pub async fn admin(&self) -> tokio_postgres::Client {
        self.connect(&self.superuser, &self.password)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL superuser login failed: {e}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
