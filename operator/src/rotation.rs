//! The DynamicCredential life cycle as a pure state machine: from what was
//! observed (the lease's clock, a rotation in flight) to the one next step.
//! The controller performs the step, records it, and asks again.

use std::time::Duration;

use jiff::Timestamp;

/// The lease of the credential the Secret holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClock {
    /// When the lease was issued or last renewed.
    pub renewed_at: Timestamp,
    /// Seconds the lease had left right after that renewal.
    pub ttl_seconds: u64,
    /// When it expires unless renewed.
    pub expires_at: Timestamp,
    /// Whether the core lets it be renewed.
    pub renewable: bool,
}

/// A rotation whose new credential is already in the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// When every restart target had rolled out; `None` while waiting.
    pub rollouts_completed_at: Option<Timestamp>,
}

/// Everything the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The current time.
    pub now: Timestamp,
    /// The live lease of the Secret's credential, if there is one.
    pub lease: Option<LeaseClock>,
    /// `spec.renewalPercent`.
    pub renewal_percent: u8,
    /// A rotation in its second phase.
    pub rotation: Option<Rotation>,
    /// `spec.revokeGracePeriodSeconds`.
    pub grace: Duration,
}

/// The next thing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No live credential: issue one and write the Secret.
    Issue,
    /// Renew the lease now.
    Renew,
    /// The lease cannot outlive its next renewal point: start a rotation
    /// (issue a new credential, switch the Secret, restart the targets).
    Rotate,
    /// Restart the targets (idempotent) and check their rollouts.
    AwaitRollouts,
    /// The rollouts completed and the grace period passed: revoke the
    /// previous credential.
    RevokePrevious,
    /// Nothing to do until then.
    WaitUntil(Timestamp),
}

/// When the lease of `clock` is due for renewal.
pub fn renewal_due(clock: &LeaseClock, renewal_percent: u8) -> Timestamp {
    let millis = clock.ttl_seconds.saturating_mul(1000) * u64::from(renewal_percent.min(100)) / 100;
    let due = clock
        .renewed_at
        .checked_add(jiff::SignedDuration::from_millis(
            i64::try_from(millis).unwrap_or(i64::MAX),
        ))
        .unwrap_or(clock.expires_at);
    due.min(clock.expires_at)
}

/// The next step.
pub fn plan(o: &Observed) -> Step {
    let Some(lease) = o.lease.filter(|l| l.expires_at > o.now) else {
        return Step::Issue;
    };
    let due = renewal_due(&lease, o.renewal_percent);
    if o.now >= due {
        // The new credential's own renewal comes before the rest of a
        // rotation; a second rotation never starts while one is in flight.
        return match (lease.renewable, o.rotation) {
            (true, _) => Step::Renew,
            (false, None) => Step::Rotate,
            (false, Some(_)) => Step::AwaitRollouts,
        };
    }
    match o.rotation {
        None => Step::WaitUntil(due),
        Some(Rotation {
            rollouts_completed_at: None,
        }) => Step::AwaitRollouts,
        Some(Rotation {
            rollouts_completed_at: Some(done),
        }) => {
            let revoke_at = done
                .checked_add(
                    jiff::SignedDuration::try_from(o.grace).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(done);
            if o.now >= revoke_at {
                Step::RevokePrevious
            } else {
                Step::WaitUntil(revoke_at.min(due))
            }
        }
    }
}

/// After a renewal granted `granted_seconds` of a lease issued for
/// `issued_ttl_seconds`: whether the lease has reached its max TTL (the core
/// capped the renewal), so the credential must be rotated while it still
/// lives.
pub fn must_rotate_after_renewal(
    issued_ttl_seconds: u64,
    granted_seconds: u64,
    renewable: bool,
) -> bool {
    !renewable || granted_seconds < issued_ttl_seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn clock(renewed: i64, ttl: u64, renewable: bool) -> LeaseClock {
        LeaseClock {
            renewed_at: t(renewed),
            ttl_seconds: ttl,
            expires_at: t(renewed + ttl as i64),
            renewable,
        }
    }

    fn observed(now: i64, lease: Option<LeaseClock>, rotation: Option<Rotation>) -> Observed {
        Observed {
            now: t(now),
            lease,
            renewal_percent: 67,
            rotation,
            grace: Duration::from_secs(30),
        }
    }

    #[test]
    fn no_or_expired_lease_issues() {
        assert_eq!(plan(&observed(0, None, None)), Step::Issue);
        assert_eq!(
            plan(&observed(100, Some(clock(0, 100, true)), None)),
            Step::Issue
        );
    }

    #[test]
    fn renews_at_the_renewal_percent() {
        let c = clock(0, 100, true);
        assert_eq!(plan(&observed(10, Some(c), None)), Step::WaitUntil(t(67)));
        assert_eq!(plan(&observed(66, Some(c), None)), Step::WaitUntil(t(67)));
        assert_eq!(plan(&observed(67, Some(c), None)), Step::Renew);
        assert_eq!(plan(&observed(99, Some(c), None)), Step::Renew);
    }

    #[test]
    fn unrenewable_or_capped_leases_rotate() {
        assert_eq!(
            plan(&observed(70, Some(clock(0, 100, false)), None)),
            Step::Rotate
        );
        assert!(must_rotate_after_renewal(100, 40, true));
        assert!(must_rotate_after_renewal(100, 100, false));
        assert!(!must_rotate_after_renewal(100, 100, true));
    }

    #[test]
    fn rotation_waits_for_rollouts_then_grace_then_revokes() {
        let c = clock(0, 100, true);
        let waiting = Rotation {
            rollouts_completed_at: None,
        };
        assert_eq!(
            plan(&observed(5, Some(c), Some(waiting))),
            Step::AwaitRollouts
        );
        let done = Rotation {
            rollouts_completed_at: Some(t(10)),
        };
        assert_eq!(
            plan(&observed(20, Some(c), Some(done))),
            Step::WaitUntil(t(40))
        );
        assert_eq!(
            plan(&observed(40, Some(c), Some(done))),
            Step::RevokePrevious
        );
        // A renewal that falls due first is not starved by the rotation.
        assert_eq!(plan(&observed(70, Some(c), Some(done))), Step::Renew);
        // A long grace period still wakes up for the renewal.
        let mut o = observed(20, Some(c), Some(done));
        o.grace = Duration::from_secs(3600);
        assert_eq!(plan(&o), Step::WaitUntil(t(67)));
    }

    #[test]
    fn an_unrenewable_lease_in_rotation_does_not_start_another() {
        let c = clock(0, 100, false);
        let waiting = Rotation {
            rollouts_completed_at: None,
        };
        assert_eq!(
            plan(&observed(80, Some(c), Some(waiting))),
            Step::AwaitRollouts
        );
    }
}
