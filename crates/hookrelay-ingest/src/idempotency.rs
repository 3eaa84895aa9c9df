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
//! own `sequence`, say), which is published under a key that keeps both ([`StoreKey::conflict`])
//! rather than refused, since refusing would lose a real event. Not wired into the receiver or
//! the bridge yet.

use std::fmt;

use sha2::{Digest, Sha256};

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
    pub fn new(key: &str) -> Self {
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

    /// The key under which a conflicting event (same key, other content) is published and
    /// recorded: this key with the event's digest appended, so both events keep a key of their
    /// own and a retry of either is still a duplicate.
    pub fn conflict(&self, digest: &ContentDigest) -> Self {
        Self::new(&format!("{}#{}", self.0, digest.0))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of an event's content, stored with its key: the SHA-256 (hex) of the parts a sender
/// keeps identical across retries, each length-prefixed so no two lists of parts collide.
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

    /// A digest read back from the store.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The digest as stored (64 hex characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    /// Another event holds the key: publish this one under [`StoreKey::conflict`], count it
    /// and log both digests.
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
        let key = StoreKey::new("engine:op-1:42");
        let conflict = key.conflict(&other);
        assert_ne!(conflict, key);
        assert!(conflict.as_str().starts_with("engine:op-1:42#"));
        assert_eq!(conflict, key.conflict(&other), "a retry finds the same key");
        assert_ne!(conflict, key.conflict(&digest("a third event")));
    }

    #[test]
    fn keys_longer_than_dynamodb_holds_are_hashed_and_stay_distinct() {
        let short = StoreKey::new("rekko:abc");
        assert_eq!(short.as_str(), "rekko:abc");
        let at_limit = "x".repeat(MAX_KEY_BYTES);
        assert_eq!(StoreKey::new(&at_limit).as_str(), at_limit);
        let long_a = StoreKey::new(&"a".repeat(MAX_KEY_BYTES + 1));
        let long_b = StoreKey::new(&"b".repeat(MAX_KEY_BYTES + 1));
        assert!(long_a.as_str().starts_with("sha256:"));
        assert_eq!(long_a.as_str().len(), "sha256:".len() + 64);
        assert_ne!(long_a, long_b);
        // A conflict key of a key at the limit is hashed too, never over the limit.
        let conflict = StoreKey::new(&at_limit).conflict(&digest("x"));
        assert!(conflict.as_str().len() <= MAX_KEY_BYTES);
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
        assert_eq!(digest("event").as_str().len(), 64);
    }
}
