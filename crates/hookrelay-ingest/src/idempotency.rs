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
//! the test kit. The receiver's pipeline and the bridge's sink drive it the same way.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
/// `confirmed` is false when the store did not answer the claim (the write may or may not have
/// been made): the commit then records the key rather than committing a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldClaim {
    key: StoreKey,
    owner: String,
    digest: ContentDigest,
    confirmed: bool,
    claimed_at: i64,
    maybe_sent_since: Option<i64>,
    /// An unconfirmed claim of the bare key: the event goes out under its content key
    /// (`{key}#{digest}`), which is recorded instead when another event's record holds the bare
    /// key, so this content's retries still find it.
    content_key: Option<StoreKey>,
}

impl HeldClaim {
    /// When an earlier attempt of this content may have sent it to the queue without it being
    /// recorded, Unix seconds: this publish may then be a second copy.
    pub fn maybe_sent_since(&self) -> Option<i64> {
        self.maybe_sent_since
    }

    /// The claim went unanswered on the bare key, which may then be another event's: the event
    /// goes out under `DedupeKey::with_digest`, an envelope `id` naming its content alone
    /// (docs/contract.md, "Exactly once").
    pub fn goes_out_under_content_key(&self) -> bool {
        self.content_key.is_some()
    }
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
    /// The store did not answer (kept in [`StoreCalls::failures`]): publish anyway; the commit
    /// records the key if the store answers by then.
    Unclaimed(HeldClaim),
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

/// What the store holds for an event that may be in the queue, once its claim is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The key records this content (published, or released keeping it), or nothing was sent.
    Recorded,
    /// The store answered none of the calls that would record this content, and its claim was
    /// never confirmed: the key may hold nothing, so a later attempt of this content could be
    /// published again (under another envelope `id` where the key was free).
    Unrecorded,
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
    /// Recording a key published whose claim the store did not confirm, or which lapsed.
    RecordPublished,
}

impl StoreOperation {
    /// `claim`, `commit`, `release`, `record` or `record_published`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Commit => "commit",
            Self::Release => "release",
            Self::Record => "record",
            Self::RecordPublished => "record_published",
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
    /// it can't conflict again but by a SHA-256 collision, which publishes unclaimed). A claim
    /// the store did not answer is made again (with the same owner token, so a first attempt
    /// that was written is recognised), up to [`CLAIM_CALLS`] calls; no call after the first
    /// starts unless it can end by `give_up_at` ([`STORE_CALL_BOUND`]), the conflict key's
    /// claim included. Without an answer the event is published anyway ([`Claim::Unclaimed`]).
    pub async fn claim(
        &self,
        key: &DedupeKey,
        digest: &ContentDigest,
        now: i64,
        give_up_at: Instant,
        calls: &mut StoreCalls,
    ) -> ClaimOutcome {
        let mut conflict = None;
        let mut claiming = StoreKey::new(key);
        let mut owner = self.owners.next();
        let mut calls_left = CLAIM_CALLS;
        let held = |key: &StoreKey, owner: &str, confirmed, maybe_sent_since| HeldClaim {
            key: key.clone(),
            owner: owner.to_owned(),
            digest: digest.clone(),
            confirmed,
            claimed_at: now,
            maybe_sent_since,
            content_key: None,
        };
        loop {
            calls_left -= 1;
            let decision = calls
                .time(
                    StoreOperation::Claim,
                    self.store.claim(ClaimRequest {
                        key: &claiming,
                        digest,
                        owner: &owner,
                        now,
                        claim_expires_at: now.saturating_add(secs(self.claim_for)),
                        owned_until: now.saturating_add(secs(self.ttl)),
                    }),
                )
                .await;
            let time_for_another = Instant::now() + STORE_CALL_BOUND <= give_up_at;
            let claim = match decision {
                Ok(ClaimDecision::Claimed) => Claim::Held(held(&claiming, &owner, true, None)),
                Ok(ClaimDecision::Reclaimed { maybe_sent_since }) => {
                    Claim::Held(held(&claiming, &owner, true, Some(maybe_sent_since)))
                }
                Ok(ClaimDecision::Duplicate) => Claim::Duplicate,
                Ok(ClaimDecision::InProgress { retry_after_secs }) => {
                    Claim::InProgress { retry_after_secs }
                }
                Ok(ClaimDecision::Conflict { stored }) if conflict.is_none() => {
                    claiming = StoreKey::new(&key.with_digest(digest));
                    owner = self.owners.next();
                    conflict = Some(stored);
                    // The store answered: the conflict key's claim gets calls of its own (a
                    // conflict key already published must be found, or it is sent again).
                    calls_left = CLAIM_CALLS;
                    if time_for_another {
                        continue;
                    }
                    // No time to claim the conflict key: publish under it, record it after.
                    Claim::Unclaimed(held(&claiming, &owner, false, None))
                }
                Ok(ClaimDecision::Conflict { .. }) => {
                    calls.failures.push((
                        StoreOperation::Claim,
                        StoreError::Unreadable("the conflict key holds other content".to_owned()),
                    ));
                    // Published unclaimed; its commit's record is refused (other content).
                    Claim::Unclaimed(held(&claiming, &owner, false, None))
                }
                Err(StoreError::Unavailable(_)) if calls_left > 0 && time_for_another => continue,
                Err(_) => Claim::Unclaimed(HeldClaim {
                    // The bare key may be a twin's: published under the content key.
                    content_key: (conflict.is_none() && !key.names_content(digest))
                        .then(|| StoreKey::new(&key.with_digest(digest))),
                    ..held(&claiming, &owner, false, None)
                }),
            };
            return ClaimOutcome { claim, conflict };
        }
    }

    /// Marks `held` published until `now` + the TTL: commits a confirmed claim (conditional on
    /// its owner token), and records an unconfirmed or lapsed one
    /// ([`IdempotencyStore::record_published`]). A commit the store did not answer is made
    /// again, up to [`COMMIT_CALLS`] calls, while `give_up_at` leaves room for one more bounded
    /// call ([`STORE_CALL_BOUND`]): a key left `in_progress` lapses, and a retry after SQS FIFO's
    /// five minutes would publish again. The record of an unconfirmed claim gets up to
    /// [`CLAIM_CALLS`] calls, on the same time rule: until it is written the key may hold
    /// nothing, and a later attempt of this content could be published again. When a twin's
    /// record holds the bare key, the content key the event went out under is recorded instead.
    ///
    /// Says what the key holds for the published event afterwards ([`Settled`]).
    pub async fn commit(
        &self,
        held: &HeldClaim,
        now: i64,
        give_up_at: Instant,
        calls: &mut StoreCalls,
    ) -> Settled {
        let expires_at = now.saturating_add(secs(self.ttl));
        let mut committing = held.confirmed;
        let mut recording = &held.key;
        let mut calls_left = if held.confirmed {
            COMMIT_CALLS
        } else {
            CLAIM_CALLS
        };
        loop {
            calls_left -= 1;
            let written = if committing {
                calls
                    .time(
                        StoreOperation::Commit,
                        self.store.commit(&held.key, &held.owner, expires_at),
                    )
                    .await
            } else {
                calls
                    .time(
                        StoreOperation::RecordPublished,
                        self.store.record_published(
                            recording,
                            &held.digest,
                            &held.owner,
                            now,
                            expires_at,
                        ),
                    )
                    .await
            };
            let time_for_another = Instant::now() + STORE_CALL_BOUND <= give_up_at;
            match written {
                Ok(()) => return Settled::Recorded,
                // A twin holds the bare key (not a failure of the store): this event went out
                // under its content key, so that is what its retries must find.
                Err(StoreError::OtherContent) => {
                    calls.failures.pop();
                    match &held.content_key {
                        Some(content_key) if recording != content_key && time_for_another => {
                            recording = content_key;
                            calls_left = calls_left.max(1);
                        }
                        _ => return Settled::Unrecorded,
                    }
                }
                // The claim lapsed before this commit (the publish outlasted it) and another
                // claimant may hold the key: not a failure of the store. The event was
                // published, so record that, for this content only.
                Err(StoreError::ClaimLost) if committing => {
                    calls.failures.pop();
                    committing = false;
                    calls_left = calls_left.max(1);
                    if !time_for_another {
                        // A confirmed claim of ours held the key: it keeps this content.
                        return Settled::Recorded;
                    }
                }
                Err(StoreError::Unavailable(_)) if calls_left > 0 && time_for_another => {}
                // A confirmed claim keeps the key for this content until its TTL (it lapses,
                // and a retry is counted as a possible copy); an unconfirmed one may hold nothing.
                Err(_) if held.confirmed => return Settled::Recorded,
                Err(_) => return Settled::Unrecorded,
            }
        }
    }

    /// Gives `held` up, so the next attempt goes through in full; `maybe_sent`: its send failed
    /// ambiguously (SQS may have queued it), which the record keeps for the next attempt. A
    /// claim the store never confirmed may not exist: after an ambiguous send the key is then
    /// recorded for this content ([`IdempotencyStore::record_released`]), so another event can't
    /// take it while this one may be in the queue under it; when a twin holds the key, the
    /// content key is recorded instead if a second bounded call still ends by `give_up_at`.
    pub async fn release(
        &self,
        held: &HeldClaim,
        maybe_sent: bool,
        now: i64,
        give_up_at: Instant,
        calls: &mut StoreCalls,
    ) -> Settled {
        let maybe_sent_since = if maybe_sent {
            Some(
                held.maybe_sent_since
                    .map_or(held.claimed_at, |t| t.min(held.claimed_at)),
            )
        } else {
            held.maybe_sent_since
        };
        if let (false, true, Some(since)) = (held.confirmed, maybe_sent, maybe_sent_since) {
            // The bare key first (the retry claims it), then, if a twin holds that, the content
            // key the event may be queued under.
            for key in std::iter::once(&held.key).chain(&held.content_key) {
                let request = ClaimRequest {
                    key,
                    digest: &held.digest,
                    owner: &held.owner,
                    now,
                    claim_expires_at: 0,
                    owned_until: now.saturating_add(secs(self.ttl)),
                };
                let recorded = calls
                    .time(
                        StoreOperation::Release,
                        self.store.record_released(request, since),
                    )
                    .await;
                match recorded {
                    Ok(()) => return Settled::Recorded,
                    Err(StoreError::OtherContent) => {
                        calls.failures.pop();
                    }
                    Err(_) => return Settled::Unrecorded,
                }
                if Instant::now() + STORE_CALL_BOUND > give_up_at {
                    break;
                }
            }
            return Settled::Unrecorded;
        }
        // An unconfirmed claim too: if its write was made, lapsing it spares the retry a wait
        // for the claim to lapse. If it wasn't, another's record there is no failure.
        let released = calls
            .time(
                StoreOperation::Release,
                self.store.release(&held.key, &held.owner, maybe_sent_since),
            )
            .await;
        if !held.confirmed && released == Err(StoreError::ClaimLost) {
            calls.failures.pop();
        }
        // Nothing sent, or a confirmed claim of ours keeps the key for this content.
        Settled::Recorded
    }
}

impl StoreCalls {
    /// Adds `other`'s calls, time and failures to these.
    pub fn absorb(&mut self, other: StoreCalls) {
        self.count += other.count;
        self.latency += other.latency;
        self.failures.extend(other.failures);
    }

    /// Runs `call`, counting and timing it, keeping its failure.
    pub async fn time<T>(
        &mut self,
        operation: StoreOperation,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.latency += started.elapsed();
        self.count += 1;
        if let Err(error) = &result {
            self.failures.push((operation, error.clone()));
        }
        result
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
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
}
