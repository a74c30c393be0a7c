//! The CLI against a real `cairn server --dev`: every command runs as a
//! subprocess with `CAIRN_ADDR` / `CAIRN_TOKEN`, as a user would run it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ROOT_TOKEN: &str = "cli-test-root-token";

/// A `cairn server` process on a free loopback port; killed on drop.
struct Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already gone is fine; the point is not to leak a process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Status code of `GET /v1/sys/health`, or `None` if nothing answers yet.
fn health_status(addr: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request =
        format!("GET /v1/sys/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

impl Server {
    /// `cairn server --dev` with a known root token, ready (health 200).
    fn dev() -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        let args = [
            "server",
            "--dev",
            "--dev-listen-address",
            &addr,
            "--dev-root-token-id",
            ROOT_TOKEN,
        ];
        Self::spawn(addr.clone(), &args, 200, tempfile::tempdir().unwrap())
    }

    /// A server from an HCL config with in-memory storage: uninitialised,
    /// ready when health answers 501.
    fn uninitialised() -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("server.hcl");
        std::fs::write(
            &config,
            format!(
                "listener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n}}\n\
                 storage \"inmem\" {{}}\n"
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap().to_string();
        Self::spawn(addr, &["server", "--config", &config], 501, dir)
    }

    /// Starts `cairn ARGS`, logging to `dir`, and waits for `ready_status`.
    fn spawn(addr: String, args: &[&str], ready_status: u16, dir: tempfile::TempDir) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .env_remove("CAIRN_TOKEN")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut server = Server { child, addr, dir };
        server.wait_for_health(ready_status);
        server
    }

    fn wait_for_health(&mut self, wanted: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if health_status(&self.addr) == Some(wanted) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited early with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "server not ready within 30s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `cairn ARGS` with the root token.
    fn cairn(&self, args: &[&str]) -> Output {
        self.cairn_as(ROOT_TOKEN, args, None)
    }

    /// Runs `cairn ARGS` with `token` and optional stdin.
    fn cairn_as(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .args(args)
            .env("CAIRN_ADDR", format!("http://{}", self.addr))
            .env("CAIRN_TOKEN", token)
            // Nothing from the machine's environment may leak in.
            .env("HOME", self.dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("CAIRN_FORMAT")
            .env_remove("VAULT_FORMAT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.cairn(args))
    }

    /// Runs a command that must succeed with `--format json`; returns the JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--format=json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        expect_code(code, args, self.cairn(args))
    }
}

fn expect_ok(args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "cairn {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

fn expect_code(code: i32, args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "cairn {args:?}: wrong exit code\nstdout: {stdout}\nstderr: {stderr}"
    );
    stderr
}

/// The value in the `Key  Value` row named `key` of a table.
fn row<'a>(table: &'a str, key: &str) -> Option<&'a str> {
    table.lines().find_map(|line| {
        line.strip_prefix(key)
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .map(str::trim)
    })
}

#[test]
fn kv_put_get_and_versions() {
    let s = Server::dev();

    let out = s.ok(&["kv", "put", "secret/app/db", "password=x"]);
    assert!(out.contains("secret/data/app/db"), "{out}");
    assert_eq!(row(&out, "version"), Some("1"), "{out}");

    let table = s.ok(&["kv", "get", "secret/app/db"]);
    assert!(
        table.contains("Secret Path") && table.contains("Data"),
        "{table}"
    );
    assert_eq!(row(&table, "password"), Some("x"), "{table}");
    assert_eq!(row(&table, "version"), Some("1"), "{table}");

    let json = s.json(&["kv", "get", "secret/app/db"]);
    assert_eq!(json["data"]["data"]["password"], "x");
    assert_eq!(json["data"]["metadata"]["version"], 1);

    assert_eq!(
        s.ok(&["kv", "get", "--field=password", "secret/app/db"])
            .trim(),
        "x"
    );

    // Check-and-set: right version succeeds, stale version fails with 1.
    let out = s.ok(&["kv", "put", "--cas=1", "secret/app/db", "password=y"]);
    assert_eq!(row(&out, "version"), Some("2"), "{out}");
    let err = s.fails(1, &["kv", "put", "--cas=1", "secret/app/db", "password=z"]);
    assert!(
        err.contains("Error writing data to secret/data/app/db"),
        "{err}"
    );

    // Patch merges into the latest version.
    let out = s.ok(&["kv", "patch", "secret/app/db", "user=admin"]);
    assert_eq!(row(&out, "version"), Some("3"), "{out}");
    let latest = s.json(&["kv", "get", "secret/app/db"]);
    assert_eq!(latest["data"]["data"]["password"], "y");
    assert_eq!(latest["data"]["data"]["user"], "admin");

    let v1 = s.json(&["kv", "get", "--version", "1", "secret/app/db"]);
    assert_eq!(v1["data"]["data"]["password"], "x");

    // --mount takes the path relative to the mount.
    let same = s.json(&["kv", "get", "--mount=secret", "app/db"]);
    assert_eq!(same["data"]["metadata"]["version"], 3);

    // Delete, undelete, destroy.
    s.ok(&["kv", "delete", "secret/app/db"]);
    let err = s.fails(1, &["kv", "get", "secret/app/db"]);
    assert!(err.contains("secret/data/app/db"), "{err}");
    s.ok(&["kv", "undelete", "--versions=3", "secret/app/db"]);
    assert_eq!(
        s.json(&["kv", "get", "secret/app/db"])["data"]["data"]["user"],
        "admin"
    );
    s.ok(&["kv", "destroy", "--versions=1", "secret/app/db"]);
    s.fails(1, &["kv", "get", "--version=1", "secret/app/db"]);
    s.fails(2, &["kv", "undelete", "secret/app/db"]);

    // Metadata.
    let meta = s.ok(&["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(row(&meta, "current_version"), Some("3"), "{meta}");
    assert!(
        meta.contains("Version 1") && meta.contains("Version 3"),
        "{meta}"
    );
    s.ok(&[
        "kv",
        "metadata",
        "put",
        "--max-versions=5",
        "--custom-metadata=owner=team-a",
        "secret/app/db",
    ]);
    let meta = s.json(&["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(meta["data"]["max_versions"], 5);
    assert_eq!(meta["data"]["custom_metadata"]["owner"], "team-a");
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);

    // Rollback writes version 2's data as version 4.
    let out = s.ok(&["kv", "rollback", "--version=2", "secret/app/db"]);
    assert_eq!(row(&out, "version"), Some("4"), "{out}");
    let latest = s.json(&["kv", "get", "secret/app/db"]);
    assert_eq!(latest["data"]["data"]["password"], "y");
    assert!(latest["data"]["data"].get("user").is_none(), "{latest}");
    s.fails(1, &["kv", "rollback", "--version=1", "secret/app/db"]);

    // List.
    s.ok(&["kv", "put", "secret/app/nested/key", "a=b"]);
    let list = s.ok(&["kv", "list", "secret/app"]);
    let keys: Vec<&str> = list.lines().skip(2).map(str::trim).collect();
    assert_eq!(keys, ["db", "nested/"], "{list}");
    let list = s.json(&["kv", "list", "secret/"]);
    assert_eq!(list, serde_json::json!(["app/"]));
    s.fails(1, &["kv", "list", "secret/nothing-here"]);

    // Metadata delete removes every version.
    s.ok(&["kv", "metadata", "delete", "secret/app/db"]);
    s.fails(1, &["kv", "get", "secret/app/db"]);
    s.fails(1, &["kv", "metadata", "get", "secret/app/db"]);
}

#[test]
fn kv_values_from_files_and_stdin() {
    let s = Server::dev();
    let file = s.path("cert.pem");
    std::fs::write(&file, "-----BEGIN CERT-----\nabc\n").unwrap();
    let cert = format!("cert=@{}", file.display());
    expect_ok(
        &["kv", "put"],
        s.cairn_as(
            ROOT_TOKEN,
            &["kv", "put", "secret/files", &cert, "pw=-", "plain=v=w"],
            Some("from-stdin"),
        ),
    );
    let got = s.json(&["kv", "get", "secret/files"]);
    assert_eq!(got["data"]["data"]["cert"], "-----BEGIN CERT-----\nabc\n");
    assert_eq!(got["data"]["data"]["pw"], "from-stdin");
    assert_eq!(got["data"]["data"]["plain"], "v=w");

    // A whole JSON object from stdin.
    expect_ok(
        &["kv", "put", "-"],
        s.cairn_as(
            ROOT_TOKEN,
            &["kv", "put", "secret/json", "-"],
            Some(r#"{"nested": {"a": 1}, "s": "t"}"#),
        ),
    );
    let got = s.json(&["kv", "get", "secret/json"]);
    assert_eq!(got["data"]["data"]["nested"]["a"], 1);
}

/// Needs `core/src/main.rs` to parse `cli::normalize_args(std::env::args_os())`
/// instead of the raw argv (main.rs is outside the CLI's files); with that
/// one-line change this test passes.
#[test]
fn vault_style_single_dash_flags() {
    let s = Server::dev();
    s.ok(&["kv", "put", "secret/app/db", "password=x"]);
    s.ok(&["kv", "put", "-cas=1", "secret/app/db", "password=y"]);
    let out = s.ok(&[
        "kv",
        "get",
        "-format=json",
        "-version",
        "1",
        "secret/app/db",
    ]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["data"]["data"]["password"], "x");
    assert_eq!(
        s.ok(&["kv", "get", "-field=password", "secret/app/db"])
            .trim(),
        "y"
    );
    let out = s.ok(&[
        "token",
        "create",
        "-policy=default",
        "-ttl=1h",
        "-format=json",
    ]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert!(json["auth"]["client_token"].is_string(), "{json}");
}

#[test]
fn tokens_create_lookup_renew_revoke() {
    let s = Server::dev();
    let created = s.json(&[
        "token",
        "create",
        "--policy=default",
        "--ttl=1h",
        "--metadata=team=a",
    ]);
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(created["auth"]["lease_duration"], 3600);

    let table = s.ok(&["token", "create", "--policy=default", "--use-limit=3"]);
    assert!(row(&table, "token").is_some(), "{table}");
    assert!(row(&table, "token_accessor").is_some(), "{table}");

    // Lookup by token and by accessor; the token is never printed back.
    let out = s.ok(&["token", "lookup", &token]);
    assert!(!out.contains(&token), "lookup printed the token: {out}");
    assert_eq!(row(&out, "accessor"), Some(accessor.as_str()), "{out}");
    let by_accessor = s.json(&["token", "lookup", "--accessor", &accessor]);
    assert_eq!(by_accessor["data"]["meta"]["team"], "a");

    // Lookup-self and renew-self with the new token.
    let own = expect_ok(
        &["token", "lookup"],
        s.cairn_as(&token, &["token", "lookup"], None),
    );
    assert!(!own.contains(&token), "{own}");
    assert_eq!(row(&own, "accessor"), Some(accessor.as_str()), "{own}");
    let renewed = expect_ok(
        &["token", "renew"],
        s.cairn_as(&token, &["token", "renew", "--increment=30m"], None),
    );
    assert!(!renewed.contains(&token), "{renewed}");
    s.ok(&["token", "renew", &token]);

    // Capabilities of the root token.
    assert_eq!(
        s.ok(&["token", "capabilities", "secret/data/x"]).trim(),
        "root"
    );

    // Revoke; the token then stops working (exit 1).
    s.ok(&["token", "revoke", &token]);
    let err = expect_code(
        1,
        &["token", "lookup"],
        s.cairn_as(&token, &["token", "lookup"], None),
    );
    assert!(err.contains("Error looking up token"), "{err}");

    // Revoke by accessor, and revoke-self.
    let other = s.json(&["token", "create", "--policy=default"]);
    let other_token = other["auth"]["client_token"].as_str().unwrap().to_string();
    let other_accessor = other["auth"]["accessor"].as_str().unwrap();
    s.ok(&["token", "revoke", "--accessor", other_accessor]);
    expect_code(
        1,
        &["token", "lookup"],
        s.cairn_as(&other_token, &["token", "lookup"], None),
    );
    let third = s.json(&["token", "create", "--policy=default"]);
    let third_token = third["auth"]["client_token"].as_str().unwrap().to_string();
    expect_ok(
        &["token", "revoke", "--self"],
        s.cairn_as(&third_token, &["token", "revoke", "--self"], None),
    );
    expect_code(
        1,
        &["token", "lookup"],
        s.cairn_as(&third_token, &["token", "lookup"], None),
    );
    s.fails(2, &["token", "revoke"]);
}

#[test]
fn policies_limit_what_a_token_can_do() {
    let s = Server::dev();
    let file = s.path("app.hcl");
    std::fs::write(
        &file,
        "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .unwrap();
    let out = s.ok(&["policy", "write", "app-read", file.to_str().unwrap()]);
    assert!(out.contains("Uploaded policy: app-read"), "{out}");
    let text = s.ok(&["policy", "read", "app-read"]);
    assert!(text.contains("secret/data/app/*"), "{text}");
    let names = s.ok(&["policy", "list"]);
    assert!(names.lines().any(|l| l == "app-read"), "{names}");
    assert!(names.lines().any(|l| l == "default"), "{names}");

    // A policy from stdin.
    expect_ok(
        &["policy", "write", "-"],
        s.cairn_as(
            ROOT_TOKEN,
            &["policy", "write", "stdin-pol", "-"],
            Some("path \"secret/data/other\" { capabilities = [\"read\"] }"),
        ),
    );
    assert!(s
        .json(&["policy", "list"])
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "stdin-pol"));

    // A token with the policy may read app/* but not write, nor read elsewhere.
    s.ok(&["kv", "put", "secret/app/db", "password=x"]);
    s.ok(&["kv", "put", "secret/private", "k=v"]);
    let created = s.json(&["token", "create", "--policy=app-read"]);
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = expect_ok(
        &["kv", "get"],
        s.cairn_as(
            &token,
            &["kv", "get", "--field=password", "secret/app/db"],
            None,
        ),
    );
    assert_eq!(out.trim(), "x");
    let err = expect_code(
        1,
        &["kv", "get"],
        s.cairn_as(&token, &["kv", "get", "secret/private"], None),
    );
    assert!(err.contains("Code: 403"), "{err}");
    expect_code(
        1,
        &["kv", "put"],
        s.cairn_as(&token, &["kv", "put", "secret/app/db", "password=z"], None),
    );

    s.ok(&["policy", "delete", "app-read"]);
    assert!(!s.ok(&["policy", "list"]).lines().any(|l| l == "app-read"));
    s.fails(1, &["policy", "read", "app-read"]);
}

#[test]
fn secrets_engines_enable_list_disable() {
    let s = Server::dev();
    let out = s.ok(&["secrets", "enable", "--path=team", "--version=2", "kv"]);
    assert!(out.contains("team/"), "{out}");
    let list = s.ok(&["secrets", "list"]);
    assert!(list.lines().any(|l| l.starts_with("team/")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("secret/")), "{list}");
    let mounts = s.json(&["secrets", "list"]);
    assert_eq!(mounts["team/"]["type"], "kv");

    s.ok(&["kv", "put", "team/app", "a=b"]);
    assert_eq!(s.ok(&["kv", "get", "--field=a", "team/app"]).trim(), "b");

    s.ok(&["secrets", "disable", "team"]);
    let list = s.ok(&["secrets", "list"]);
    assert!(!list.lines().any(|l| l.starts_with("team/")), "{list}");
    s.fails(1, &["kv", "get", "team/app"]);
}

#[test]
fn audit_enable_list_verify_disable() {
    let s = Server::dev();
    let log = s.path("audit.log");
    let option = format!("file_path={}", log.display());
    s.ok(&["audit", "enable", "file", &option]);
    let list = s.ok(&["audit", "list", "--detailed"]);
    assert!(list.lines().any(|l| l.starts_with("file/")), "{list}");
    assert!(list.contains(log.to_str().unwrap()), "{list}");

    s.ok(&["kv", "put", "secret/audited", "password=hunter2"]);
    s.ok(&["kv", "get", "secret/audited"]);
    s.ok(&["audit", "disable", "file"]);
    assert!(s
        .ok(&["audit", "list"])
        .contains("No audit devices are enabled."));

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2"),
        "audit log holds a secret in clear"
    );
    let out = s.ok(&["audit", "verify", log.to_str().unwrap()]);
    assert!(out.contains("intact"), "{out}");

    // Edit one byte of line 2: verify names that line and exits 1.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines.len() >= 3, "{text}");
    let edited = lines[1].replacen("\"type\"", "\"typo\"", 1);
    assert_ne!(
        edited, lines[1],
        "line 2 has no \"type\" field: {}",
        lines[1]
    );
    lines[1] = edited;
    let tampered = s.path("tampered.log");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let err = s.fails(1, &["audit", "verify", tampered.to_str().unwrap()]);
    assert!(err.contains("line 2"), "{err}");
    s.fails(
        1,
        &["audit", "verify", s.path("missing.log").to_str().unwrap()],
    );
}

#[test]
fn generic_read_write_delete_list() {
    let s = Server::dev();
    expect_ok(
        &["write"],
        s.cairn_as(
            ROOT_TOKEN,
            &["write", "secret/data/raw", "-"],
            Some(r#"{"data": {"k": "v"}}"#),
        ),
    );
    let table = s.ok(&["read", "secret/data/raw"]);
    assert!(row(&table, "data").unwrap().contains("k:v"), "{table}");
    let json = s.json(&["read", "secret/data/raw"]);
    assert_eq!(json["data"]["data"]["k"], "v");
    assert_eq!(
        s.json(&["read", "secret/data/raw", "version=1"])["data"]["metadata"]["version"],
        1
    );
    let list = s.ok(&["list", "secret/metadata"]);
    assert!(list.lines().any(|l| l.trim() == "raw"), "{list}");

    let policy = s.path("p.hcl");
    std::fs::write(&policy, "path \"x/*\" { capabilities = [\"read\"] }").unwrap();
    let pair = format!("policy=@{}", policy.display());
    s.ok(&["write", "sys/policies/acl/from-write", &pair]);
    assert!(s.ok(&["policy", "read", "from-write"]).contains("x/*"));

    s.ok(&["delete", "secret/data/raw"]);
    s.fails(1, &["read", "secret/data/raw"]);
    s.fails(1, &["read", "secret/data/never-written"]);
}

#[test]
fn status_and_operator_on_dev_server() {
    let s = Server::dev();
    let out = s.ok(&["status"]);
    assert_eq!(row(&out, "Sealed"), Some("false"), "{out}");
    assert_eq!(row(&out, "Initialized"), Some("true"), "{out}");
    assert_eq!(s.json(&["status"])["sealed"], false);

    let before = s.json(&["operator", "key-status"]);
    let term = before["term"].as_u64().unwrap();
    let out = s.ok(&["operator", "rotate"]);
    assert!(out.contains("Rotated key"), "{out}");
    assert_eq!(s.json(&["operator", "key-status"])["term"], term + 1);

    s.ok(&["kv", "put", "secret/kept", "a=b"]);
    s.ok(&["operator", "seal"]);
    let err = s.fails(2, &["status"]);
    assert!(err.is_empty(), "{err}");
    s.fails(1, &["kv", "get", "secret/kept"]);
}

#[test]
fn operator_init_and_unseal() {
    let s = Server::uninitialised();
    let status = s.cairn_as("", &["status", "--format=json"], None);
    assert_eq!(status.status.code(), Some(2));
    let init = s.json(&["operator", "init", "--key-shares=3", "--key-threshold=2"]);
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    let root = init["root_token"].as_str().unwrap().to_string();

    let err = s.fails(1, &["operator", "unseal", "not-a-share"]);
    assert!(err.contains("Error unsealing"), "{err}");

    let out = s.ok(&["operator", "unseal", &keys[0]]);
    assert_eq!(row(&out, "Sealed"), Some("true"), "{out}");
    assert_eq!(row(&out, "Unseal Progress"), Some("1/2"), "{out}");
    let reset = s.json(&["operator", "unseal", "--reset"]);
    assert_eq!(reset["progress"], 0);
    // A key on stdin keeps it out of the process list.
    expect_ok(
        &["operator", "unseal"],
        s.cairn_as("", &["operator", "unseal"], Some(&format!("{}\n", keys[1]))),
    );
    let done = s.json(&["operator", "unseal", &keys[2]]);
    assert_eq!(done["sealed"], false);

    let out = expect_ok(&["status"], s.cairn_as(&root, &["status"], None));
    assert_eq!(row(&out, "Sealed"), Some("false"), "{out}");
}

#[test]
fn exit_codes_for_errors_and_usage() {
    let s = Server::dev();
    // Bad token: 1, with the server's error.
    let err = expect_code(
        1,
        &["kv", "get"],
        s.cairn_as("not-a-real-token", &["kv", "get", "secret/app/db"], None),
    );
    assert!(err.contains("Error reading secret/data/app/db"), "{err}");
    assert!(!err.contains(ROOT_TOKEN));
    // Missing secret: 1.
    let err = s.fails(1, &["kv", "get", "secret/does/not/exist"]);
    assert!(
        err.contains("No value found at secret/data/does/not/exist"),
        "{err}"
    );
    // Usage: 2.
    s.fails(2, &["kv"]);
    s.fails(2, &["kv", "get"]);
    s.fails(2, &["kv", "get", "--no-such-flag", "secret/a"]);
    s.fails(2, &["kv", "put", "secret/a", "not-a-pair"]);
    s.fails(2, &["kv", "get", "secret"]);
    s.fails(2, &["status", "--format=yaml"]);
    // Nothing listening: 1.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["status", "--address", &closed])
        .env("HOME", s.dir.path())
        .output()
        .unwrap();
    let err = expect_code(1, &["status"], out);
    assert!(err.contains("failed to reach the server"), "{err}");
}
