//! Exponential backoff with full jitter, so many agents whose core went away
//! at the same moment do not come back at the same moment.

use std::time::Duration;

use rand::Rng;

/// Delays growing from `base` to `cap`, each drawn uniformly from the upper
/// half of the current step (never zero, never above `cap`).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// Forget past failures (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Whether the last attempt failed.
    pub fn failing(&self) -> bool {
        self.attempt > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2), "{d:?}");
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_secs(1), "{late:?}");
        assert!(b.failing());
        b.reset();
        assert!(!b.failing());
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
