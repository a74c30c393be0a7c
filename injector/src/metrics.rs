//! The injector's Prometheus metrics, with fixed label sets.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What became of one admission review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The agent was added.
    Injected,
    /// The pod was left alone.
    Skipped,
    /// The pod was refused.
    Denied,
    /// The review itself was malformed (HTTP 400).
    Invalid,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Injected => "injected",
            Outcome::Skipped => "skipped",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

/// Result of a certificate reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadResult {
    /// The new pair is served.
    Ok,
    /// The files could not be used; the previous pair is still served.
    Error,
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

/// All metrics of the injector; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admissions: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let admissions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cairn_injector_admissions",
            "Admission reviews answered, by outcome",
            admissions.clone(),
        );
        let duration = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
        ]);
        registry.register(
            "cairn_injector_admission_duration_seconds",
            "Time to answer an admission review, from the request's body to the response",
            duration.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "cairn_injector_tls_reloads",
            "Reloads of the serving certificate after its files changed, by result",
            reloads.clone(),
        );
        Metrics {
            registry,
            admissions,
            duration,
            reloads,
        }
    }
}

impl Metrics {
    /// Count one answered review.
    pub fn admission(&self, outcome: Outcome, elapsed: Duration) {
        self.admissions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Count one certificate reload.
    pub fn reload(&self, result: ReloadResult) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Encoding into a String cannot fail; were it to, say so.
            out.clear();
            let _ = writeln!(out, "# metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_fixed_labels() {
        let m = Metrics::default();
        m.admission(Outcome::Injected, Duration::from_micros(300));
        m.admission(Outcome::Denied, Duration::from_micros(300));
        m.reload(ReloadResult::Ok);
        let text = m.render();
        assert!(
            text.contains("cairn_injector_admissions_total{outcome=\"injected\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cairn_injector_admissions_total{outcome=\"denied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cairn_injector_admission_duration_seconds_count 2"),
            "{text}"
        );
        assert!(
            text.contains("cairn_injector_tls_reloads_total{result=\"ok\"} 1"),
            "{text}"
        );
    }
}
