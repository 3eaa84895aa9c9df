//! Duplicate suppression inside one warm instance: a bounded, time-windowed record of the
//! dedupe keys already published. Pure (the caller passes the time), no I/O.
//!
//! This is layer one of three (see `docs/`): it absorbs a sender's quick retries without a call
//! to SQS. Across Lambda instances, the FIFO queue's `MessageDeduplicationId` (the same key) does
//! the work. The receiver and the bridge each keep one window. A key is recorded only after SQS accepted the message, so a failed publish is
//! retried in full by the sender's next attempt.
//!
//! Bounded: when `capacity` keys are held, recording another evicts the least recently used one.
//! An evicted or expired key is no longer suppressed here, but FIFO deduplication still is.

use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
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

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the window says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeDecision {
    /// Not published within the window: publish it.
    Publish,
    /// Already published within the window: answer `duplicate` without sending.
    AlreadyPublished,
}

/// Keys published recently, with when each was published.
#[derive(Debug)]
pub struct DedupeWindow {
    published: LruCache<DedupeKey, OffsetDateTime>,
    window: Duration,
}

impl DedupeWindow {
    /// A window remembering at most `capacity` keys for `window` each.
    pub fn new(capacity: NonZeroUsize, window: Duration) -> Self {
        Self {
            published: LruCache::new(capacity),
            window,
        }
    }

    /// Whether `key` was published within the window before `now`. Expired keys are dropped.
    pub fn check(&mut self, key: &DedupeKey, now: OffsetDateTime) -> DedupeDecision {
        let Some(&published_at) = self.published.get(key) else {
            return DedupeDecision::Publish;
        };
        // A clock that stepped backwards counts as "within the window": suppress, never resend.
        if now - published_at < self.window {
            DedupeDecision::AlreadyPublished
        } else {
            self.published.pop(key);
            DedupeDecision::Publish
        }
    }

    /// Records that SQS accepted `key` at `now`.
    pub fn record(&mut self, key: DedupeKey, now: OffsetDateTime) {
        self.published.put(key, now);
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

    fn window(capacity: usize, seconds: u64) -> DedupeWindow {
        DedupeWindow::new(
            NonZeroUsize::new(capacity).unwrap(),
            Duration::from_secs(seconds),
        )
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
        assert_eq!(w.check(&key(1), at(0)), DedupeDecision::Publish);
        // Checking does not record: a publish that then failed leaves the key publishable.
        assert_eq!(w.check(&key(1), at(1)), DedupeDecision::Publish);
        w.record(key(1), at(1));
        assert_eq!(w.check(&key(1), at(2)), DedupeDecision::AlreadyPublished);
        assert_eq!(w.check(&key(2), at(2)), DedupeDecision::Publish);
    }

    #[test]
    fn keys_expire_after_the_window() {
        let mut w = window(10, 600);
        w.record(key(1), at(0));
        assert_eq!(w.check(&key(1), at(599)), DedupeDecision::AlreadyPublished);
        assert_eq!(w.check(&key(1), at(600)), DedupeDecision::Publish);
        assert!(w.is_empty(), "an expired key is dropped when seen");
    }

    #[test]
    fn a_clock_stepping_back_still_suppresses() {
        let mut w = window(10, 600);
        w.record(key(1), at(100));
        assert_eq!(w.check(&key(1), at(50)), DedupeDecision::AlreadyPublished);
    }

    #[test]
    fn capacity_bounds_memory_by_evicting_the_least_recently_used() {
        let mut w = window(3, 600);
        for n in 0..3 {
            w.record(key(n), at(0));
        }
        assert_eq!(w.check(&key(0), at(1)), DedupeDecision::AlreadyPublished); // 0 is now recent
        w.record(key(3), at(1));
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.check(&key(1), at(2)),
            DedupeDecision::Publish,
            "least recently used is evicted"
        );
        assert_eq!(w.check(&key(0), at(2)), DedupeDecision::AlreadyPublished);
        assert_eq!(w.check(&key(3), at(2)), DedupeDecision::AlreadyPublished);
    }
}
