//! In-memory stand-ins for tests, benches and tools where SQS behaviour doesn't matter:
//! publishers that keep every message they accept (and can fail the first calls to exercise
//! retry paths), an idempotency store over a map, and a consumer handler that records what it
//! was handed. (Where SQS behaviour
//! matters, tests use [`crate::local_sqs`] against a real local endpoint.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookrelay::consumer::EventHandler;
use hookrelay::{Envelope, Event};
use hookrelay_ingest::idempotency::{
    ClaimDecision, ClaimRequest, ContentDigest, IdempotencyStore, RecordState, StoreError,
    StoreKey, StoredRecord, decide, earlier_send, may_record,
};
use hookrelay_ingest::queue::{PublishError, Publisher, QueueMessage, Sent};
use hookrelay_ingest::sequence::{Arrival, Seen, SequenceStore, SequenceStream, StreamHead};

/// Keeps the messages it accepts; fails the first `fail_first` calls (ambiguously: SQS may have
/// queued them, with `ambiguous`). Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<QueueMessage>>>,
    calls: Arc<AtomicUsize>,
    fail_first: usize,
    ambiguous: bool,
}

impl MemoryPublisher {
    /// A publisher whose first `calls` publishes fail.
    pub fn failing_first(calls: usize) -> Self {
        Self {
            fail_first: calls,
            ..Self::default()
        }
    }

    /// A publisher whose first `calls` publishes fail after the request may have reached SQS
    /// (an answer lost): nothing is kept, but the failures say they may have queued it.
    pub fn failing_first_ambiguously(calls: usize) -> Self {
        Self {
            ambiguous: true,
            ..Self::failing_first(calls)
        }
    }

    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<QueueMessage> {
        self.lock().clone()
    }

    /// How many messages were accepted.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets what was accepted (the bench's publisher would otherwise grow without bound).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<QueueMessage>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(&self, message: &QueueMessage, _: Duration) -> Result<Sent, PublishError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(if self.ambiguous {
                PublishError::ambiguous("injected failure, answer lost")
            } else {
                PublishError::new("injected failure")
            });
        }
        self.lock().push(message.clone());
        Ok(Sent::default())
    }
}

/// Accepts everything and keeps nothing: the benchmarks' publisher.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardingPublisher;

impl Publisher for DiscardingPublisher {
    async fn publish(&self, _: &QueueMessage, _: Duration) -> Result<Sent, PublishError> {
        Ok(Sent::default())
    }
}

/// A consumer `EventHandler` that records the envelope id of every event it is handed.
#[derive(Debug, Default)]
pub struct RecordingHandler(Mutex<Vec<String>>);

impl RecordingHandler {
    /// The ids handed over so far, in order.
    pub fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl EventHandler for &RecordingHandler {
    fn handle(&self, envelope: &Envelope, _: Event) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(envelope.id.clone());
        Ok(())
    }
}

/// The idempotency store's rules over a map: the claim condition, commit and release as the
/// DynamoDB adapter writes them, for unit tests of the pipeline's and the sink's store stage
/// (where DynamoDB's behaviour matters, tests use moto). Clones share the map; `fail_next`
/// makes the next calls fail as an unavailable store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<std::collections::HashMap<String, StoredRecord>>>,
    fail_next: Arc<AtomicUsize>,
    fail_commits: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl MemoryStore {
    /// Fails the next `calls` store calls with [`StoreError::Unavailable`].
    pub fn fail_next(&self, calls: usize) {
        self.fail_next.store(calls, Ordering::SeqCst);
    }

    /// Fails the next `commits` commits with [`StoreError::Unavailable`] (a claim never
    /// committed lapses at its expiry).
    pub fn fail_commits(&self, commits: usize) {
        self.fail_commits.store(commits, Ordering::SeqCst);
    }

    /// The record held for `key` (the store key), if any.
    pub fn record(&self, key: &str) -> Option<StoredRecord> {
        self.lock().get(key).cloned()
    }

    /// Writes `record` under `key`, as another instance would have.
    pub fn put(&self, key: &str, record: StoredRecord) {
        self.lock().insert(key.to_owned(), record);
    }

    /// Every key held.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, StoredRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failing(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failed = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            Err(StoreError::Unavailable("injected failure".to_owned()))
        } else {
            Ok(())
        }
    }

    fn owned(&self, key: &StoreKey, owner: &str) -> Result<(), StoreError> {
        match self.lock().get(key.as_str()) {
            Some(StoredRecord {
                state: RecordState::InProgress { owner: holder, .. },
                ..
            }) if holder == owner => Ok(()),
            _ => Err(StoreError::ClaimLost),
        }
    }
}

impl IdempotencyStore for MemoryStore {
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<ClaimDecision, StoreError> {
        self.failing()?;
        let mut records = self.lock();
        let decision = decide(
            records.get(request.key.as_str()),
            request.digest,
            request.now,
        );
        if decision != ClaimDecision::Claimed {
            return Ok(decision);
        }
        let claimed = StoredRecord {
            state: RecordState::InProgress {
                owner: request.owner.to_owned(),
                lapses_at: request.claim_expires_at,
            },
            digest: request.digest.clone(),
            expires_at: request.owned_until,
            claimed_at: Some(request.now),
            maybe_sent_since: None,
        };
        let old = records.insert(request.key.as_str().to_owned(), claimed);
        Ok(
            match earlier_send(old.as_ref(), request.digest, request.now) {
                Some(maybe_sent_since) => ClaimDecision::Reclaimed { maybe_sent_since },
                None => ClaimDecision::Claimed,
            },
        )
    }

    async fn commit(&self, key: &StoreKey, owner: &str, expires_at: i64) -> Result<(), StoreError> {
        self.failing()?;
        let failed = self
            .fail_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err(StoreError::Unavailable(
                "injected commit failure".to_owned(),
            ));
        }
        self.owned(key, owner)?;
        if let Some(record) = self.lock().get_mut(key.as_str()) {
            record.state = RecordState::Published;
            record.expires_at = expires_at;
        }
        Ok(())
    }

    async fn release(
        &self,
        key: &StoreKey,
        owner: &str,
        maybe_sent_since: Option<i64>,
    ) -> Result<(), StoreError> {
        self.failing()?;
        let held = self.lock().contains_key(key.as_str());
        // Absent (an unconfirmed claim whose write was never made): nothing to release.
        if held {
            self.owned(key, owner)?;
            if let Some(record) = self.lock().get_mut(key.as_str())
                && let RecordState::InProgress { lapses_at, .. } = &mut record.state
            {
                *lapses_at = 0;
                if maybe_sent_since.is_some() {
                    record.maybe_sent_since = maybe_sent_since;
                }
            }
        }
        Ok(())
    }

    async fn record_published(
        &self,
        key: &StoreKey,
        digest: &ContentDigest,
        _owner: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.failing()?;
        let mut records = self.lock();
        if !may_record(records.get(key.as_str()), digest, now) {
            return Err(StoreError::OtherContent);
        }
        records.insert(
            key.as_str().to_owned(),
            StoredRecord {
                state: RecordState::Published,
                digest: digest.clone(),
                expires_at,
                claimed_at: None,
                maybe_sent_since: None,
            },
        );
        Ok(())
    }

    async fn record_released(
        &self,
        request: ClaimRequest<'_>,
        maybe_sent_since: i64,
    ) -> Result<(), StoreError> {
        self.failing()?;
        let mut records = self.lock();
        let stored = records
            .get(request.key.as_str())
            .filter(|record| record.expires_at >= request.now);
        match stored {
            Some(record) if record.digest != *request.digest => {
                return Err(StoreError::OtherContent);
            }
            Some(StoredRecord {
                state: RecordState::Published,
                ..
            }) => return Ok(()),
            _ => {}
        }
        records.insert(
            request.key.as_str().to_owned(),
            StoredRecord {
                state: RecordState::InProgress {
                    owner: request.owner.to_owned(),
                    lapses_at: 0,
                },
                digest: request.digest.clone(),
                expires_at: request.owned_until,
                claimed_at: Some(request.now),
                maybe_sent_since: Some(maybe_sent_since),
            },
        );
        Ok(())
    }
}

/// The sequence store's rules over a map, for unit tests of the recording and the detector
/// (moto's DynamoDB in the integration tests). Clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemorySequences {
    inner: Arc<Mutex<Sequences>>,
}

#[derive(Debug, Default)]
struct Sequences {
    seen: std::collections::BTreeMap<(String, u64), i64>,
    heads: std::collections::BTreeMap<String, (u64, Option<u64>)>,
}

impl MemorySequences {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sequences> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SequenceStore for MemorySequences {
    async fn record(
        &self,
        stream: &SequenceStream,
        sequence: u64,
        seen_at: i64,
        _expires_at: i64,
    ) -> Result<Arrival, StoreError> {
        let mut inner = self.lock();
        let key = stream.key();
        inner.seen.insert((key.clone(), sequence), seen_at);
        let head = inner.heads.entry(key).or_insert((0, None));
        if head.0 >= sequence && head.0 != 0 {
            return Ok(Arrival::OutOfOrder);
        }
        head.0 = sequence;
        Ok(Arrival::InOrder)
    }

    async fn streams(&self) -> Result<Vec<StreamHead>, StoreError> {
        Ok(self
            .lock()
            .heads
            .iter()
            .filter_map(|(key, (max_sequence, checked_through))| {
                Some(StreamHead {
                    stream: SequenceStream::from_key(key)?,
                    max_sequence: *max_sequence,
                    checked_through: *checked_through,
                })
            })
            .collect())
    }

    async fn seen_since(
        &self,
        stream: &SequenceStream,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Seen>, StoreError> {
        let key = stream.key();
        let from = after.map_or(0, |a| a.saturating_add(1));
        Ok(self
            .lock()
            .seen
            .range((key.clone(), from)..=(key, u64::MAX))
            .take(limit)
            .map(|((_, sequence), seen_at)| Seen {
                sequence: *sequence,
                seen_at: *seen_at,
            })
            .collect())
    }

    async fn checkpoint(
        &self,
        stream: &SequenceStream,
        from: Option<u64>,
        to: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let head = inner
            .heads
            .get_mut(&stream.key())
            .ok_or(StoreError::ClaimLost)?;
        if head.1 != from {
            return Err(StoreError::ClaimLost);
        }
        head.1 = Some(to);
        Ok(())
    }
}
