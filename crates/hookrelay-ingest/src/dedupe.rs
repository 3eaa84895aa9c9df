//! Duplicate suppression inside one warm instance: a bounded, time-windowed record of the
//! dedupe keys already published, each with the digest of the content it was published for. Also
//! the vocabulary both dedupe layers share: [`DedupeKey`] and [`ContentDigest`]. Pure (the
//! caller passes the time), no I/O.
//!
//! This is layer one (docs/contract.md, "Dedupe, in layers"): it absorbs a sender's quick
//! retries without a call to the idempotency store or SQS. Behind it, the durable store (`idempotency`, when
//! `HOOKRELAY_IDEMPOTENCY_TABLE` is set) covers other instances and long retry horizons, and the
//! FIFO queue's `MessageDeduplicationId` (the same key) five minutes. The receiver and the bridge
//! each keep one window. A key is recorded only after SQS accepted the message, so a failed
//! publish is retried in full by the sender's next attempt.
//!
//! A key is not an identity proof: the same key with the same digest is a duplicate, the same
//! key with a *different* digest is a [`DedupeDecision::Conflict`], another real event under a
//! reused key, published under [`DedupeKey::with_digest`] (the store follows the same rule).
//!
//! Bounded: when `capacity` keys are held, recording another evicts the least recently used one.
//! An evicted or expired key is no longer suppressed here, but the store and FIFO deduplication
//! still suppress it.

use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The identity of an event for deduplication, e.g. `engine:op-1:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupeKey(String);

impl DedupeKey {
    /// A key for `provider` from the sender-given identity `parts`, joined with `:`.
    pub fn new(provider: &str, parts: &[&str]) -> Self {
        let mut key = String::with_capacity(
            provider.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>(),
        );
        key.push_str(provider);
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        Self(key)
    }

    /// The content key: `{key}#{digest}`, which a conflicting event (this key, other content) is
    /// published and recorded under, so both events keep a key of their own, consumers' id
    /// checks keep both, and a retry of either is still a duplicate. A key that is already the
    /// content key of `digest` is returned as it is.
    pub fn with_digest(&self, digest: &ContentDigest) -> Self {
        if self.names_content(digest) {
            return self.clone();
        }
        Self(format!("{}#{}", self.0, digest.0))
    }

    /// Whether this is the content key of `digest` (`{key}#{digest}`).
    pub fn names_content(&self, digest: &ContentDigest) -> bool {
        self.0
            .strip_suffix(digest.as_str())
            .is_some_and(|rest| rest.ends_with('#'))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of an event's content, kept with its key by both dedupe layers: the SHA-256 (hex) of
/// the parts a sender keeps identical across retries, each length-prefixed so no two lists of
/// parts collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentDigest(String);

impl ContentDigest {
    /// The digest of `parts`, in order.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Self(hex::encode(hasher.finalize()))
    }

    /// A digest read back from the store, as [`ContentDigest::as_str`] wrote it.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The digest as stored (64 hex characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the window says about a key and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeDecision {
    /// Not published within the window: publish it (after the store's claim, when it is on).
    Publish,
    /// The same content was published under this key within the window: answer `duplicate`
    /// without sending.
    AlreadyPublished,
    /// Other content was published under this key within the window: a different event, to be
    /// published under [`DedupeKey::with_digest`] (check that key too).
    Conflict {
        /// The digest of what was published under the key.
        published: ContentDigest,
    },
}

/// What [`DedupeWindow::admit`] says of content about to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// `Some(recorded)` when its key holds other content (`recorded`, published or waiting): a
    /// different event, to be published under its content key, [`DedupeKey::with_digest`].
    pub conflict: Option<ContentDigest>,
    /// Published already, or waiting to be in this process, under the key it goes out under:
    /// drop it (answer `duplicate`).
    pub duplicate: bool,
}

impl Admission {
    fn publish(conflict: Option<ContentDigest>) -> Self {
        Self {
            conflict,
            duplicate: false,
        }
    }

    fn duplicate(conflict: Option<ContentDigest>) -> Self {
        Self {
            conflict,
            duplicate: true,
        }
    }
}

/// What a process holds under a key, accepted but not yet published (the bridge's buffer; the
/// receiver holds nothing between requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Nothing.
    Nothing,
    /// This very content.
    ThisContent,
    /// Other content, with this digest.
    OtherContent(ContentDigest),
}

/// Keys published recently, with when and for which content each was published.
#[derive(Debug)]
pub struct DedupeWindow {
    published: LruCache<DedupeKey, Published>,
    window: Duration,
}

/// One key's entry: when, for which content, and whether the key was really that content's
/// (`false`: the content went out under its content key because the store could not confirm it
/// held this one, which may then be another event's).
#[derive(Debug)]
struct Published {
    at: OffsetDateTime,
    digest: ContentDigest,
    holds_key: bool,
}

impl DedupeWindow {
    /// A window remembering at most `capacity` keys for `window` each.
    pub fn new(capacity: NonZeroUsize, window: Duration) -> Self {
        Self {
            published: LruCache::new(capacity),
            window,
        }
    }

    /// Whether `key` was published within the window before `now`, and for `digest` or for
    /// other content. Expired keys are dropped.
    pub fn check(
        &mut self,
        key: &DedupeKey,
        digest: &ContentDigest,
        now: OffsetDateTime,
    ) -> DedupeDecision {
        let Some(published) = self.published.get(key) else {
            return DedupeDecision::Publish;
        };
        // A clock that stepped backwards counts as "within the window": suppress, never resend.
        if now - published.at >= self.window {
            self.published.pop(key);
            DedupeDecision::Publish
        } else if published.digest == *digest {
            DedupeDecision::AlreadyPublished
        } else if !published.holds_key {
            // Who holds the key is the store's to say.
            DedupeDecision::Publish
        } else {
            DedupeDecision::Conflict {
                published: published.digest.clone(),
            }
        }
    }

    /// The dedupe step both processes run before the store's claim, for content `digest` under
    /// `key` at `now`, given what the process holds unpublished (`waiting`): a repeat is a
    /// duplicate; the key holding other content makes this another event, under its content key,
    /// which may itself be a repeat.
    pub fn admit(
        &mut self,
        key: &DedupeKey,
        digest: &ContentDigest,
        now: OffsetDateTime,
        waiting: impl Fn(&DedupeKey) -> Waiting,
    ) -> Admission {
        let recorded = match self.check(key, digest, now) {
            DedupeDecision::AlreadyPublished => return Admission::duplicate(None),
            DedupeDecision::Conflict { published } => published,
            DedupeDecision::Publish => match waiting(key) {
                Waiting::Nothing => return Admission::publish(None),
                Waiting::ThisContent => return Admission::duplicate(None),
                Waiting::OtherContent(other) => other,
            },
        };
        let content_key = key.with_digest(digest);
        if waiting(&content_key) == Waiting::ThisContent
            || self.check(&content_key, digest, now) == DedupeDecision::AlreadyPublished
        {
            return Admission::duplicate(Some(recorded));
        }
        Admission::publish(Some(recorded))
    }

    /// Records that SQS accepted `key`, for content `digest`, at `now` (or that the store says it
    /// did).
    pub fn record(&mut self, key: DedupeKey, digest: ContentDigest, now: OffsetDateTime) {
        self.published.put(
            key,
            Published {
                at: now,
                digest,
                holds_key: true,
            },
        );
    }

    /// Records that SQS accepted content `digest` under its content key at `now`, the store
    /// having confirmed no claim of `key` for it: a retry of the content under `key` is a
    /// duplicate, while other content under `key` is left to the store (it may hold the key).
    pub fn record_under_content_key(
        &mut self,
        key: DedupeKey,
        digest: ContentDigest,
        now: OffsetDateTime,
    ) {
        self.published.put(
            key,
            Published {
                at: now,
                digest,
                holds_key: false,
            },
        );
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.published.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.published.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + seconds).unwrap()
    }

    fn key(n: u32) -> DedupeKey {
        DedupeKey::new("engine", &[&n.to_string()])
    }

    fn content(n: u32) -> ContentDigest {
        ContentDigest::of(&[n.to_string().as_bytes()])
    }

    fn window(capacity: usize, seconds: u64) -> DedupeWindow {
        DedupeWindow::new(
            NonZeroUsize::new(capacity).unwrap(),
            Duration::from_secs(seconds),
        )
    }

    #[test]
    fn content_sent_under_its_content_key_is_a_duplicate_under_the_key_but_no_conflict() {
        let mut w = window(10, 600);
        w.record_under_content_key(key(1), content(1), at(0));
        assert_eq!(
            w.check(&key(1), &content(1), at(1)),
            DedupeDecision::AlreadyPublished
        );
        assert_eq!(
            w.check(&key(1), &content(2), at(1)),
            DedupeDecision::Publish,
            "the store says whose the key is"
        );
    }

    #[test]
    fn a_content_key_is_made_once() {
        let once = key(1).with_digest(&content(1));
        assert_eq!(once.with_digest(&content(1)), once);
        assert!(once.names_content(&content(1)));
        assert!(!once.names_content(&content(2)));
        assert!(!key(1).names_content(&content(1)));
        assert_ne!(once.with_digest(&content(2)), once);
    }

    #[test]
    fn keys_join_provider_and_parts() {
        assert_eq!(
            DedupeKey::new("engine", &["op", "42"]).as_str(),
            "engine:op:42"
        );
        assert_eq!(DedupeKey::new("engine", &["42"]).as_str(), "engine:42");
    }

    #[test]
    fn only_recorded_keys_are_duplicates() {
        let mut w = window(10, 600);
        assert_eq!(
            w.check(&key(1), &content(1), at(0)),
            DedupeDecision::Publish
        );
        // Checking does not record: a publish that then failed leaves the key publishable.
        assert_eq!(
            w.check(&key(1), &content(1), at(1)),
            DedupeDecision::Publish
        );
        w.record(key(1), content(1), at(1));
        assert_eq!(
            w.check(&key(1), &content(1), at(2)),
            DedupeDecision::AlreadyPublished
        );
        assert_eq!(
            w.check(&key(2), &content(2), at(2)),
            DedupeDecision::Publish
        );
    }

    #[test]
    fn the_same_key_with_other_content_is_a_conflict_and_its_own_key_is_kept() {
        let mut w = window(10, 600);
        w.record(key(1), content(1), at(0));
        assert_eq!(
            w.check(&key(1), &content(2), at(1)),
            DedupeDecision::Conflict {
                published: content(1)
            }
        );
        let rekeyed = key(1).with_digest(&content(2));
        assert_eq!(
            rekeyed.as_str(),
            format!("engine:1#{}", content(2).as_str())
        );
        assert_eq!(
            w.check(&rekeyed, &content(2), at(1)),
            DedupeDecision::Publish
        );
        w.record(rekeyed.clone(), content(2), at(1));
        assert_eq!(
            w.check(&rekeyed, &content(2), at(2)),
            DedupeDecision::AlreadyPublished
        );
        assert_eq!(
            w.check(&key(1), &content(1), at(2)),
            DedupeDecision::AlreadyPublished,
            "the first event keeps its key"
        );
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(
            ContentDigest::of(&[b"ab", b"c"]),
            ContentDigest::of(&[b"a", b"bc"])
        );
        assert_eq!(
            ContentDigest::of(&[b"ab", b"c"]),
            ContentDigest::of(&[b"ab", b"c"])
        );
        assert_eq!(content(1).as_str().len(), 64);
    }

    #[test]
    fn keys_expire_after_the_window() {
        let mut w = window(10, 600);
        w.record(key(1), content(1), at(0));
        assert_eq!(
            w.check(&key(1), &content(1), at(599)),
            DedupeDecision::AlreadyPublished
        );
        assert_eq!(
            w.check(&key(1), &content(1), at(600)),
            DedupeDecision::Publish
        );
        assert!(w.is_empty(), "an expired key is dropped when seen");
    }

    #[test]
    fn a_clock_stepping_back_still_suppresses() {
        let mut w = window(10, 600);
        w.record(key(1), content(1), at(100));
        assert_eq!(
            w.check(&key(1), &content(1), at(50)),
            DedupeDecision::AlreadyPublished
        );
    }

    #[test]
    fn capacity_bounds_memory_by_evicting_the_least_recently_used() {
        let mut w = window(3, 600);
        for n in 0..3 {
            w.record(key(n), content(n), at(0));
        }
        assert_eq!(
            w.check(&key(0), &content(0), at(1)),
            DedupeDecision::AlreadyPublished
        ); // 0 is now recent
        w.record(key(3), content(3), at(1));
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.check(&key(1), &content(1), at(2)),
            DedupeDecision::Publish,
            "least recently used is evicted"
        );
        assert_eq!(
            w.check(&key(0), &content(0), at(2)),
            DedupeDecision::AlreadyPublished
        );
        assert_eq!(
            w.check(&key(3), &content(3), at(2)),
            DedupeDecision::AlreadyPublished
        );
    }
}
