//! The agent's Prometheus metrics, served on `/metrics`. Labels are fixed
//! enums, never error text or paths.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How an operation ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It failed.
    Failure,
}

/// What a render did to its file.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RenderOutcome {
    /// The file was (re)written.
    Written,
    /// The content was already there.
    Unchanged,
    /// The file kept its last good content.
    Failed,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        })
    }
}

impl EncodeLabelValue for RenderOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            RenderOutcome::Written => "written",
            RenderOutcome::Unchanged => "unchanged",
            RenderOutcome::Failed => "failed",
        })
    }
}

/// Label set `{result=...}` of operations.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub result: Outcome,
}

/// Label set `{result=...}` of renders.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenderLabel {
    /// The outcome.
    pub result: RenderOutcome,
}

/// Every metric of the agent.
pub struct Metrics {
    registry: Registry,
    renders: Family<RenderLabel, Counter>,
    logins: Family<OutcomeLabel, Counter>,
    token_renewals: Family<OutcomeLabel, Counter>,
    lease_renewals: Family<OutcomeLabel, Counter>,
    changes: Counter,
    core_errors: Counter,
    commands: Family<OutcomeLabel, Counter>,
    ready: Gauge,
    last_render: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero, prefixed `cairn_agent`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn_agent");
        let m = Metrics {
            renders: Family::default(),
            logins: Family::default(),
            token_renewals: Family::default(),
            lease_renewals: Family::default(),
            changes: Counter::default(),
            core_errors: Counter::default(),
            commands: Family::default(),
            ready: Gauge::default(),
            last_render: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("renders", "File renders by result", m.renders.clone());
        registry.register("logins", "Kubernetes logins by result", m.logins.clone());
        registry.register(
            "token_renewals",
            "Token renewals by result",
            m.token_renewals.clone(),
        );
        registry.register(
            "lease_renewals",
            "Lease renewals by result",
            m.lease_renewals.clone(),
        );
        registry.register(
            "changes",
            "KV changes reported by the change stream",
            m.changes.clone(),
        );
        registry.register(
            "core_errors",
            "Calls that failed because the core was unreachable or unavailable",
            m.core_errors.clone(),
        );
        registry.register(
            "commands",
            "Commands run after a render, by result",
            m.commands.clone(),
        );
        registry.register("ready", "1 once every file was rendered", m.ready.clone());
        registry.register(
            "last_render_timestamp_seconds",
            "Unix time of the last file written",
            m.last_render.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count a render.
    pub fn render(&self, result: RenderOutcome) {
        self.renders.get_or_create(&RenderLabel { result }).inc();
        if result == RenderOutcome::Written {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_render.set(now);
        }
    }

    /// Count a login.
    pub fn login(&self, result: Outcome) {
        self.logins.get_or_create(&OutcomeLabel { result }).inc();
    }

    /// Count a token renewal.
    pub fn token_renewal(&self, result: Outcome) {
        self.token_renewals
            .get_or_create(&OutcomeLabel { result })
            .inc();
    }

    /// Count a lease renewal.
    pub fn lease_renewal(&self, result: Outcome) {
        self.lease_renewals
            .get_or_create(&OutcomeLabel { result })
            .inc();
    }

    /// Count a change reported by the change stream.
    pub fn change(&self) {
        self.changes.inc();
    }

    /// Count a failed call to the core.
    pub fn core_error(&self) {
        self.core_errors.inc();
    }

    /// Count a command run.
    pub fn command(&self, result: Outcome) {
        self.commands.get_or_create(&OutcomeLabel { result }).inc();
    }

    /// Mark the agent ready.
    pub fn set_ready(&self) {
        self.ready.set(1);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Read a counter's value in tests (`value of name{labels}` in `text`).
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counts_with_fixed_labels() {
        let m = Metrics::new();
        m.render(RenderOutcome::Written);
        m.render(RenderOutcome::Written);
        m.login(Outcome::Failure);
        m.set_ready();
        let text = m.encode();
        assert_eq!(
            sample(&text, "cairn_agent_renders_total{result=\"written\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "cairn_agent_logins_total{result=\"failure\"}"),
            Some(1.0)
        );
        assert_eq!(sample(&text, "cairn_agent_ready"), Some(1.0));
        assert!(text.ends_with("# EOF\n"));
    }
}
