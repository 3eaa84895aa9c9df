//! The time one delivery may spend, counted back from its invocation's deadline (the Lambda
//! context's), shared out between the store's claim, the SQS send and the commit (docs/contract.md,
//! "The time budget"). Pure: the caller passes the instants.
//!
//! The answer is due [`ANSWER_MARGIN`] before the deadline. A claim call is bounded to
//! [`STORE_CALL_BOUND`]; a second one (after one the store did not answer, or of a conflict key)
//! starts only if a send of at least [`SEND_FLOOR`] (two SQS attempts) and one commit still fit
//! after it. The send gets [`SQS_SEND_BOUND`], or less so that one commit still fits; with less
//! than one SQS attempt left it is not started (503: nothing was sent, the sender retries). A
//! commit the store did not answer is made again only while another bounded call fits.
//!
//! With the template's 8 s timeout this gives two claim calls of 1 s, a send of up to 4.5 s and a
//! commit of 1 s; with the full 5 s send, one claim call. The numbers follow the timeout: a
//! longer one gives the send its whole bound.

use std::time::{Duration, Instant};

use crate::idempotency::STORE_CALL_BOUND;
use crate::queue::{SQS_ATTEMPT_BOUND, SQS_SEND_BOUND};

/// How long before the invocation's deadline the answer is due: time to write the log and
/// metric lines and post the response to the Runtime API.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// The least time a send is given when a second claim call is weighed: two SQS attempts.
pub const SEND_FLOOR: Duration = SQS_ATTEMPT_BOUND.saturating_mul(2);

/// The time one delivery may spend: when its answer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    answer_by: Instant,
}

impl Budget {
    /// The budget of an invocation that must end by `deadline`.
    pub fn until_deadline(deadline: Instant) -> Self {
        Self {
            answer_by: deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline),
        }
    }

    /// The budget of a delivery that started at `start` under a function timeout of `timeout`
    /// (for callers without an invocation deadline: tests, benchmarks).
    pub fn from_timeout(start: Instant, timeout: Duration) -> Self {
        Self::until_deadline(start + timeout)
    }

    /// When the answer is due: no store call starts unless it can end by then.
    pub fn answer_by(&self) -> Instant {
        self.answer_by
    }

    /// The last instant a claim call may end: a send of [`SEND_FLOOR`] and one commit still fit
    /// after it. (The first claim call is always made.)
    pub fn claims_end_by(&self) -> Instant {
        self.answer_by
            .checked_sub(SEND_FLOOR + STORE_CALL_BOUND)
            .unwrap_or(self.answer_by)
    }

    /// How long a send started at `now` may take: [`SQS_SEND_BOUND`], or less so that one commit
    /// still fits before the answer is due; `None` when that leaves less than one SQS attempt
    /// ([`SQS_ATTEMPT_BOUND`]), and the send should not start.
    pub fn send_within(&self, now: Instant) -> Option<Duration> {
        let left = self
            .answer_by
            .saturating_duration_since(now)
            .saturating_sub(STORE_CALL_BOUND);
        (left >= SQS_ATTEMPT_BOUND).then(|| left.min(SQS_SEND_BOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE_TIMEOUT: Duration = Duration::from_secs(8);

    #[test]
    fn the_templates_timeout_fits_two_claim_calls_a_send_and_a_commit() {
        let start = Instant::now();
        let budget = Budget::from_timeout(start, TEMPLATE_TIMEOUT);
        assert_eq!(budget.answer_by(), start + Duration::from_millis(7_500));
        // A first claim call that timed out at its bound leaves room for a second one.
        let after_first_claim = start + STORE_CALL_BOUND;
        assert!(after_first_claim + STORE_CALL_BOUND <= budget.claims_end_by());
        // After two, the send gets 4.5 s and one commit still fits.
        let after_two_claims = after_first_claim + STORE_CALL_BOUND;
        let send = budget.send_within(after_two_claims).unwrap();
        assert_eq!(send, Duration::from_millis(4_500));
        assert!(after_two_claims + send + STORE_CALL_BOUND <= budget.answer_by());
        // Straight away, the send gets its whole bound.
        assert_eq!(budget.send_within(start), Some(SQS_SEND_BOUND));
    }

    #[test]
    fn a_send_that_cannot_get_one_attempt_is_not_started() {
        let start = Instant::now();
        let budget = Budget::from_timeout(start, TEMPLATE_TIMEOUT);
        let late = budget.answer_by() - STORE_CALL_BOUND - SQS_ATTEMPT_BOUND;
        assert_eq!(budget.send_within(late), Some(SQS_ATTEMPT_BOUND));
        assert_eq!(budget.send_within(late + Duration::from_millis(1)), None);
        assert_eq!(budget.send_within(budget.answer_by()), None);
        // A deadline already past: nothing fits, nothing panics.
        let past = Budget::until_deadline(start);
        assert!(past.claims_end_by() <= start);
        assert_eq!(past.send_within(start), None);
    }

    #[test]
    fn a_shorter_invocation_gets_fewer_claim_calls() {
        let start = Instant::now();
        // 7 s: one claim call, then the send's floor and a commit.
        let budget = Budget::from_timeout(start, Duration::from_secs(7));
        assert!(start + STORE_CALL_BOUND * 2 > budget.claims_end_by());
        assert!(start + STORE_CALL_BOUND <= budget.claims_end_by());
    }
}
