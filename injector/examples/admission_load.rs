//! Load generator of `bench/injector`: starts a `cairn-injector` process with
//! a fresh test CA, sends `AdmissionReview`s over HTTPS at a fixed rate (open
//! loop: a request is sent on schedule whether or not earlier ones answered),
//! and reports latency percentiles. Measures; asserts nothing about time.
//!
//! ```sh
//! cargo run --release -p cairn-injector --example admission_load -- \
//!     --injector target/release/cairn-injector --rate 100 --seconds 20 \
//!     --out bench/results/issue-7-admission.md
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::{json, Value};

struct Options {
    injector: PathBuf,
    rate: u32,
    seconds: u32,
    out: Option<PathBuf>,
}

fn options() -> Result<Options> {
    let mut o = Options {
        injector: PathBuf::from("target/release/cairn-injector"),
        rate: 100,
        seconds: 20,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--injector" => o.injector = value()?.into(),
            "--rate" => o.rate = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            "--out" => o.out = Some(value()?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_injector(binary: &Path, dir: &Path) -> Result<(Killed, String, String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = params.self_signed(&ca_key)?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    std::fs::write(dir.join("tls.crt"), cert.pem())?;
    std::fs::write(dir.join("tls.key"), key.serialize_pem())?;
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .args(["--agent-image", "ghcr.io/cairn-dev/cairn-agent:0.1.0"])
        .args(["--cairn-addr", "https://cairn.cairn-system.svc:8200"])
        .args(["--log-level", "info"])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {}", binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Killed(child);
    let (mut webhook, mut http) = (None, None);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["message"] == "listening" {
            let addr = v["addr"].as_str().unwrap_or_default().to_owned();
            match v["listener"].as_str() {
                Some("webhook") => webhook = Some(addr),
                Some("http") => http = Some(addr),
                _ => {}
            }
        }
        if webhook.is_some() && http.is_some() {
            break;
        }
    }
    // Keep reading the logs (one info line per injected pod, as in
    // production) so the injector never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    match (webhook, http) {
        (Some(w), Some(h)) => Ok((child, w, h, ca.pem())),
        _ => bail!("cairn-injector exited before listening"),
    }
}

struct Row {
    scenario: &'static str,
    sent: usize,
    ok: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    achieved_rate: f64,
}

async fn run(
    scenario: &'static str,
    client: reqwest::Client,
    url: &str,
    body: Arc<Vec<u8>>,
    rate: u32,
    seconds: u32,
) -> Result<Row> {
    let total = (rate * seconds) as usize;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    let start = Instant::now();
    for _ in 0..total {
        interval.tick().await;
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await;
            let ok = match r {
                Ok(r) if r.status() == 200 => r
                    .bytes()
                    .await
                    .map(|b| b.windows(9).any(|w| w == b"JSONPatch"))
                    .unwrap_or(false),
                _ => false,
            };
            (t.elapsed(), ok)
        }));
    }
    let sending = start.elapsed();
    let mut latencies = Vec::with_capacity(total);
    let mut ok = 0;
    for t in tasks {
        let (d, good) = t.await?;
        latencies.push(d);
        ok += usize::from(good);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    Ok(Row {
        scenario,
        sent: total,
        ok,
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies[latencies.len() - 1],
        achieved_rate: total as f64 / sending.as_secs_f64(),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let dir = tempfile::tempdir()?;
    let (_injector, webhook, http, ca_pem) = start_injector(&o.injector, dir.path())?;
    let url = format!("https://{webhook}/mutate");
    let pod: Value = serde_json::from_str(&std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pods/deployment-web.json"),
    )?)?;
    let review = json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "bench"}, "object": pod, "dryRun": false
        }
    });
    let body = Arc::new(serde_json::to_vec(&review)?);
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
    let reused = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()?;
    let fresh = reqwest::Client::builder()
        .add_root_certificate(ca)
        .pool_max_idle_per_host(0)
        .build()?;
    // Warm-up: connections, allocator, page cache.
    run("warm-up", reused.clone(), &url, body.clone(), o.rate, 2).await?;
    let rows = vec![
        run(
            "keep-alive connections",
            reused,
            &url,
            body.clone(),
            o.rate,
            o.seconds,
        )
        .await?,
        run(
            "new TLS connection per review",
            fresh,
            &url,
            body.clone(),
            o.rate,
            o.seconds,
        )
        .await?,
    ];
    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await?
        .text()
        .await?;
    let server_mean = {
        let get = |name: &str| {
            metrics
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        match (
            get("cairn_injector_admission_duration_seconds_sum"),
            get("cairn_injector_admission_duration_seconds_count"),
        ) {
            (Some(s), Some(c)) if c > 0.0 => format!("{:.1} µs", s / c * 1e6),
            _ => "n/a".to_owned(),
        }
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut md = String::new();
    md.push_str("# Issue 7: admission latency of cairn-injector\n\n");
    md.push_str(&format!(
        "{} reviews/s for {} s per row (open loop), one `AdmissionReview` of a Deployment's pod \
         ({} bytes, injected: the answer carries a JSONPatch), HTTPS to `{}` on \
         127.0.0.1; client and server share the machine ({cpus} CPUs, load average {}). \
         Latency is measured by the client, from send to the full answer.\n\n",
        o.rate,
        o.seconds,
        body.len(),
        o.injector.display(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    md.push_str("| scenario | reviews | answered with a patch | rate achieved | p50 | p99 | max | target p99 |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.1}/s | {} | {} | {} | ≤ 5 ms |\n",
            r.scenario,
            r.sent,
            r.ok,
            r.achieved_rate,
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        ));
    }
    md.push_str(&format!(
        "\nServer-side time per review (decode, mutate, encode; from the injector's histogram, all rows and warm-up): mean {server_mean}.\n"
    ));
    print!("{md}");
    if let Some(out) = o.out {
        std::fs::write(&out, &md).with_context(|| format!("failed to write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if rows.iter().any(|r| r.ok != r.sent) {
        bail!("some reviews were not answered with a patch: the measurement is not valid");
    }
    Ok(())
}
