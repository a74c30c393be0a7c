//! Figures of the CSI provider (issue 6), run by `bench/csi`: Mount latency
//! and throughput for 10 KV objects at 8 concurrent callers, the core
//! requests of one rotation poll of 100 pods with dynamic credentials, and
//! the provider's RSS idle and under load. Prints a Markdown table and
//! writes it to `bench/results/issue-6-csi.md`. Measures only: asserts
//! nothing about time.

// The provider's test harness, shared with its tests, which fail loudly.
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_e2e::or_fail::OrFail;
use cairn_e2e::Postgres;
use common::{Core, Pod, Provider, TokenReviewServer, POLICY};
use serde_json::json;

const CALLERS: usize = 8;
const PODS: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn counters(provider: &Provider) -> [f64; 5] {
    let mut out = [0.0; 5];
    for (i, op) in ["login", "read", "renew", "revoke", "owner_leases"]
        .iter()
        .enumerate()
    {
        out[i] = provider
            .counter(&format!("cairn_csi_core_requests_total{{op=\"{op}\"}}"))
            .await;
    }
    out
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("CSI_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let core_bin = common::cairn_bin().display().to_string();
    let core_profile = if core_bin.contains("/release/") {
        "release"
    } else {
        "debug"
    };
    let provider_profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let pg = Postgres::start();
    let dir = tempfile::tempdir().or_fail("creating a temp dir");
    let core = Core::start(dir.path()).await;
    let reviewer = TokenReviewServer::start().await;
    core.kubernetes_auth(&reviewer, POLICY).await;
    let mut objects = String::new();
    for i in 0..10 {
        core.put(
            &format!("team-a/s{i}"),
            json!({"value": format!("value-{i}-{}", "x".repeat(64))}),
        )
        .await;
        objects.push_str(&format!(
            "- {{fileName: s{i}, path: secret/data/team-a/s{i}, key: value}}\n"
        ));
    }
    for (path, body) in [
        ("sys/mounts/database", json!({"type": "database"})),
        (
            "database/config/pg",
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": pg.template_url(), "username": pg.superuser, "password": pg.password, "allowed_roles": "team-a-ro"}),
        ),
        (
            "database/roles/team-a-ro",
            json!({"db_name": "pg", "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"], "default_ttl": "1h", "max_ttl": "24h"}),
        ),
    ] {
        let (st, b) = core.call("POST", path, Some(body)).await;
        assert!(st == 204 || st == 200, "{path}: {b}");
    }
    let provider = Provider::start(dir.path(), &core.addr, &["--log-level", "warn"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(provider.pid());

    // 1. Mounts of 10 KV objects, 8 callers, each its own pod (login cached
    //    after the first mount, as on rotation polls).
    let objects = Arc::new(objects);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let mut client = provider.client().await;
        let pod = Pod::new(&reviewer, &format!("kv-{c}"));
        let objects = objects.clone();
        tasks.push(tokio::spawn(async move {
            // Warm-up: the first mount logs in.
            client
                .mount(pod.request(json!({"objects": *objects})))
                .await
                .or_fail("mounting");
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client
                    .mount(pod.request(json!({"objects": *objects})))
                    .await
                    .or_fail("mounting");
                lat.push(t.elapsed());
                assert_eq!(r.into_inner().files.len(), 10);
            }
            lat
        }));
    }
    let pid = provider.pid();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        while Instant::now() < deadline {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    });
    let started = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.or_fail("joining a caller"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_load = sampler.await.or_fail("joining the RSS sampler");
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let rate = latencies.len() as f64 / elapsed;

    // 2. 100 pods with dynamic credentials: first mounts, then one poll each.
    let pods: Vec<Pod> = (0..PODS)
        .map(|i| Pod::new(&reviewer, &format!("db-{i}")))
        .collect();
    let dyn_objects = "- {fileName: username, path: database/creds/team-a-ro, key: username}\n- {fileName: password, path: database/creds/team-a-ro, key: password}\n";
    let run_all = |pods: Vec<Pod>| {
        let provider_socket = provider.socket(0);
        async move {
            let chunks: Vec<Vec<Pod>> = pods
                .chunks(PODS / CALLERS + 1)
                .map(|c| c.to_vec())
                .collect();
            let mut tasks = Vec::new();
            for chunk in chunks {
                let socket = provider_socket.clone();
                tasks.push(tokio::spawn(async move {
                    let mut client = common::connect(&socket)
                        .await
                        .or_fail("connecting to the provider");
                    for pod in chunk {
                        client
                            .mount(pod.request(json!({"objects": dyn_objects})))
                            .await
                            .or_fail("mounting dynamic credentials");
                    }
                }));
            }
            for t in tasks {
                t.await.or_fail("joining a poll task");
            }
        }
    };
    run_all(pods.clone()).await;
    let before = counters(&provider).await;
    let leases_before = lease_count(&core).await;
    let poll_started = Instant::now();
    run_all(pods.clone()).await;
    let poll_seconds = poll_started.elapsed().as_secs_f64();
    let after = counters(&provider).await;
    let leases_after = lease_count(&core).await;
    let per_poll: Vec<f64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| (a - b) / PODS as f64)
        .collect();
    let rss_after = rss_kib(provider.pid());

    let table = format!(
        "# Issue 6: CSI provider figures\n\n\
         Machine: 2 shared CPU cores (load average {load} at the start: other builds running); provider {provider_profile} build; \
         core `{core_bin}` ({core_profile} build) in `--dev` mode (memory storage); PostgreSQL local; {seconds} s of load. \
         Produced by `bench/csi`.\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | Mount of 10 KV objects, 8 concurrent callers: p50 | {:.2} ms | |\n\
         | Mount of 10 KV objects, 8 concurrent callers: p99 | {:.2} ms | ≤ 10 ms |\n\
         | Mounts per second (8 callers) | {:.0} | |\n\
         | Rotation poll, 100 pods × 1 leased credential (2 files): new leases | {} | 0 |\n\
         | … core requests per pod poll: renew / read (issue) / login / owner lookup / revoke | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} | ≤ 1 renew per leased object, 0 issue |\n\
         | … wall time of the 100-pod poll (8 callers) | {:.0} ms | |\n\
         | Provider RSS idle | {:.1} MB | ≤ 20 MB |\n\
         | Provider RSS under load (peak during the KV load) | {:.1} MB | ≤ 20 MB |\n\
         | Provider RSS after 108 pods cached | {:.1} MB | ≤ 20 MB |\n",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        rate,
        leases_after as i64 - leases_before as i64,
        per_poll[2], per_poll[1], per_poll[0], per_poll[4], per_poll[3],
        poll_seconds * 1e3,
        rss_idle as f64 / 1024.0,
        rss_load as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    println!("{table}");
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/issue-6-csi.md");
    std::fs::write(&out, &table).or_fail("writing the results");
    eprintln!("written to {}", out.display());
}

async fn lease_count(core: &Core) -> u64 {
    let (_, body) = core
        .call("GET", "sys/cairn/leases/owners?kind=Pod", None)
        .await;
    body["data"]["owners"]
        .as_array()
        .or_fail("sys/cairn/leases/owners answered without a list of owners")
        .iter()
        .map(|o| {
            o["leases"]
                .as_u64()
                .or_fail("an owner without a lease count")
        })
        .sum()
}
