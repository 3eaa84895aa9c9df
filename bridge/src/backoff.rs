//! Reconnect and retry delays: exponential backoff with jitter. Pure: the caller supplies the
//! random draw.
//!
//! "Equal jitter": attempt `n` waits between half and all of `min(max, initial × 2ⁿ)`. Half is
//! fixed, so a stream that fails instantly can never spin in a hot loop; half is random, so many
//! bridges dropped by one gateway deploy don't reconnect in lockstep.
//!
//! [`reconnect_delay`] decides after a dropped connection: a healthy session (one that delivered
//! events or stayed up for a while) starts the curve over; a provider's explicit "reconnect now"
//! (Heisenberg's close code 4001) after a healthy session waits only 0–250 ms; a server's
//! `retry:` hint is honoured up to the curve's cap.

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

/// The longest wait before answering a provider's "reconnect now".
pub const PROMPT_RECONNECT: Duration = Duration::from_millis(250);

/// How a connection ended, as far as the next delay is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ending {
    /// The session worked (delivered events, or stayed up long enough): start the curve over.
    pub healthy: bool,
    /// The provider asked for an immediate reconnect.
    pub prompt: bool,
    /// The server's own minimum delay (SSE `retry:`), if it gave one.
    pub at_least: Duration,
}

/// The delay before reconnecting after `ending`, given a uniform draw `unit` in `[0, 1)`.
pub fn reconnect_delay(backoff: &mut Backoff, ending: Ending, unit: f64) -> Duration {
    if ending.healthy {
        backoff.reset();
    }
    let floor = ending.at_least.min(backoff.policy.max);
    if ending.healthy && ending.prompt {
        return PROMPT_RECONNECT.mul_f64(unit.clamp(0.0, 1.0)).max(floor);
    }
    backoff.next_delay(unit).max(floor)
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

    #[test]
    fn reconnects_are_prompt_only_after_a_healthy_session_asked_for_one() {
        let mut b = Backoff::new(POLICY);
        let healthy_4001 = Ending {
            healthy: true,
            prompt: true,
            ..Ending::default()
        };
        assert!(reconnect_delay(&mut b, healthy_4001, 0.99) <= PROMPT_RECONNECT);
        // A gateway that closes 4001 before the session was healthy gets the growing curve.
        let unhealthy_4001 = Ending {
            healthy: false,
            prompt: true,
            ..Ending::default()
        };
        let delays: Vec<u128> = (0..4)
            .map(|_| reconnect_delay(&mut b, unhealthy_4001, 0.0).as_millis())
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000]);
        // A healthy drop starts the curve over.
        let healthy_drop = Ending {
            healthy: true,
            ..Ending::default()
        };
        assert_eq!(
            reconnect_delay(&mut b, healthy_drop, 0.0),
            Duration::from_millis(250)
        );
        // `retry:` is honoured, but never beyond the cap.
        let hinted = Ending {
            at_least: Duration::from_secs(5),
            ..Ending::default()
        };
        assert_eq!(reconnect_delay(&mut b, hinted, 0.0), Duration::from_secs(5));
        let huge = Ending {
            at_least: Duration::from_secs(86_400),
            ..Ending::default()
        };
        assert_eq!(reconnect_delay(&mut b, huge, 0.0), POLICY.max);
    }
}
