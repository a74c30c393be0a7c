//! Errors of a reconcile, each with a fixed reason (a metric label) and a
//! verdict: transient (retry with backoff) or permanent (a condition
//! explains; the next edit of the object retries).

use std::time::Duration;

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A call to the core failed.
    #[error("core call failed: {context}: {source}")]
    Core {
        /// What the operator was doing.
        context: &'static str,
        /// The client's error.
        #[source]
        source: cairn_client::ClientError,
    },
    /// The object's spec cannot be applied (a condition says why).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The policy text could not be built.
    #[error("failed to render the policy: {0}")]
    Render(#[from] hcl::Error),
    /// The object lacks a namespace, a uid or a name.
    #[error("object metadata is incomplete: {0}")]
    Metadata(&'static str),
    /// The core answered something the operator cannot use.
    #[error("unexpected answer from the core: {0}")]
    CoreAnswer(String),
}

/// Fixed reasons for the error metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelValue,
)]
pub enum ErrorReason {
    /// Kubernetes API errors.
    KubeApi,
    /// The core refused (403).
    CoreDenied,
    /// The core rejected the input (4xx other than 403).
    CoreRejected,
    /// The core failed or could not be reached.
    CoreUnavailable,
    /// Invalid spec.
    InvalidSpec,
    /// Anything else.
    Internal,
}

impl ReconcileError {
    /// Shorthand for a core error.
    pub fn core(context: &'static str) -> impl FnOnce(cairn_client::ClientError) -> Self {
        move |source| ReconcileError::Core { context, source }
    }

    /// The metric reason.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ReconcileError::Kube(_) => ErrorReason::KubeApi,
            ReconcileError::Core { source, .. } => match source.status() {
                Some(403) => ErrorReason::CoreDenied,
                Some(s) if (400..500).contains(&s) => ErrorReason::CoreRejected,
                _ => ErrorReason::CoreUnavailable,
            },
            ReconcileError::InvalidSpec(_) => ErrorReason::InvalidSpec,
            ReconcileError::Render(_)
            | ReconcileError::Metadata(_)
            | ReconcileError::CoreAnswer(_) => ErrorReason::Internal,
        }
    }

    /// Whether retrying without an edit can help. Permanent errors wait for
    /// the next change of the object (or a slow periodic retry).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.reason(),
            ErrorReason::InvalidSpec | ErrorReason::CoreDenied | ErrorReason::CoreRejected
        )
    }
}

/// Exponential backoff with full jitter: attempt 0 waits about a second,
/// doubling to at most `cap`; the wait is uniformly drawn from [half, full],
/// so many failing objects do not retry in lockstep.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    use rand::Rng;
    let full = Duration::from_secs(1u64 << attempt.min(16)).min(cap);
    let half = full / 2;
    let extra = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let cap = Duration::from_secs(300);
        for attempt in 0..30 {
            let d = backoff(attempt, cap);
            let full = Duration::from_secs(1u64 << attempt.min(16)).min(cap);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        let draws: std::collections::BTreeSet<_> = (0..20).map(|_| backoff(8, cap)).collect();
        assert!(draws.len() > 1, "no jitter");
    }

    #[test]
    fn denials_and_bad_specs_are_permanent_outages_are_not() {
        let denied = ReconcileError::Core {
            context: "x",
            source: cairn_client::ClientError::Api {
                status: 403,
                errors: vec![],
            },
        };
        assert!(denied.is_permanent());
        let down = ReconcileError::Core {
            context: "x",
            source: cairn_client::ClientError::Api {
                status: 503,
                errors: vec![],
            },
        };
        assert!(!down.is_permanent());
        assert_eq!(down.reason(), ErrorReason::CoreUnavailable);
        assert!(ReconcileError::InvalidSpec("x".into()).is_permanent());
    }
}
