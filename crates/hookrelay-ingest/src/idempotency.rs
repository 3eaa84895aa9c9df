//! The durable idempotency store's decisions (issue 15, layer two of dedupe): what one claim of a
//! dedupe key means given the record the store already holds, as pure functions of that record,
//! the event's content digest and the time. The DynamoDB adapter (`hookrelay-aws`) turns the
//! same rules into one conditional write ([`CLAIM_CONDITION`]) and calls [`decide`] on the item
//! the write returns when its condition fails; the in-memory window follows the same digest rule.
//!
//! The life of a key: absent ─claim─► `in_progress` (an owner token, a claim expiry a little past
//! the function's remaining time) ─publish ok─► `published` (an expiry, the TTL); a failed
//! publish releases the claim (deletes it, conditional on the owner token), so the sender's retry
//! goes through in full; an instance that dies mid-claim leaves a claim that expires. TTL
//! deletion is lazy, so an item past its own expiry counts as absent.
//!
//! A key is not an identity proof: each record holds a digest of the event's content. The same
//! key with the same digest is a duplicate; with a different digest it is a *conflict*: a
//! different real event under a key the sender reused (two engine registrations counting their
//! own `sequence`, say), which is published under a key that keeps both
//! (`DedupeKey::with_digest`) rather than refused, since refusing would lose a real event.
//!
//! The store itself is the [`IdempotencyStore`] trait: DynamoDB in `hookrelay-aws`, in memory in
//! the test kit. The receiver's pipeline and the bridge's sink drive it the same way.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use crate::dedupe::ContentDigest;
use crate::dedupe::DedupeKey;

/// The longest partition key DynamoDB stores, in bytes.
pub const MAX_KEY_BYTES: usize = 2048;

/// The condition of the claim write, in DynamoDB's expression language: the key is absent, or
/// its record has expired by its own expiry attribute (TTL deletion is lazy). `:now` is the
/// claim time in Unix seconds.
pub const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR expires_at < :now";

/// A dedupe key as the store keeps it: the key itself when DynamoDB can hold it, else
/// `sha256:` and its hex digest (still unique per key, and never longer than the limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// The store's key for the dedupe key `key`.
    pub fn new(key: &DedupeKey) -> Self {
        let key = key.as_str();
        // A plain key can't start with the hashed form's prefix: dedupe keys start with a
        // provider name, and no provider is called `sha256`.
        if key.len() <= MAX_KEY_BYTES {
            Self(key.to_owned())
        } else {
            Self(format!(
                "sha256:{}",
                hex::encode(Sha256::digest(key.as_bytes()))
            ))
        }
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a key's record stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// Claimed by the instance holding `owner`, publishing now.
    InProgress {
        /// The claimant's token: release and commit are conditional on it.
        owner: String,
    },
    /// SQS accepted the message.
    Published,
}

/// A key's record as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its state.
    pub state: RecordState,
    /// The digest of the content it was claimed for.
    pub digest: ContentDigest,
    /// When it stops counting, Unix seconds: the claim expiry while `in_progress`, the TTL once
    /// `published`.
    pub expires_at: i64,
}

/// What a claim of a key means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Nothing (alive) holds the key: this delivery owns it; publish, then commit.
    Claimed,
    /// The same event was published already: answer `duplicate`, send nothing.
    Duplicate,
    /// The same event is being published by another claimant: answer 503 `in_progress` with
    /// `Retry-After` (never 200: if that attempt fails, the event would be lost).
    InProgress {
        /// Seconds until the other claim expires (at least 1).
        retry_after_secs: u64,
    },
    /// Another event holds the key: publish this one under `DedupeKey::with_digest` (claiming
    /// that key first), count it and log both digests.
    Conflict {
        /// The digest the store holds.
        stored: ContentDigest,
    },
}

/// The meaning of claiming a key for content `digest` at `now` (Unix seconds), given the record
/// the store holds for it (`None`: absent). A record past its own expiry counts as absent, as in
/// [`CLAIM_CONDITION`].
pub fn decide(stored: Option<&StoredRecord>, digest: &ContentDigest, now: i64) -> ClaimDecision {
    let Some(record) = stored.filter(|record| record.expires_at >= now) else {
        return ClaimDecision::Claimed;
    };
    if record.digest != *digest {
        return ClaimDecision::Conflict {
            stored: record.digest.clone(),
        };
    }
    match record.state {
        RecordState::Published => ClaimDecision::Duplicate,
        RecordState::InProgress { .. } => ClaimDecision::InProgress {
            retry_after_secs: record.expires_at.saturating_sub(now).max(1).unsigned_abs(),
        },
    }
}

/// One claim of a key: who claims it, for which content, and until when.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// The key.
    pub key: &'a StoreKey,
    /// The content it is claimed for.
    pub digest: &'a ContentDigest,
    /// The claimant's token ([`OwnerTokens::next`]).
    pub owner: &'a str,
    /// Now, Unix seconds.
    pub now: i64,
    /// When the claim lapses if never committed or released, Unix seconds.
    pub claim_expires_at: i64,
}

/// Why a store call did not give an answer. The caller never refuses a delivery for it: a
/// claim that failed still publishes (FIFO deduplication and consumers' id checks still guard),
/// and a commit or release that failed leaves a claim that lapses at its expiry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store failed, throttled or timed out (the call is bounded to about a second).
    #[error("the idempotency store did not answer: {0}")]
    Unavailable(String),
    /// A commit or release found the claim held by someone else or gone: it had lapsed (this
    /// claimant took longer than the claim expiry) and another claimant may be publishing too.
    #[error("the claim lapsed before it was committed or released")]
    ClaimLost,
    /// The store returned a record this version can't read.
    #[error("the idempotency store holds an unreadable record: {0}")]
    Unreadable(String),
}

/// The durable idempotency store: one conditional write per claim, one per commit or release.
pub trait IdempotencyStore {
    /// Claims `request.key` as `in_progress` for `request.owner`, unless a live record holds it
    /// ([`CLAIM_CONDITION`]); then says what that record means ([`decide`]).
    fn claim(
        &self,
        request: ClaimRequest<'_>,
    ) -> impl Future<Output = Result<ClaimDecision, StoreError>> + Send;

    /// Marks `key`, claimed by `owner`, `published` until `expires_at` (the TTL).
    fn commit(
        &self,
        key: &StoreKey,
        owner: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes `owner`'s claim of `key`, so the sender's retry goes through in full.
    fn release(
        &self,
        key: &StoreKey,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The store as the receiver and the bridge drive it: claims lasting `claim_for`, published
/// records `ttl`, owner tokens of this process; each call timed and its failure kept, never
/// raised (a failing store never refuses an event).
#[derive(Debug)]
pub struct Idempotency<S> {
    store: S,
    owners: OwnerTokens,
    claim_for: Duration,
    ttl: Duration,
}

/// A claim this process holds: commit it after SQS accepted the event, release it otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldClaim {
    key: StoreKey,
    owner: String,
}

/// Where a claim leaves an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This process holds the key: publish, then commit.
    Held(HeldClaim),
    /// The store says this content was published under the key: send nothing.
    Duplicate,
    /// Another claimant is publishing this content: wait `retry_after_secs` and try again.
    InProgress {
        /// Seconds until that claim lapses.
        retry_after_secs: u64,
    },
    /// The store failed (kept in [`StoreCalls::failures`]): publish unclaimed.
    Unclaimed,
}

/// What a claim decided, under which key, and what its calls cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The claim.
    pub claim: Claim,
    /// `Some(recorded digest)` when the key held other content: the event goes out under
    /// `DedupeKey::with_digest`, and this claim was of that key.
    pub conflict: Option<ContentDigest>,
}

/// The store calls one event made: how many, how long in all, and which failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCalls {
    /// Calls made.
    pub count: u32,
    /// Time in them.
    pub latency: Duration,
    /// The ones that failed, and how.
    pub failures: Vec<(StoreOperation, StoreError)>,
}

/// A call to the idempotency store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    /// The claim before publishing.
    Claim,
    /// Marking the key published.
    Commit,
    /// Giving the claim up after a failed publish.
    Release,
    /// Recording a published sequence (sequence gaps).
    Record,
}

impl StoreOperation {
    /// `claim`, `commit` or `release`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Commit => "commit",
            Self::Release => "release",
            Self::Record => "record",
        }
    }
}

impl<S: IdempotencyStore> Idempotency<S> {
    /// `store` with claims lasting `claim_for` and published records `ttl`.
    pub fn new(store: S, claim_for: Duration, ttl: Duration) -> Self {
        Self {
            store,
            owners: OwnerTokens::new(),
            claim_for,
            ttl,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Claims `key` for content `digest` at `now` (Unix seconds); when the key holds other
    /// content, claims `key.with_digest(digest)` instead (a conflict's key holds its digest, so
    /// it can't conflict again but by a SHA-256 collision, which publishes unclaimed).
    pub async fn claim(
        &self,
        key: &DedupeKey,
        digest: &ContentDigest,
        now: i64,
        calls: &mut StoreCalls,
    ) -> ClaimOutcome {
        let mut conflict = None;
        let mut claiming = StoreKey::new(key);
        loop {
            let owner = self.owners.next();
            let decision = calls
                .time(
                    StoreOperation::Claim,
                    self.store.claim(ClaimRequest {
                        key: &claiming,
                        digest,
                        owner: &owner,
                        now,
                        claim_expires_at: now.saturating_add(secs(self.claim_for)),
                    }),
                )
                .await;
            let claim = match decision {
                Some(ClaimDecision::Claimed) => Claim::Held(HeldClaim {
                    key: claiming,
                    owner,
                }),
                Some(ClaimDecision::Duplicate) => Claim::Duplicate,
                Some(ClaimDecision::InProgress { retry_after_secs }) => {
                    Claim::InProgress { retry_after_secs }
                }
                Some(ClaimDecision::Conflict { stored }) if conflict.is_none() => {
                    claiming = StoreKey::new(&key.with_digest(digest));
                    conflict = Some(stored);
                    continue;
                }
                Some(ClaimDecision::Conflict { .. }) => {
                    calls.failures.push((
                        StoreOperation::Claim,
                        StoreError::Unreadable("the conflict key holds other content".to_owned()),
                    ));
                    Claim::Unclaimed
                }
                None => Claim::Unclaimed,
            };
            return ClaimOutcome { claim, conflict };
        }
    }

    /// Marks `held` published until `now` + the TTL.
    pub async fn commit(&self, held: &HeldClaim, now: i64, calls: &mut StoreCalls) {
        let expires_at = now.saturating_add(secs(self.ttl));
        calls
            .time(
                StoreOperation::Commit,
                self.store.commit(&held.key, &held.owner, expires_at),
            )
            .await;
    }

    /// Gives `held` up, so the next attempt goes through in full.
    pub async fn release(&self, held: &HeldClaim, calls: &mut StoreCalls) {
        calls
            .time(
                StoreOperation::Release,
                self.store.release(&held.key, &held.owner),
            )
            .await;
    }
}

impl StoreCalls {
    /// Runs `call`, counting and timing it, keeping its failure.
    pub async fn time<T>(
        &mut self,
        operation: StoreOperation,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = call.await;
        self.latency += started.elapsed();
        self.count += 1;
        result
            .map_err(|error| self.failures.push((operation, error)))
            .ok()
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// No store (`HOOKRELAY_IDEMPOTENCY_TABLE` unset): a type with no values, so a pipeline without a
/// store has nothing to call and its store stage compiles away.
#[derive(Debug, Clone, Copy)]
pub enum NoStore {}

impl IdempotencyStore for NoStore {
    async fn claim(&self, _: ClaimRequest<'_>) -> Result<ClaimDecision, StoreError> {
        match *self {}
    }

    async fn commit(&self, _: &StoreKey, _: &str, _: i64) -> Result<(), StoreError> {
        match *self {}
    }

    async fn release(&self, _: &StoreKey, _: &str) -> Result<(), StoreError> {
        match *self {}
    }
}

/// Claim owner tokens: one random instance token (from the standard library's OS-seeded hasher
/// keys, so no RNG crate) and a counter, so no two claims anywhere share a token. Not secret:
/// a token only says whose claim a record is.
#[derive(Debug)]
pub struct OwnerTokens {
    instance: String,
    next: AtomicU64,
}

impl OwnerTokens {
    /// Tokens for this process.
    pub fn new() -> Self {
        let random = |salt: u64| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(salt);
            hasher.finish()
        };
        Self::with_instance(format!("{:016x}{:016x}", random(1), random(2)))
    }

    /// Tokens under a given instance name (tests).
    pub fn with_instance(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            next: AtomicU64::new(0),
        }
    }

    /// A token no other claim has.
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.instance)
    }
}

impl Default for OwnerTokens {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn digest(text: &str) -> ContentDigest {
        ContentDigest::of(&[text.as_bytes()])
    }

    fn record(state: RecordState, content: &str, expires_at: i64) -> StoredRecord {
        StoredRecord {
            state,
            digest: digest(content),
            expires_at,
        }
    }

    fn in_progress() -> RecordState {
        RecordState::InProgress {
            owner: "instance-a".to_owned(),
        }
    }

    #[test]
    fn every_state_of_a_key_decides_as_the_lifecycle_says() {
        let d = digest("event");
        assert_eq!(decide(None, &d, NOW), ClaimDecision::Claimed);
        let published = record(RecordState::Published, "event", NOW + 600);
        assert_eq!(decide(Some(&published), &d, NOW), ClaimDecision::Duplicate);
        let claimed = record(in_progress(), "event", NOW + 7);
        assert_eq!(
            decide(Some(&claimed), &d, NOW),
            ClaimDecision::InProgress {
                retry_after_secs: 7
            }
        );
        // At its expiry second a claim still holds, with at least 1 s to wait; after it, the
        // key is free again (an instance died between claim and publish).
        let expiring = record(in_progress(), "event", NOW);
        assert_eq!(
            decide(Some(&expiring), &d, NOW),
            ClaimDecision::InProgress {
                retry_after_secs: 1
            }
        );
        assert_eq!(decide(Some(&expiring), &d, NOW + 1), ClaimDecision::Claimed);
        // A published record past its TTL but not yet deleted counts as absent.
        let stale = record(RecordState::Published, "event", NOW - 1);
        assert_eq!(decide(Some(&stale), &d, NOW), ClaimDecision::Claimed);
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
}
