//! Tests of the store's rules and of the claims driver over scripted stores.

use super::*;
use std::time::Instant;

use crate::claims::*;

const NOW: i64 = 1_790_000_000;

fn digest(text: &str) -> ContentDigest {
    ContentDigest::of(&[text.as_bytes()])
}

fn record(state: RecordState, content: &str, expires_at: i64) -> StoredRecord {
    StoredRecord {
        state,
        digest: digest(content),
        expires_at,
        claimed_at: Some(NOW - 20),
        maybe_sent_since: None,
    }
}

fn in_progress() -> RecordState {
    claimed_until(NOW + 10)
}

fn claimed_until(lapses_at: i64) -> RecordState {
    RecordState::InProgress {
        owner: "instance-a".to_owned(),
        lapses_at,
    }
}

#[test]
fn every_state_of_a_key_decides_as_the_lifecycle_says() {
    let d = digest("event");
    assert_eq!(decide(None, &d, NOW), ClaimDecision::Claimed);
    let published = record(RecordState::Published, "event", NOW + 600);
    assert_eq!(decide(Some(&published), &d, NOW), ClaimDecision::Duplicate);
    let claimed = record(claimed_until(NOW + 7), "event", NOW + 600);
    assert_eq!(
        decide(Some(&claimed), &d, NOW),
        ClaimDecision::InProgress {
            retry_after_secs: 7
        }
    );
    // At its lapse second a claim still holds, with at least 1 s to wait; after it, the
    // same content may claim it again (an instance died between claim and publish).
    let lapsing = record(claimed_until(NOW), "event", NOW + 600);
    assert_eq!(
        decide(Some(&lapsing), &d, NOW),
        ClaimDecision::InProgress {
            retry_after_secs: 1
        }
    );
    assert_eq!(decide(Some(&lapsing), &d, NOW + 1), ClaimDecision::Claimed);
    // Released after a failed publish: lapsed at once, free for the same content's retry.
    let released = record(claimed_until(0), "event", NOW + 600);
    assert_eq!(decide(Some(&released), &d, NOW), ClaimDecision::Claimed);
    // A published record past its TTL but not yet deleted counts as absent.
    let stale = record(RecordState::Published, "event", NOW - 1);
    assert_eq!(decide(Some(&stale), &d, NOW), ClaimDecision::Claimed);
}

#[test]
fn a_claim_over_an_attempt_that_may_have_sent_says_since_when() {
    let d = digest("event");
    // Released after a definite failure: nothing was sent.
    let released = record(claimed_until(0), "event", NOW + 600);
    assert_eq!(earlier_send(Some(&released), &d, NOW), None);
    // Released after an ambiguous failure: since that attempt's claim.
    let ambiguous = StoredRecord {
        maybe_sent_since: Some(NOW - 400),
        ..released.clone()
    };
    assert_eq!(earlier_send(Some(&ambiguous), &d, NOW), Some(NOW - 400));
    // Lapsed without a release (the instance died, or its commits failed): since its claim,
    // or the earlier ambiguous attempt's.
    let died = record(claimed_until(NOW - 1), "event", NOW + 600);
    assert_eq!(earlier_send(Some(&died), &d, NOW), Some(NOW - 20));
    let both = StoredRecord {
        maybe_sent_since: Some(NOW - 400),
        ..died.clone()
    };
    assert_eq!(earlier_send(Some(&both), &d, NOW), Some(NOW - 400));
    // Not taken over: absent, live, published, other content, expired.
    assert_eq!(earlier_send(None, &d, NOW), None);
    let live = record(claimed_until(NOW + 5), "event", NOW + 600);
    assert_eq!(earlier_send(Some(&live), &d, NOW), None);
    let published = record(RecordState::Published, "event", NOW + 600);
    assert_eq!(earlier_send(Some(&published), &d, NOW), None);
    assert_eq!(earlier_send(Some(&died), &digest("other"), NOW), None);
    let expired = record(claimed_until(NOW - 1), "event", NOW - 1);
    assert_eq!(earlier_send(Some(&expired), &d, NOW), None);
}

#[test]
fn a_lapsed_or_released_claim_stays_its_contents_against_any_other() {
    // The send under a released claim may have reached the queue although its answer was
    // lost: the key must not pass to other content, or that content's send would stand
    // behind the first one's FIFO id and envelope id.
    let other = digest("a twin with other content");
    for lapses_at in [0, NOW - 1, NOW + 10] {
        let stored = record(claimed_until(lapses_at), "event", NOW + 600);
        assert_eq!(
            decide(Some(&stored), &other, NOW),
            ClaimDecision::Conflict {
                stored: digest("event")
            },
            "claim lapsing at {lapses_at}"
        );
    }
    // Only past the key's own expiry (the TTL) is it free for anyone.
    let expired = record(claimed_until(0), "event", NOW - 1);
    assert_eq!(decide(Some(&expired), &other, NOW), ClaimDecision::Claimed);
}

#[test]
fn recording_a_publish_overwrites_only_its_own_content_or_nothing_alive() {
    let d = digest("event");
    assert!(may_record(None, &d, NOW));
    // Its own content, claimed by anyone or already published: the event was published.
    for state in [RecordState::Published, in_progress()] {
        assert!(may_record(
            Some(&record(state, "event", NOW + 600)),
            &d,
            NOW
        ));
    }
    // Another event's live record is never overwritten; an expired one counts as absent.
    let other = record(RecordState::Published, "another event", NOW + 600);
    assert!(!may_record(Some(&other), &d, NOW));
    let expired = record(claimed_until(0), "another event", NOW - 1);
    assert!(may_record(Some(&expired), &d, NOW));
    let released = record(claimed_until(0), "another event", NOW + 600);
    assert!(!may_record(Some(&released), &d, NOW));
}

#[test]
fn the_same_key_with_other_content_is_a_conflict_never_a_duplicate() {
    let other = digest("another event");
    for state in [RecordState::Published, in_progress()] {
        let stored = record(state, "event", NOW + 600);
        assert_eq!(
            decide(Some(&stored), &other, NOW),
            ClaimDecision::Conflict {
                stored: digest("event")
            }
        );
    }
    let key = DedupeKey::new("engine", &["op-1", "42"]);
    let conflict = StoreKey::new(&key.with_digest(&other));
    assert_ne!(conflict, StoreKey::new(&key));
    assert!(conflict.as_str().starts_with("engine:op-1:42#"));
    assert_eq!(
        conflict,
        StoreKey::new(&key.with_digest(&other)),
        "a retry finds the same key"
    );
    assert_ne!(
        conflict,
        StoreKey::new(&key.with_digest(&digest("a third event")))
    );
}

#[test]
fn keys_longer_than_dynamodb_holds_are_hashed_and_stay_distinct() {
    let key = |text: &str| {
        let (provider, rest) = text.split_at(1);
        DedupeKey::new(provider, &[rest])
    };
    let short = StoreKey::new(&DedupeKey::new("rekko", &["abc"]));
    assert_eq!(short.as_str(), "rekko:abc");
    let at_limit = key(&"x".repeat(MAX_KEY_BYTES - 1));
    assert_eq!(StoreKey::new(&at_limit).as_str(), at_limit.as_str());
    let long_a = StoreKey::new(&key(&"a".repeat(MAX_KEY_BYTES)));
    let long_b = StoreKey::new(&key(&"b".repeat(MAX_KEY_BYTES)));
    assert!(long_a.as_str().starts_with("sha256:"));
    assert_eq!(long_a.as_str().len(), "sha256:".len() + 64);
    assert_ne!(long_a, long_b);
    // A conflict key of a key at the limit is hashed too, never over the limit.
    let conflict = StoreKey::new(&at_limit.with_digest(&digest("x")));
    assert!(conflict.as_str().len() <= MAX_KEY_BYTES);
}

#[test]
fn owner_tokens_never_repeat_within_or_across_instances() {
    let (a, b) = (OwnerTokens::new(), OwnerTokens::new());
    let tokens: std::collections::HashSet<String> =
        (0..100).flat_map(|_| [a.next(), b.next()]).collect();
    assert_eq!(tokens.len(), 200);
}

/// A store answering each call from a script, and keeping the calls made. With
/// `conflict_first`, its first claim answers that other content holds the key.
#[derive(Default)]
struct Scripted {
    answers: std::sync::Mutex<std::collections::VecDeque<Result<(), StoreError>>>,
    made: std::sync::Mutex<Vec<StoreOperation>>,
    conflict_first: std::sync::Mutex<bool>,
}

impl Scripted {
    fn answering(answers: impl IntoIterator<Item = Result<(), StoreError>>) -> Self {
        let scripted = Self::default();
        scripted.answers.lock().unwrap().extend(answers);
        scripted
    }

    fn next(&self, operation: StoreOperation) -> Result<(), StoreError> {
        self.made.lock().unwrap().push(operation);
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

impl IdempotencyStore for &Scripted {
    async fn claim(&self, _: ClaimRequest<'_>) -> Result<ClaimDecision, StoreError> {
        if std::mem::take(&mut *self.conflict_first.lock().unwrap()) {
            self.made.lock().unwrap().push(StoreOperation::Claim);
            return Ok(ClaimDecision::Conflict {
                stored: digest("another event"),
            });
        }
        self.next(StoreOperation::Claim)
            .map(|()| ClaimDecision::Claimed)
    }

    async fn commit(&self, _: &StoreKey, _: &str, _: i64) -> Result<(), StoreError> {
        self.next(StoreOperation::Commit)
    }

    async fn release(&self, _: &StoreKey, _: &str, _: Option<i64>) -> Result<(), StoreError> {
        self.next(StoreOperation::Release)
    }

    async fn record_released(&self, _: ClaimRequest<'_>, _: i64) -> Result<(), StoreError> {
        self.next(StoreOperation::Release)
    }

    async fn record_published(
        &self,
        _: &StoreKey,
        _: &ContentDigest,
        _: &str,
        _: i64,
        _: i64,
    ) -> Result<(), StoreError> {
        self.next(StoreOperation::RecordPublished)
    }
}

/// Runs a future of the scripted store (which never waits) to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("the scripted store never waits"),
    }
}

/// Claims a key against `answers`, then commits it with `time_left`; the calls made.
fn claim_and_commit(
    answers: Vec<Result<(), StoreError>>,
    time_left: Duration,
) -> Vec<StoreOperation> {
    claim_and_commit_counting(answers, time_left).0
}

/// [`claim_and_commit`], and the failures kept.
fn claim_and_commit_counting(
    answers: Vec<Result<(), StoreError>>,
    time_left: Duration,
) -> (Vec<StoreOperation>, Vec<StoreOperation>) {
    let store = Scripted::answering(answers);
    let layer = Idempotency::new(&store, Duration::from_secs(10), Duration::from_secs(600));
    let key = DedupeKey::new("engine", &["op-1", "7"]);
    let mut calls = StoreCalls::default();
    let give_up_at = Instant::now() + time_left;
    let outcome = ready(layer.claim(&key, &digest("event"), NOW, give_up_at, &mut calls));
    let (Claim::Held(held) | Claim::Unclaimed(held)) = outcome.claim else {
        panic!("the scripted store only claims or fails");
    };
    ready(layer.commit(&held, NOW, give_up_at, &mut calls));
    assert_eq!(calls.count as usize, store.made.lock().unwrap().len());
    let failed = calls.failures.iter().map(|(operation, _)| *operation);
    (store.made.lock().unwrap().clone(), failed.collect())
}

fn down() -> Result<(), StoreError> {
    Err(StoreError::Unavailable("injected".to_owned()))
}

#[test]
fn a_commit_the_store_did_not_answer_is_made_again_while_time_allows() {
    use StoreOperation::{Claim, Commit};
    let plenty = Duration::from_secs(7);
    assert_eq!(claim_and_commit(vec![], plenty), [Claim, Commit]);
    assert_eq!(
        claim_and_commit(vec![Ok(()), down(), down()], plenty),
        [Claim, Commit, Commit, Commit]
    );
    // At most `COMMIT_CALLS` calls, then the claim is left to lapse.
    let failing = vec![Ok(()), down(), down(), down(), down()];
    assert_eq!(
        claim_and_commit(failing.clone(), plenty).len(),
        1 + COMMIT_CALLS as usize
    );
    // No time left for another bounded call: one commit only.
    assert_eq!(
        claim_and_commit(failing, STORE_CALL_BOUND / 2),
        [Claim, Commit]
    );
}

#[test]
fn a_conflict_keys_claim_gets_calls_of_its_own() {
    // The store answered the first claim (a conflict), so the conflict key's claim is made
    // again when unanswered: a conflict key already published must be found.
    let store = Scripted::answering([down()]);
    *store.conflict_first.lock().unwrap() = true;
    let layer = Idempotency::new(&store, Duration::from_secs(10), Duration::from_secs(600));
    let key = DedupeKey::new("engine", &["op-1", "7"]);
    let mut calls = StoreCalls::default();
    let give_up_at = Instant::now() + Duration::from_secs(7);
    let outcome = ready(layer.claim(&key, &digest("event"), NOW, give_up_at, &mut calls));
    assert_eq!(outcome.conflict, Some(digest("another event")));
    assert!(matches!(outcome.claim, Claim::Held(_)), "{outcome:?}");
    assert_eq!(
        store.made.lock().unwrap().len(),
        3,
        "conflict, unanswered, answered"
    );
}

#[test]
fn a_claim_the_store_did_not_answer_is_made_again_then_the_publish_is_recorded() {
    use StoreOperation::{Claim, Commit, RecordPublished};
    let plenty = Duration::from_secs(7);
    // Answered the second time: a confirmed claim, committed.
    assert_eq!(
        claim_and_commit(vec![down()], plenty),
        [Claim, Claim, Commit]
    );
    // No answer to `CLAIM_CALLS` claims: published anyway, then recorded.
    let (made, failed) = claim_and_commit_counting(vec![down(), down()], plenty);
    assert_eq!(made, [Claim, Claim, RecordPublished]);
    assert_eq!(failed, [Claim, Claim], "each unanswered call counts");
    // The record is made again while time allows, up to `CLAIM_CALLS` calls: until it is
    // written the key may hold nothing.
    assert_eq!(
        claim_and_commit(vec![down(), down(), down()], plenty),
        [Claim, Claim, RecordPublished, RecordPublished]
    );
    assert_eq!(
        claim_and_commit(vec![down(); 5], plenty),
        [Claim, Claim, RecordPublished, RecordPublished]
    );
    // No time for a second claim.
    assert_eq!(
        claim_and_commit(vec![down()], STORE_CALL_BOUND / 2),
        [Claim, RecordPublished]
    );
}

#[test]
fn a_publish_whose_claim_lapsed_is_recorded_published_and_is_no_store_failure() {
    use StoreOperation::{Claim, Commit, RecordPublished};
    let plenty = Duration::from_secs(7);
    let (made, failed) =
        claim_and_commit_counting(vec![Ok(()), Err(StoreError::ClaimLost)], plenty);
    assert_eq!(made, [Claim, Commit, RecordPublished]);
    assert!(failed.is_empty(), "{failed:?}");
    // Even when the lapse shows on the last commit call.
    let late = vec![Ok(()), down(), down(), Err(StoreError::ClaimLost)];
    assert_eq!(
        claim_and_commit(late, plenty),
        [Claim, Commit, Commit, Commit, RecordPublished]
    );
    // An unreadable answer is not retried.
    let unreadable = Err(StoreError::Unreadable("x".to_owned()));
    assert_eq!(
        claim_and_commit(vec![Ok(()), unreadable], plenty),
        [Claim, Commit]
    );
}
