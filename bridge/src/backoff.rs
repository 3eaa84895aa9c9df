//! Reconnect and retry delays: exponential backoff with jitter. Pure: the caller supplies the
//! random draw.
//!
//! "Equal jitter": attempt `n` waits between half and all of `min(max, initial × 2ⁿ)`. Half is
//! fixed, so a stream that fails instantly can never spin in a hot loop; half is random, so many
//! bridges dropped by one gateway deploy don't reconnect in lockstep.

use std::time::Duration;

/// The delay curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The ceiling of the first delay.
    pub initial: Duration,
    /// The ceiling no delay exceeds.
    pub max: Duration,
}

/// The delays of one run of failures; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
}

impl Backoff {
    /// A fresh run.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// The delay before the next attempt, given a uniform draw `unit` in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let doubling = 2u32.saturating_pow(self.failures.min(31));
        let ceiling = self
            .policy
            .initial
            .saturating_mul(doubling)
            .min(self.policy.max);
        self.failures = self.failures.saturating_add(1);
        ceiling / 2 + ceiling.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// The delay before the next attempt, with a fresh random draw.
    pub fn next_jittered(&mut self) -> Duration {
        self.next_delay(fastrand::f64())
    }

    /// How many attempts have failed since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };

    #[test]
    fn delays_double_up_to_the_cap_and_stay_within_half_to_full() {
        let mut low = Backoff::new(POLICY);
        let mut high = Backoff::new(POLICY);
        let lows: Vec<u64> = (0..10)
            .map(|_| low.next_delay(0.0).as_millis() as u64)
            .collect();
        let highs: Vec<u64> = (0..10)
            .map(|_| high.next_delay(0.999_999).as_millis() as u64)
            .collect();
        assert_eq!(
            lows,
            [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]
        );
        assert_eq!(
            highs,
            [
                499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999
            ]
        );
    }

    #[test]
    fn reset_starts_over_and_huge_runs_do_not_overflow() {
        let mut b = Backoff::new(POLICY);
        for _ in 0..100 {
            b.next_delay(0.5);
        }
        assert_eq!(b.failures(), 100);
        assert!(b.next_delay(1.0) <= POLICY.max);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(250));
    }
}
