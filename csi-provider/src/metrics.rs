//! Prometheus metrics of the provider: mounts by gRPC code, latency, the
//! requests made to the core by operation, and the pods in the cache.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Outcome of a Mount: `ok` or the gRPC code of the error.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Success.
    ok,
    /// InvalidArgument.
    invalid_argument,
    /// PermissionDenied.
    permission_denied,
    /// NotFound.
    not_found,
    /// FailedPrecondition.
    failed_precondition,
    /// Unavailable.
    unavailable,
    /// ResourceExhausted.
    resource_exhausted,
    /// DeadlineExceeded.
    deadline_exceeded,
    /// Internal or anything else.
    internal,
}

impl From<tonic::Code> for Outcome {
    fn from(code: tonic::Code) -> Self {
        use tonic::Code as C;
        match code {
            C::Ok => Outcome::ok,
            C::InvalidArgument => Outcome::invalid_argument,
            C::PermissionDenied => Outcome::permission_denied,
            C::NotFound => Outcome::not_found,
            C::FailedPrecondition => Outcome::failed_precondition,
            C::Unavailable => Outcome::unavailable,
            C::ResourceExhausted => Outcome::resource_exhausted,
            C::DeadlineExceeded => Outcome::deadline_exceeded,
            _ => Outcome::internal,
        }
    }
}

/// A request the provider sends to the core.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CoreOp {
    /// Kubernetes login.
    login,
    /// Read of a static secret, or issue of a leased one.
    read,
    /// One request reading several static secrets (`sys/cairn/read`).
    read_batch,
    /// Lease renewal.
    renew,
    /// Lease revocation (of a pod's leases left by an earlier process).
    revoke,
    /// Lookup of a pod's leases (`sys/cairn/leases/owner`).
    owner_leases,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    code: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: CoreOp,
}

/// The provider's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    mounts: Family<OutcomeLabel, Counter>,
    duration: Histogram,
    core_requests: Family<OpLabel, Counter>,
    cached_pods: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cairn_csi");
        let mounts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "mounts",
            "Mount calls by outcome (ok or gRPC code)",
            mounts.clone(),
        );
        let duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "mount_duration_seconds",
            "Time to answer a Mount call",
            duration.clone(),
        );
        let core_requests = Family::<OpLabel, Counter>::default();
        registry.register(
            "core_requests",
            "Requests sent to the Cairn core, by operation",
            core_requests.clone(),
        );
        let cached_pods = Gauge::default();
        registry.register(
            "cached_pods",
            "Pods whose token and leases the provider keeps for rotation polls",
            cached_pods.clone(),
        );
        Self {
            registry,
            mounts,
            duration,
            core_requests,
            cached_pods,
        }
    }
}

impl Metrics {
    /// Records one Mount.
    pub fn mount(&self, code: tonic::Code, seconds: f64) {
        self.mounts
            .get_or_create(&OutcomeLabel { code: code.into() })
            .inc();
        self.duration.observe(seconds);
    }

    /// Records one request to the core.
    pub fn core_request(&self, op: CoreOp) {
        self.core_requests.get_or_create(&OpLabel { op }).inc();
    }

    /// Sets the number of cached pods.
    pub fn set_cached_pods(&self, pods: usize) {
        self.cached_pods
            .set(i64::try_from(pods).unwrap_or(i64::MAX));
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
