//! The durable idempotency store's decisions (layer two of dedupe, docs/contract.md "The
//! durable idempotency store"): what one claim of a dedupe key means given the record the store
//! already holds, as pure functions of that record, the event's content digest and the time. The
//! DynamoDB adapter (`hookrelay-aws`) turns the same rules into one conditional write
//! ([`CLAIM_CONDITION`]) and calls [`decide`] on the item the write returns when its condition
//! fails; the in-memory window follows the same digest rule.
//!
//! A key belongs to the first content that claims it, for the whole TTL: the claim writes the
//! content's digest with the TTL as the record's expiry, and the claim itself lapses earlier, at
//! `claim until` (a little past the function's remaining time). The life of a key: absent
//! ─claim─► `in_progress` (an owner token, the claim's lapse) ─publish ok─► `published`; a failed
//! publish *releases* the claim by lapsing it at once, keeping the digest, so the sender's retry
//! (the same content) claims it again and goes through in full while any other content stays a
//! conflict. That is what keeps one event's send from standing for another's: a send that failed
//! ambiguously may still be in the queue under the key, so the key must never pass to other
//! content. An instance that dies mid-claim leaves a claim that lapses the same way. TTL deletion
//! is lazy, so an item past its own expiry counts as absent.
//!
//! Writing `published` is what keeps a late retry (past SQS FIFO's five minutes, on a cold
//! instance) from publishing again, so that write is not given up on the first failure: a
//! commit the store did not answer is tried again while the caller's time allows one more
//! bounded call ([`STORE_CALL_BOUND`]), and a publish whose claim the store did not answer, or
//! whose claim lapsed before the commit, is still recorded `published`
//! ([`IdempotencyStore::record_published`], for the same content only).
//!
//! A key is not an identity proof: each record holds a digest of the event's content. The same
//! key with the same digest is a duplicate; with a different digest it is a *conflict*: a
//! different real event under a key the sender reused (two engine registrations counting their
//! own `sequence`, say), which is published under a key that keeps both
//! (`DedupeKey::with_digest`) rather than refused, since refusing would lose a real event.
//!
//! The store itself is the [`IdempotencyStore`] trait: DynamoDB in `hookrelay-aws`, in memory in
//! the test kit. The receiver's pipeline and the bridge's sink drive it the same way, through
//! [`crate::claims`].

use std::time::Duration;

use sha2::{Digest, Sha256};

pub use crate::dedupe::ContentDigest;
use crate::dedupe::DedupeKey;

/// The longest partition key DynamoDB stores, in bytes.
pub const MAX_KEY_BYTES: usize = 2048;

/// The longest one store call may take, its SDK retries included (the adapter's bound): a claim,
/// the SQS send (5 s) and a commit fit the function's 8 s timeout.
pub const STORE_CALL_BOUND: Duration = Duration::from_secs(1);

/// The most calls one commit makes when the store does not answer (each of them two SDK
/// attempts in the DynamoDB adapter).
pub const COMMIT_CALLS: u32 = 3;

/// The most calls one claim makes when the store does not answer. A claim without an answer
/// publishes anyway, and a late retry of that event (past SQS FIFO's five minutes) would then
/// be published again, unless the record after the send is written.
pub const CLAIM_CALLS: u32 = 2;

/// The condition of [`IdempotencyStore::record_published`]: the key is absent, its record has
/// expired, or it holds the same content (a claim of this event by anyone, or its record).
/// `:now` is the time in Unix seconds, `:digest` the content's digest.
pub const RECORD_CONDITION: &str =
    "attribute_not_exists(pk) OR expires_at < :now OR digest = :digest";

/// The condition of [`IdempotencyStore::record_released`]: the key is absent, expired, or holds a
/// claim of the same content (a published record is left alone). `:now`, `:digest` and
/// `:in_progress` as in [`CLAIM_CONDITION`].
pub const RELEASED_CONDITION: &str = "attribute_not_exists(pk) OR expires_at < :now \
     OR (digest = :digest AND record_state = :in_progress)";

/// The condition of the claim write, in DynamoDB's expression language: the key is absent, its
/// record has expired by its own expiry attribute (TTL deletion is lazy), or it holds a claim of
/// the same content that has lapsed (released after a failed publish, or left by an instance
/// that died). `:now` is the claim time in Unix seconds, `:digest` the content's digest,
/// `:in_progress` the claimed state. A record written before claims had `claim_until` lapses
/// at its `expires_at`, as it did then.
pub const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR expires_at < :now \
     OR (digest = :digest AND record_state = :in_progress AND claim_until < :now)";

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
    /// Claimed by the instance holding `owner`, publishing now until `lapses_at`.
    InProgress {
        /// The claimant's token: release and commit are conditional on it.
        owner: String,
        /// When the claim lapses, Unix seconds (0 once released); the same content may claim it
        /// again after that, other content never.
        lapses_at: i64,
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
    /// When the key stops belonging to this content, Unix seconds: the TTL from the claim, then
    /// from the publish.
    pub expires_at: i64,
    /// When the claim was made, Unix seconds (`in_progress` only; absent on items written before
    /// claims recorded it).
    pub claimed_at: Option<i64>,
    /// The claim time of the earliest attempt of this content whose send may have reached the
    /// queue without the key being recorded `published` (a send that failed ambiguously), Unix
    /// seconds: a later publish of the content may be a second copy ([`earlier_send`]).
    pub maybe_sent_since: Option<i64>,
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
    /// [`ClaimDecision::Claimed`] over the same content's lapsed or released claim whose attempt
    /// may have sent it already ([`earlier_send`]): publish, and count a possible copy where SQS
    /// would not drop it.
    Reclaimed {
        /// The claim time of that earlier attempt, Unix seconds.
        maybe_sent_since: i64,
    },
    /// Another event holds the key: publish this one under `DedupeKey::with_digest` (claiming
    /// that key first), count it and log both digests.
    Conflict {
        /// The digest the store holds.
        stored: ContentDigest,
    },
}

/// The meaning of claiming a key for content `digest` at `now` (Unix seconds), given the record
/// the store holds for it (`None`: absent). A record past its own expiry counts as absent, and a
/// lapsed claim of the same content as free, as in [`CLAIM_CONDITION`]; other content is a
/// conflict whether its claim lapsed or not.
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
        RecordState::InProgress { lapses_at, .. } if lapses_at < now => ClaimDecision::Claimed,
        RecordState::InProgress { lapses_at, .. } => ClaimDecision::InProgress {
            retry_after_secs: lapses_at.saturating_sub(now).max(1).unsigned_abs(),
        },
    }
}

/// When an earlier attempt of this content may have sent it to the queue, if `stored` is a record
/// a claim of content `digest` at `now` takes over ([`decide`] says `Claimed` over a live record:
/// the same content's claim, lapsed): a released claim says so itself (`maybe_sent_since`, set
/// when its send failed ambiguously); a claim that lapsed without a release (its instance died
/// mid-send, or every commit failed after a send) may have sent since it was claimed.
pub fn earlier_send(
    stored: Option<&StoredRecord>,
    digest: &ContentDigest,
    now: i64,
) -> Option<i64> {
    let record = stored.filter(|record| record.expires_at >= now && record.digest == *digest)?;
    match record.state {
        RecordState::InProgress { lapses_at: 0, .. } => record.maybe_sent_since,
        RecordState::InProgress { lapses_at, .. } if lapses_at < now => {
            let claimed_at = record.claimed_at.unwrap_or(0);
            Some(
                record
                    .maybe_sent_since
                    .map_or(claimed_at, |t| t.min(claimed_at)),
            )
        }
        _ => None,
    }
}

/// Whether [`IdempotencyStore::record_published`] writes over `stored` (`None`: absent) for
/// content `digest` at `now`, as [`RECORD_CONDITION`] says: absent, expired, or the same content.
pub fn may_record(stored: Option<&StoredRecord>, digest: &ContentDigest, now: i64) -> bool {
    stored.is_none_or(|record| record.expires_at < now || record.digest == *digest)
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
    /// When the key stops belonging to this content if never published (the TTL), Unix seconds.
    pub owned_until: i64,
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
    /// A record of a publish was refused: another event's live record holds the key, so this
    /// event went out under a key (its envelope `id`) that names other content: a conflict the
    /// store could not show when it was claimed.
    #[error("the key holds another event's record")]
    OtherContent,
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

    /// Lapses `owner`'s claim of `key` at once, keeping its digest: the sender's retry (the same
    /// content) claims it again and goes through in full; other content stays a conflict. With
    /// `maybe_sent_since`, the record keeps when an attempt may have sent it ([`earlier_send`]).
    fn release(
        &self,
        key: &StoreKey,
        owner: &str,
        maybe_sent_since: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records `key` `published` for content `digest` until `expires_at`, owned by `owner`,
    /// unless a live record holds other content ([`RECORD_CONDITION`]; then nothing is written
    /// and the answer is [`StoreError::OtherContent`]): after a publish whose claim the store did
    /// not confirm, or whose claim lapsed before its commit. The event was published, so saying
    /// so can't lose one.
    fn record_published(
        &self,
        key: &StoreKey,
        digest: &ContentDigest,
        owner: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records `key` as a released claim of content `digest` (owned until `owned_until`, an
    /// attempt that may have sent it claimed at `maybe_sent_since`), unless a live record of
    /// other content holds it ([`RELEASED_CONDITION`]; then [`StoreError::OtherContent`]) or it
    /// is already `published` (then `Ok`, nothing written): after a send that failed
    /// ambiguously under a claim the store did not confirm, so the key keeps this content even
    /// if the claim was never written.
    fn record_released(
        &self,
        request: ClaimRequest<'_>,
        maybe_sent_since: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The type of a store that is `None` (`HOOKRELAY_IDEMPOTENCY_TABLE` unset): it has no values, so
/// it only names the type parameter of an absent store; absence itself is the `Option`.
#[derive(Debug, Clone, Copy)]
pub enum NoStore {}

impl IdempotencyStore for NoStore {
    async fn claim(&self, _: ClaimRequest<'_>) -> Result<ClaimDecision, StoreError> {
        match *self {}
    }

    async fn commit(&self, _: &StoreKey, _: &str, _: i64) -> Result<(), StoreError> {
        match *self {}
    }

    async fn release(&self, _: &StoreKey, _: &str, _: Option<i64>) -> Result<(), StoreError> {
        match *self {}
    }

    async fn record_released(&self, _: ClaimRequest<'_>, _: i64) -> Result<(), StoreError> {
        match *self {}
    }

    async fn record_published(
        &self,
        _: &StoreKey,
        _: &ContentDigest,
        _: &str,
        _: i64,
        _: i64,
    ) -> Result<(), StoreError> {
        match *self {}
    }
}

#[cfg(test)]
#[path = "idempotency_tests.rs"]
mod tests;
