//! Standard Kubernetes conditions (`metav1.Condition`) as the operator sets
//! them: one `Ready` condition, its reason from a fixed set.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition type every Cairn resource carries.
pub const READY: &str = "Ready";

/// Why a resource is or is not ready. A fixed set, so reasons can be metric
/// labels and documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionReason {
    /// Everything the object asks for exists in the core.
    Reconciled,
    /// A rule reaches a path outside the operator's path templates for the
    /// object's namespace.
    PathNotAllowed,
    /// The spec is invalid in another way (e.g. an unparsable duration).
    InvalidSpec,
    /// The core refused the operator or the workload's identity (403).
    PermissionDenied,
    /// The core or the Kubernetes API could not be reached or failed.
    Unavailable,
    /// A credential rotation is waiting for its targets' rollouts.
    RotationInProgress,
    /// The object is being deleted.
    Deleting,
}

impl ConditionReason {
    /// The CamelCase reason string of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionReason::Reconciled => "Reconciled",
            ConditionReason::PathNotAllowed => "PathNotAllowed",
            ConditionReason::InvalidSpec => "InvalidSpec",
            ConditionReason::PermissionDenied => "PermissionDenied",
            ConditionReason::Unavailable => "Unavailable",
            ConditionReason::RotationInProgress => "RotationInProgress",
            ConditionReason::Deleting => "Deleting",
        }
    }
}

/// The `Ready` condition for `generation`, keeping the previous transition
/// time when the status did not change (as `meta.SetStatusCondition` does),
/// so that an unchanged object produces an identical status and no write.
pub fn ready_condition(
    previous: &[Condition],
    ready: bool,
    reason: ConditionReason,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == READY && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    Condition {
        type_: READY.to_string(),
        status: status.to_string(),
        reason: reason.as_str().to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn transition_time_is_kept_while_the_status_stays() {
        let first = ready_condition(
            &[],
            true,
            ConditionReason::Reconciled,
            "ok",
            Some(1),
            at(10),
        );
        let again = ready_condition(
            std::slice::from_ref(&first),
            true,
            ConditionReason::Reconciled,
            "ok",
            Some(2),
            at(20),
        );
        assert_eq!(again.last_transition_time, at(10));
        assert_eq!(again.observed_generation, Some(2));
        let flipped = ready_condition(
            &[again],
            false,
            ConditionReason::PathNotAllowed,
            "no",
            Some(3),
            at(30),
        );
        assert_eq!(flipped.last_transition_time, at(30));
        assert_eq!(flipped.status, "False");
        assert_eq!(flipped.reason, "PathNotAllowed");
    }
}
