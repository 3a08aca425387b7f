//! [`RetryPolicy`]: how often and how patiently one event is offered to a receiver (pure: no clock, no
//! randomness of its own — the jitter comes in as an argument).

use std::time::Duration;

/// How one event's delivery is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The most one attempt (connect, send, response head) may take before it counts as failed, so a
    /// receiver that hangs cannot stall its app's deliveries.
    pub attempt_timeout: Duration,
    /// The wait before the second attempt; each later wait doubles it.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts, so a long outage is probed regularly.
    pub max_backoff: Duration,
    /// Attempts per event (the first included) before it is given up on and counted as a failure.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// Production-like: ten attempts over about four minutes in all.
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed + 1`, after `failed` (≥ 1) attempts failed, without jitter:
    /// `initial_backoff × 2^(failed − 1)`, at most `max_backoff`.
    pub fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    /// [`backoff`](Self::backoff) with "equal jitter": a uniformly random wait between half and all of it
    /// (`unit` in `[0, 1)`). Spreads the retries of many events (and of nodes after a failover) so a
    /// receiver coming back is not hit by all of them at once, yet never retries sooner than half the
    /// schedule (full jitter could retry at once).
    pub fn jittered_backoff(&self, failed: u32, unit: f64) -> Duration {
        let base = self.backoff(failed);
        base / 2 + base.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// Whether another attempt follows `failed` failed ones.
    pub fn retries_after(&self, failed: u32) -> bool {
        failed < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempt_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 10,
        }
    }

    #[test]
    fn the_backoff_doubles_from_the_initial_wait_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| policy().backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Far past the cap nothing overflows.
        assert_eq!(policy().backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        let p = policy();
        for failed in 1..=10 {
            let base = p.backoff(failed);
            assert_eq!(p.jittered_backoff(failed, 0.0), base / 2);
            assert_eq!(p.jittered_backoff(failed, 1.0), base);
            let mid = p.jittered_backoff(failed, 0.5);
            assert!(
                mid > base / 2 && mid < base,
                "{failed}: {mid:?} of {base:?}"
            );
        }
        // Out-of-range randomness is clamped, not trusted.
        assert_eq!(p.jittered_backoff(1, 7.0), p.backoff(1));
        assert_eq!(p.jittered_backoff(1, -1.0), p.backoff(1) / 2);
    }

    #[test]
    fn an_event_gets_exactly_max_attempts() {
        let p = policy();
        let attempts = (1..).take_while(|&failed| p.retries_after(failed)).count() + 1;
        assert_eq!(attempts, 10);
        let once = RetryPolicy {
            max_attempts: 1,
            ..p
        };
        assert!(!once.retries_after(1), "one attempt: no retry");
    }

    #[test]
    fn the_default_schedule_spans_minutes_not_hours() {
        let p = RetryPolicy::default();
        let total: Duration = (1..p.max_attempts).map(|n| p.backoff(n)).sum();
        assert_eq!(
            total,
            Duration::from_secs(1 + 2 + 4 + 8 + 16 + 32 + 60 + 60 + 60)
        );
    }
}
