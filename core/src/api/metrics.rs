//! Request metrics in Prometheus text format, with a fixed label set
//! (method and status class), so no input can grow the series count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::reply::Reply;

const METHODS: [&str; 7] = ["GET", "LIST", "POST", "PUT", "PATCH", "DELETE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters updated on every request with relaxed atomics (no locks).
pub struct Metrics {
    requests: [[AtomicU64; 5]; 7],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

fn method_index(m: &Method) -> usize {
    METHODS
        .iter()
        .position(|x| *x == m.as_str())
        .unwrap_or(METHODS.len() - 1)
}

impl Metrics {
    /// Record one finished request.
    pub fn observe(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.requests[method_index(method)][class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Prometheus text (`format=prometheus`) or a JSON summary.
    pub fn render(&self, format: Option<&str>, leases: Option<crate::lease::LeaseStats>) -> Reply {
        if format != Some("prometheus") {
            let total: u64 = self.count.load(Ordering::Relaxed);
            return Reply::bare(
                200,
                &json!({ "Counters": [{"Name": "cairn.core.http.requests", "Count": total}] }),
            );
        }
        let mut out = String::new();
        out.push_str(
            "# HELP cairn_http_requests_total HTTP requests by method and status class.\n",
        );
        out.push_str("# TYPE cairn_http_requests_total counter\n");
        for (mi, m) in METHODS.iter().enumerate() {
            for (ci, c) in CLASSES.iter().enumerate() {
                let v = self.requests[mi][ci].load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "cairn_http_requests_total{{method=\"{m}\",code=\"{c}\"}} {v}"
                    );
                }
            }
        }
        out.push_str("# HELP cairn_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE cairn_http_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let v = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "cairn_http_request_duration_seconds_bucket{{le=\"{le}\"}} {v}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cairn_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "cairn_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "cairn_http_request_duration_seconds_count {count}");
        if let Some(l) = leases {
            for (name, kind, help, v) in [
                (
                    "cairn_lease_queued",
                    "gauge",
                    "Leases waiting in this node's expiry queue (all of them on the leader).",
                    l.queued,
                ),
                (
                    "cairn_lease_revocations_total",
                    "counter",
                    "Leases revoked since unseal.",
                    l.revocations,
                ),
                (
                    "cairn_lease_revocation_failures_total",
                    "counter",
                    "Failed revocation attempts (each lease is retried with backoff).",
                    l.revocation_failures,
                ),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        Reply {
            raw: Some(("text/plain; version=0.0.4", out.into_bytes())),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_fixed_labels() {
        let m = Metrics::default();
        m.observe(&Method::GET, StatusCode::OK, Duration::from_micros(300));
        m.observe(
            &Method::from_bytes(b"BREW").unwrap(),
            StatusCode::NOT_FOUND,
            Duration::from_millis(2),
        );
        let Reply {
            raw: Some((_, body)),
            ..
        } = m.render(
            Some("prometheus"),
            Some(crate::lease::LeaseStats {
                queued: 3,
                revocations: 2,
                revocation_failures: 1,
            }),
        )
        else {
            panic!("no body")
        };
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("cairn_http_requests_total{method=\"GET\",code=\"2xx\"} 1"));
        assert!(text.contains("cairn_http_requests_total{method=\"OTHER\",code=\"4xx\"} 1"));
        assert!(text.contains("cairn_http_request_duration_seconds_count 2"));
        assert!(text.contains("cairn_lease_queued 3\n"));
        assert!(text.contains("cairn_lease_revocation_failures_total 1\n"));
        assert!(text.contains("le=\"0.0005\"} 1"));
    }
}
