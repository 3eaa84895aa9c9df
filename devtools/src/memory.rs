//! In-memory stand-ins for tests, benches and tools where SQS behaviour doesn't matter:
//! publishers that keep every message they accept (and can fail the first calls to exercise
//! retry paths), and a consumer handler that records what it was handed. (Where SQS behaviour
//! matters, tests use [`crate::local_sqs`] against a real local endpoint.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hookrelay::consumer::EventHandler;
use hookrelay::{Envelope, Event};
use hookrelay_ingest::queue::{PublishError, Publisher};
use hookrelay_ingest::routed::QueueMessage;

/// Keeps the messages it accepts; fails the first `fail_first` calls. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<QueueMessage>>>,
    calls: Arc<AtomicUsize>,
    fail_first: usize,
}

impl MemoryPublisher {
    /// A publisher whose first `calls` publishes fail.
    pub fn failing_first(calls: usize) -> Self {
        Self {
            fail_first: calls,
            ..Self::default()
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
    async fn publish(&self, message: &QueueMessage) -> Result<(), PublishError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(PublishError::new("injected failure"));
        }
        self.lock().push(message.clone());
        Ok(())
    }
}

/// Accepts everything and keeps nothing: the benchmarks' publisher.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardingPublisher;

impl Publisher for DiscardingPublisher {
    async fn publish(&self, _: &QueueMessage) -> Result<(), PublishError> {
        Ok(())
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
