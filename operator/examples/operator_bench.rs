//! Figures of the operator (issue 5), run by `bench/operator`:
//!
//! 1. N DynamicCredentials (default 1,000) created at once: the time until
//!    every one is Ready, the operator's RSS (peak and after) and CPU time;
//! 2. reconciles of unchanged objects, after a re-list of every watch and
//!    after a restart of the operator: the writes they send to the API
//!    server (the test API server's recorder) and to the core (its file
//!    audit device).
//!
//! The `cairn-operator` binary runs as its own process (RSS and CPU are
//! read from `/proc`) against the `cairn-e2e` test API server (in this
//! process), a real `cairn server --dev` and a real PostgreSQL. Prints a
//! Markdown table and writes `bench/results/issue-5-operator.md`. Measures
//! only: asserts nothing about time; exits non-zero only when the
//! measurement could not be made.

#![allow(clippy::unwrap_used)] // benches fail loudly on any error

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_e2e::apiserver::recorder::RequestRecord;
use cairn_e2e::or_fail::{fail, OrFail};
use cairn_e2e::{CoreServer, Postgres, TestApiServer};
use serde_json::{json, Value};

const OPERATOR_USER: &str = "system:serviceaccount:cairn:cairn-operator";
const NAMESPACE: &str = "team-a";
const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
/// Concurrent clients creating the DynamicCredentials.
const CREATORS: usize = 8;
/// Core requests that change nothing although not sent as reads: the
/// lookup of the leases an owner holds is a `PUT` with the owner in the body.
const CORE_LOOKUPS: &[&str] = &["sys/cairn/leases/owner"];

/// `VmRSS` / `VmHWM` of `pid`, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of `pid` (`/proc/<pid>/stat`, fields 14 and 15).
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name, field 3 (state) is index 0: utime is 14 → 11.
    let get = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (get(11), get(12)) {
        (Some(u), Some(s)) => (u + s) / ticks,
        _ => 0.0,
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `release` when the binary sits in a `release` directory (as cargo puts it).
fn profile_of(path: &Path) -> &'static str {
    if path.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "debug"
    }
}

/// `target/<profile>/cairn-operator` beside this example, or `$OPERATOR_BIN`.
fn operator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OPERATOR_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().or_fail("finding this executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("cairn-operator"))
        .or_fail("finding the operator binary");
    if !bin.exists() {
        fail(&format!(
            "{} is missing: build it (cargo build -p cairn-operator --bin cairn-operator) or set OPERATOR_BIN",
            bin.display()
        ));
    }
    bin
}

struct Operator {
    child: Child,
    port: u16,
}

impl Operator {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sum of `cairn_operator_reconciles_total` over both controllers.
    async fn reconciles(&self) -> f64 {
        let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port)).await else {
            return 0.0;
        };
        resp.text()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("cairn_operator_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM (a graceful stop that releases the leader Lease), then wait.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    api: TestApiServer,
    core: CoreServer,
    _pg: Postgres,
    dir: tempfile::TempDir,
    audit: PathBuf,
    operator: PathBuf,
}

async fn core_call(core: &CoreServer, method: &str, path: &str, body: Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).or_fail("parsing an HTTP method");
    let resp = core
        .request(method, path)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    if !resp.status().is_success() {
        fail(&format!(
            "{path}: {}",
            resp.text().await.unwrap_or_default()
        ));
    }
}

async fn setup() -> Env {
    let api = TestApiServer::start().await;
    let core = CoreServer::start().await;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().or_fail("creating a temp dir");
    let operator = operator_bin();
    core_call(
        &core,
        "POST",
        "sys/mounts/database",
        json!({"type": "database"}),
    )
    .await;
    core_call(
        &core,
        "POST",
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.template_url(),
            "username": pg.superuser, "password": pg.password,
            "allowed_roles": "team-a_ro",
        }),
    )
    .await;
    core_call(
        &core,
        "POST",
        "database/roles/team-a_ro",
        json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h", "max_ttl": "24h"}),
    )
    .await;
    // The core reviews tokens with its own identity, as in a cluster.
    let reviewer = api.mint_token("cairn", "cairn", &[], Duration::from_secs(7200));
    let reviewer_file = dir.path().join("reviewer-token");
    std::fs::write(&reviewer_file, &reviewer).or_fail("writing the reviewer token");
    let out = Command::new(&operator)
        .args([
            "bootstrap",
            "--kubernetes-host",
            &api.url(),
            "--operator-namespace",
            "cairn",
        ])
        .arg("--token-reviewer-jwt-file")
        .arg(&reviewer_file)
        .env("CAIRN_ADDR", core.addr())
        .env("CAIRN_TOKEN", core.root_token())
        .output()
        .unwrap_or_else(|e| fail(&format!("run {}: {e}", operator.display())));
    if !out.status.success() {
        fail(&format!(
            "bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Every core request from here on is audited (the default `fsync=batch`).
    let audit = dir.path().join("audit.log");
    core_call(
        &core,
        "PUT",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit}}),
    )
    .await;
    api.ensure_service_account(NAMESPACE, "web");
    Env {
        api,
        core,
        _pg: pg,
        dir,
        audit,
        operator,
    }
}

fn start_operator(env: &Env) -> Operator {
    let token = env.api.mint_token(
        "cairn",
        "cairn-operator",
        &["cairn"],
        Duration::from_secs(7200),
    );
    let token_file = env.dir.path().join("token");
    std::fs::write(&token_file, &token).or_fail("writing the operator's token");
    let kube_token = env
        .api
        .mint_token("cairn", "cairn-operator", &[], Duration::from_secs(7200));
    let kubeconfig = env.dir.path().join("kubeconfig");
    env.api
        .write_kubeconfig(&kubeconfig, Some(&kube_token))
        .or_fail("writing the kubeconfig");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.dir.path().join("operator.log"))
        .or_fail("opening the operator log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .or_fail("binding a free port")
        .local_addr()
        .or_fail("reading the free port")
        .port();
    // Production settings (log level info, JSON, 15 s Lease, 60 s pod GC).
    let child = Command::new(&env.operator)
        .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("CAIRN_ADDR", env.core.addr())
        .env("CAIRN_TOKEN_FILE", &token_file)
        .env("POD_NAMESPACE", "cairn")
        .env("POD_NAME", format!("op-{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("run {}: {e}", env.operator.display())));
    Operator { child, port }
}

async fn post(client: &reqwest::Client, env: &Env, plural: &str, body: &Value) {
    let url = format!(
        "{}/apis/cairn.dev/v1alpha1/namespaces/{NAMESPACE}/{plural}",
        env.api.url()
    );
    match client.post(url).json(body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => fail(&format!(
            "create {plural}: {}",
            r.text().await.unwrap_or_default()
        )),
        Err(e) => fail(&format!("create {plural}: {e}")),
    }
}

fn is_ready(obj: &Value) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn ready_count(env: &Env, plural: &str) -> usize {
    env.api
        .objects("cairn.dev", plural)
        .iter()
        .filter(|o| is_ready(o))
        .count()
}

/// The operator's writes to the API server among `records`, leader-election
/// Lease writes apart: `(writes, lease writes, breakdown)`.
fn api_writes(records: &[RequestRecord]) -> (usize, usize, BTreeMap<String, usize>) {
    let mut breakdown = BTreeMap::new();
    let (mut writes, mut leases) = (0, 0);
    for r in records
        .iter()
        .filter(|r| r.is_write() && r.user.as_deref() == Some(OPERATOR_USER))
    {
        let sub = if r.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", r.subresource)
        };
        *breakdown
            .entry(format!("{} {}{sub}", r.verb, r.resource))
            .or_insert(0) += 1;
        if r.resource == "leases" {
            leases += 1;
        } else {
            writes += 1;
        }
    }
    (writes, leases, breakdown)
}

fn api_requests(records: &[RequestRecord]) -> usize {
    records
        .iter()
        .filter(|r| r.user.as_deref() == Some(OPERATOR_USER) && r.resource != "leases")
        .count()
}

/// Request entries of the core's audit log after line `from`: `(requests,
/// writes, logins, breakdown of the non-read requests)`. A login is the
/// operator process opening its session, counted apart from reconciles.
fn core_requests(audit: &Path, from: usize) -> (usize, usize, usize, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut breakdown = BTreeMap::new();
    let (mut requests, mut writes, mut logins) = (0, 0, 0);
    for line in lines.iter().skip(from) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["type"] != "request" {
            continue;
        }
        requests += 1;
        let op = v["request"]["operation"].as_str().unwrap_or("?");
        let path = v["request"]["path"].as_str().unwrap_or("?");
        if op == "read" || op == "list" {
            continue;
        }
        // Per-object paths are grouped: `sys/leases/renew`, `…/revoke/<id>`.
        let group = path
            .split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/")
            .to_owned();
        let lookup = CORE_LOOKUPS.contains(&path);
        let login = path.starts_with("auth/") && path.ends_with("/login");
        let label = if lookup {
            format!("{op} {path} (lookup)")
        } else {
            format!("{op} {group}")
        };
        *breakdown.entry(label).or_insert(0) += 1;
        if login {
            logins += 1;
        } else if !lookup {
            writes += 1;
        }
    }
    (requests, writes, logins, breakdown)
}

fn audit_lines(audit: &Path) -> usize {
    std::fs::read_to_string(audit)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Waits until the operator has run `target` reconciles and then ran none
/// for `quiet`; `None` after `timeout`.
async fn until_reconciled(
    op: &Operator,
    target: f64,
    quiet: Duration,
    timeout: Duration,
) -> Option<f64> {
    let deadline = Instant::now() + timeout;
    let mut last = -1.0;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        let now = op.reconciles().await;
        if now != last {
            last = now;
            since = Instant::now();
        } else if now >= target && since.elapsed() >= quiet {
            return Some(now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Waits until the operator sends no write (Lease renewals apart) for `quiet`.
async fn until_quiet(env: &Env, quiet: Duration, timeout: Duration) {
    let recorder = env.api.recorder();
    let deadline = Instant::now() + timeout;
    let mut mark = recorder.len();
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (writes, _, _) = api_writes(&recorder.since(mark));
        if writes > 0 {
            since = Instant::now();
        }
        mark = recorder.len();
    }
}

/// Makes every watch re-list, as after an API server restart: a write
/// nobody watches moves the resourceVersion past every watcher's last one
/// (bookmarks keep them current otherwise), the history is dropped, the
/// streams closed; each resumes from a version now too old (410 Gone).
async fn force_relist(env: &Env, client: &reqwest::Client) {
    let url = format!("{}/api/v1/namespaces/bench/configmaps", env.api.url());
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"generateName": "relist-"}, "data": {}});
    match client.post(url).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => fail(&format!(
            "create a ConfigMap: {}",
            r.text().await.unwrap_or_default()
        )),
        Err(e) => fail(&format!("create a ConfigMap: {e}")),
    }
    env.api.compact();
    env.api.close_watches();
}

#[derive(Default)]
struct Window {
    reconciles: f64,
    api_writes: usize,
    lease_writes: usize,
    api_breakdown: BTreeMap<String, usize>,
    core_requests: usize,
    core_writes: usize,
    core_logins: usize,
    core_breakdown: BTreeMap<String, usize>,
}

fn window(env: &Env, mark: usize, audit_mark: usize, reconciles: f64) -> Window {
    let records = env.api.recorder().since(mark);
    let (api_writes, lease_writes, api_breakdown) = api_writes(&records);
    let (core_requests, core_writes, core_logins, core_breakdown) =
        core_requests(&env.audit, audit_mark);
    Window {
        reconciles,
        api_writes,
        lease_writes,
        api_breakdown,
        core_requests,
        core_writes,
        core_logins,
        core_breakdown,
    }
}

struct Run {
    load_before: String,
    created_s: f64,
    half_ready_s: f64,
    all_ready_s: Option<f64>,
    ready: usize,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
    rss_after_kib: u64,
    cpu_s: f64,
    api_requests_per_dc: f64,
    api_writes_per_dc: f64,
    core_requests_per_dc: f64,
    relist: Window,
    restart: Window,
    rss_restarted_kib: u64,
}

async fn run_once(n: usize, ticks: f64) -> Run {
    let env = setup().await;
    let op = start_operator(&env);
    let client = reqwest::Client::new();
    post(
        &client,
        &env,
        "secretpolicies",
        &json!({
            "apiVersion": "cairn.dev/v1alpha1", "kind": "SecretPolicy",
            "metadata": {"name": "db"},
            "spec": {"serviceAccounts": ["web"], "rules": [{"path": "database/creds/team-a_ro", "capabilities": ["read"]}], "tokenTTL": "10m"}
        }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready_count(&env, "secretpolicies") < 1 {
        if Instant::now() > deadline {
            fail("the SecretPolicy was not Ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = op.pid();
    let rss_idle_kib = status_kib(pid, "VmRSS:");
    let cpu0 = cpu_seconds(pid, ticks);
    let load_before = load_average();
    let mark = env.api.recorder().len();
    let audit_mark = audit_lines(&env.audit);

    // 1. N DynamicCredentials at once: CREATORS clients post them as fast
    //    as the API server takes them; the clock runs from the first post.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..CREATORS {
        let (client, next) = (client.clone(), next.clone());
        let url = format!(
            "{}/apis/cairn.dev/v1alpha1/namespaces/{NAMESPACE}/dynamiccredentials",
            env.api.url()
        );
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                let name = format!("db-{i:04}");
                let body = json!({
                    "apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential",
                    "metadata": {"name": name},
                    "spec": {"path": "database/creds/team-a_ro", "serviceAccountName": "web",
                             "secretName": format!("{name}-secret"), "renewalPercent": 50,
                             "rolloutRestartTargets": [], "revokeGracePeriodSeconds": 1}
                });
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => return Err(r.text().await.unwrap_or_default()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }));
    }
    for c in creators {
        if let Err(e) = c.await.or_fail("joining a creation task") {
            fail(&format!("create a DynamicCredential: {e}"));
        }
    }
    let created_s = started.elapsed().as_secs_f64();
    let timeout = Duration::from_secs(
        std::env::var("OPERATOR_BENCH_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(900),
    );
    let (mut half_ready_s, mut all_ready_s, mut ready) = (f64::NAN, None, 0);
    let mut last_report = Instant::now();
    while started.elapsed() < timeout {
        ready = ready_count(&env, "dynamiccredentials");
        if half_ready_s.is_nan() && ready * 2 >= n {
            half_ready_s = started.elapsed().as_secs_f64();
        }
        if ready >= n {
            all_ready_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "  {ready}/{n} Ready after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu_s = cpu_seconds(pid, ticks) - cpu0;
    until_quiet(&env, Duration::from_secs(5), Duration::from_secs(120)).await;
    let rss_after_kib = status_kib(pid, "VmRSS:");
    let rss_peak_kib = status_kib(pid, "VmHWM:");
    let records = env.api.recorder().since(mark);
    let (writes, _, _) = api_writes(&records);
    let (core_reqs, _, _, _) = core_requests(&env.audit, audit_mark);
    let per = |x: usize| x as f64 / n as f64;
    eprintln!(
        "  creation: {ready}/{n} Ready, {:?} s",
        all_ready_s.map(|s| (s * 10.0).round() / 10.0)
    );

    // 2a. Every watch re-lists (history compacted, streams closed, as after
    //     an API server restart): the controllers reconcile every object,
    //     all unchanged.
    until_quiet(&env, Duration::from_secs(5), Duration::from_secs(120)).await;
    let before = op.reconciles().await;
    let (mark, audit_mark) = (env.api.recorder().len(), audit_lines(&env.audit));
    force_relist(&env, &client).await;
    let Some(after) = until_reconciled(
        &op,
        before + n as f64 + 1.0,
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
    .await
    else {
        fail("the re-list did not reconcile every object within 300 s");
    };
    let relist = window(&env, mark, audit_mark, after - before);
    eprintln!(
        "  re-list: {} reconciles, {} API writes, {} core writes",
        relist.reconciles, relist.api_writes, relist.core_writes
    );

    // 2b. The operator restarts: a new leader reconciles every object once
    //     (and checks each DynamicCredential's leases against the core).
    op.stop();
    let (mark, audit_mark) = (env.api.recorder().len(), audit_lines(&env.audit));
    let op = start_operator(&env);
    let Some(after) = until_reconciled(
        &op,
        n as f64 + 1.0,
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
    .await
    else {
        fail("the restarted operator did not reconcile every object within 300 s");
    };
    let restart = window(&env, mark, audit_mark, after);
    let rss_restarted_kib = status_kib(op.pid(), "VmRSS:");
    eprintln!(
        "  restart: {} reconciles, {} API writes, {} core writes: {}; {}",
        restart.reconciles,
        restart.api_writes,
        restart.core_writes,
        breakdown(&restart.api_breakdown),
        breakdown(&restart.core_breakdown)
    );
    drop(op);
    Run {
        load_before,
        created_s,
        half_ready_s,
        all_ready_s,
        ready,
        rss_idle_kib,
        rss_peak_kib,
        rss_after_kib,
        cpu_s,
        api_requests_per_dc: per(api_requests(&records)),
        api_writes_per_dc: per(writes),
        core_requests_per_dc: per(core_reqs),
        relist,
        restart,
        rss_restarted_kib,
    }
}

fn breakdown(b: &BTreeMap<String, usize>) -> String {
    if b.is_empty() {
        return "none".into();
    }
    b.iter()
        .map(|(k, v)| format!("{v} × `{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn per_run(all: &[Run], f: &dyn Fn(&Run) -> String) -> String {
    all.iter().map(f).collect::<Vec<_>>().join(", ")
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("OPERATOR_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let runs: usize = std::env::var("OPERATOR_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let ticks = clock_ticks();
    let core_bin = cairn_e2e::core_server::cairn_binary();
    let operator = operator_bin();
    let mut all = Vec::new();
    for i in 0..runs {
        eprintln!("run {} of {runs}: {n} DynamicCredentials", i + 1);
        all.push(run_once(n, ticks).await);
    }
    let med = |f: &dyn Fn(&Run) -> f64| median(all.iter().map(f).collect());
    let mb = |kib: f64| kib / 1024.0;
    let all_ready = if all.iter().all(|r| r.all_ready_s.is_some()) {
        format!("{:.1} s", med(&|r| r.all_ready_s.unwrap_or(f64::NAN)))
    } else {
        format!(
            "not all Ready: {} of {n} at the timeout (runs: {})",
            all.iter().map(|r| r.ready).min().unwrap_or(0),
            all.iter()
                .map(|r| r
                    .all_ready_s
                    .map_or("timeout".to_owned(), |s| format!("{s:.1} s")))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let last = all.last().or_fail("no run was measured");
    let loads = all
        .iter()
        .map(|r| r.load_before.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let runs_note = if runs > 1 {
        format!("medians of {runs} runs")
    } else {
        "one run".to_owned()
    };
    let table = format!(
        "# Issue 5: operator figures\n\n\
         Machine: {cpus} shared CPU cores, 1-minute load average before creation: {loads} (other work running); \
         operator `{op}` ({op_profile} build), the bench and its in-process test API server ({self_profile} build); \
         core `{core}` ({core_profile} build) in `--dev` mode (memory storage) with a file audit device (`fsync=batch`); \
         PostgreSQL local (the e2e harness's: `fsync=off`). {runs_note}. Produced by `bench/operator`.\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | {n} DynamicCredentials created at once: all Ready | {all_ready} | ≤ 30 s |\n\
         | … half of them Ready | {half:.1} s | |\n\
         | … time to create them ({CREATORS} clients) | {created:.1} s | |\n\
         | … operator CPU time, first create → all Ready | {cpu:.1} s | |\n\
         | Operator RSS: idle (1 SecretPolicy) / peak (`VmHWM`) / after all Ready | {idle:.1} / {peak:.1} / {after:.1} MB | ≤ 50 MB |\n\
         | … per DynamicCredential: operator requests to the API server (Lease apart) / writes / core requests | {apr:.1} / {apw:.1} / {cr:.1} | |\n\
         | Re-list of every watch ({rl_rec:.0} reconciles of unchanged objects): writes to the API server | {rl_api:.0} | 0 |\n\
         | … writes to the core | {rl_core:.0} (of {rl_core_req:.0} core requests) | 0 |\n\
         | Operator restart ({rs_rec:.0} reconciles of unchanged objects): writes to the API server (Lease apart) | {rs_api:.0} | 0 |\n\
         | … writes to the core (the new process's login apart: {rs_login:.0}) | {rs_core:.0} (of {rs_core_req:.0} core requests) | 0 |\n\
         | RSS of the restarted operator, {n} objects cached | {rss_rs:.1} MB | ≤ 50 MB |\n\n\
         Writes in the last run's windows, by verb and resource (operator's requests only; the core's from its audit log, \
         non-read operations only, grouped by the first three path segments):\n\n\
         - re-list, API server: {rl_api_b} (leader-election Lease: {rl_lease});\n\
         - re-list, core: {rl_core_b};\n\
         - restart, API server: {rs_api_b} (leader-election Lease: {rs_lease});\n\
         - restart, core: {rs_core_b}.\n\n\
         Per run: all Ready {per_ready}; re-list writes (API server / core) {per_relist}; \
         restart writes (API server / core) {per_restart}.\n",
        cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
        op = operator.display(),
        op_profile = profile_of(&operator),
        self_profile = if cfg!(debug_assertions) { "debug" } else { "release" },
        core = core_bin.display(),
        core_profile = profile_of(&core_bin),
        half = med(&|r| r.half_ready_s),
        created = med(&|r| r.created_s),
        cpu = med(&|r| r.cpu_s),
        idle = mb(med(&|r| r.rss_idle_kib as f64)),
        peak = mb(med(&|r| r.rss_peak_kib as f64)),
        after = mb(med(&|r| r.rss_after_kib as f64)),
        apr = med(&|r| r.api_requests_per_dc),
        apw = med(&|r| r.api_writes_per_dc),
        cr = med(&|r| r.core_requests_per_dc),
        rl_rec = med(&|r| r.relist.reconciles),
        rl_api = med(&|r| r.relist.api_writes as f64),
        rl_core = med(&|r| r.relist.core_writes as f64),
        rl_core_req = med(&|r| r.relist.core_requests as f64),
        rs_rec = med(&|r| r.restart.reconciles),
        rs_api = med(&|r| r.restart.api_writes as f64),
        rs_core = med(&|r| r.restart.core_writes as f64),
        rs_core_req = med(&|r| r.restart.core_requests as f64),
        rs_login = med(&|r| r.restart.core_logins as f64),
        rss_rs = mb(med(&|r| r.rss_restarted_kib as f64)),
        rl_api_b = breakdown(&last.relist.api_breakdown),
        rl_lease = last.relist.lease_writes,
        rl_core_b = breakdown(&last.relist.core_breakdown),
        rs_api_b = breakdown(&last.restart.api_breakdown),
        rs_lease = last.restart.lease_writes,
        rs_core_b = breakdown(&last.restart.core_breakdown),
        per_ready = per_run(&all, &|r| r
            .all_ready_s
            .map_or("timeout".to_owned(), |s| format!("{s:.1} s"))),
        per_relist = per_run(&all, &|r| format!(
            "{} / {}",
            r.relist.api_writes, r.relist.core_writes
        )),
        per_restart = per_run(&all, &|r| format!(
            "{} / {}",
            r.restart.api_writes, r.restart.core_writes
        )),
    );
    println!("{table}");
    if std::env::var_os("OPERATOR_BENCH_NO_WRITE").is_none() {
        let out =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/issue-5-operator.md");
        std::fs::write(&out, &table)
            .unwrap_or_else(|e| fail(&format!("write {}: {e}", out.display())));
        eprintln!("written to {}", out.display());
    }
}
