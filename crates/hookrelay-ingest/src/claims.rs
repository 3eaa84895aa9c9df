//! The claims driver: the durable idempotency store as the receiver's pipeline and the bridge's
//! sink drive it (claim before the send, commit after it, release when it failed), each call
//! bounded, timed and its failure kept, never raised: a failing store never refuses an event.
//! The rules it applies are [`crate::idempotency`]'s.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::dedupe::{ContentDigest, DedupeKey};
use crate::idempotency::{
    CLAIM_CALLS, COMMIT_CALLS, ClaimDecision, ClaimRequest, IdempotencyStore, STORE_CALL_BOUND,
    StoreError, StoreKey,
};

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
