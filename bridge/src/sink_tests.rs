//! Tests of the sink: batching, retries, dedupe, the durable store, shutdown.

use std::collections::HashSet;
use std::sync::Mutex;

use hookrelay_ingest::providers::rekko::route_stream_event as parse_rekko_stream_event;
use hookrelay_ingest::queue::PublishError;

use super::*;
use crate::shutdown_pair;

fn test_signer() -> RelaySigner {
    RelaySigner::new(vec![hookrelay::relay::RelaySigningKey::from_seed([21; 32])]).unwrap()
}

/// A publisher that answers from a script, one entry per call (then accepts everything), and
/// records the dedupe ids of what it accepted.
#[derive(Default)]
struct ScriptedQueue {
    script: Mutex<VecDeque<Script>>,
    /// The FIFO deduplication id of each accepted entry.
    accepted: Mutex<Vec<String>>,
    /// The envelope `id` of each accepted entry.
    envelope_ids: Mutex<Vec<String>>,
    calls: Mutex<Vec<usize>>,
}

enum Script {
    CallFails,
    EntryFails { index: usize, permanent: bool },
}

impl BatchPublisher for &ScriptedQueue {
    async fn publish_batch(
        &self,
        messages: &[&QueueMessage],
    ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
        self.calls.lock().unwrap().push(messages.len());
        let step = self.script.lock().unwrap().pop_front();
        if let Some(Script::CallFails) = step {
            return Err(PublishError::new("connection reset"));
        }
        let mut results = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            match step {
                Some(Script::EntryFails { index, permanent }) if index == i => {
                    results.push(Err(EntryFailure {
                        code: if permanent {
                            "InvalidMessageContents"
                        } else {
                            "InternalError"
                        }
                        .into(),
                        sender_fault: permanent,
                    }));
                }
                _ => {
                    self.accepted
                        .lock()
                        .unwrap()
                        .push(message.deduplication_id.clone());
                    let envelope: serde_json::Value = serde_json::from_str(&message.body).unwrap();
                    self.envelope_ids
                        .lock()
                        .unwrap()
                        .push(envelope["id"].as_str().unwrap().to_owned());
                    results.push(Ok(()));
                }
            }
        }
        Ok(results)
    }
}

fn settings() -> SinkSettings {
    SinkSettings {
        linger: Duration::from_millis(5),
        retry: BackoffPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        },
        shutdown_grace: Duration::from_millis(50),
        dedupe_window: Duration::from_secs(600),
        dedupe_capacity: NonZeroUsize::new(1000).unwrap(),
        permanent_failure_limit: Duration::from_secs(600),
    }
}

fn event(n: usize) -> Received {
    let body = format!(
        r#"{{"type":"whale_alert","market_id":"m-{}","flow":{n}}}"#,
        n % 3
    );
    Received {
        event: parse_rekko_stream_event(body).unwrap(),
        at: OffsetDateTime::now_utc(),
    }
}

async fn run(queue: &ScriptedQueue, events: Vec<Received>) -> (SinkReport, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(4);
    let (trigger, shutdown) = shutdown_pair();
    let sink = Sink::new(
        queue,
        settings(),
        test_signer(),
        stats.clone(),
        None::<Idempotency<NoStore>>,
    );
    let feeder = async move {
        for e in events {
            tx.send(e).await.unwrap();
        }
    };
    let (report, ()) = tokio::join!(sink.run(rx, shutdown, trigger), feeder);
    (report, stats)
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn batches_of_at_most_ten_and_duplicates_dropped() {
    let queue = ScriptedQueue::default();
    let mut events: Vec<Received> = (0..25).map(event).collect();
    events.extend((0..5).map(event)); // re-sent after a reconnect
    let (report, stats) = run(&queue, events).await;
    assert_eq!(
        report,
        SinkReport {
            published: 25,
            unsent: 0,
            refused: None,
        }
    );
    let accepted = queue.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 25);
    assert_eq!(accepted.iter().collect::<HashSet<_>>().len(), 25);
    assert!(
        queue
            .calls
            .lock()
            .unwrap()
            .iter()
            .all(|&n| (1..=10).contains(&n))
    );
    let rekko = stats.of(StreamSource::Rekko);
    assert_eq!((count(&rekko.published), count(&rekko.duplicates)), (25, 5));
}

#[tokio::test]
async fn failed_calls_and_entries_are_retried_until_accepted() {
    let queue = ScriptedQueue::default();
    queue.script.lock().unwrap().extend([
        Script::CallFails,
        Script::EntryFails {
            index: 2,
            permanent: false,
        },
        Script::CallFails,
        Script::EntryFails {
            index: 0,
            permanent: false,
        },
    ]);
    let (report, stats) = run(&queue, (0..12).map(event).collect()).await;
    assert_eq!(
        report,
        SinkReport {
            published: 12,
            unsent: 0,
            refused: None,
        }
    );
    let accepted = queue.accepted.lock().unwrap().clone();
    assert_eq!(
        accepted.iter().collect::<HashSet<_>>().len(),
        12,
        "each once"
    );
    assert_eq!(accepted.len(), 12);
    assert!(count(&stats.of(StreamSource::Rekko).publish_failures) >= 2);
}

#[tokio::test]
async fn an_entry_sqs_refuses_as_invalid_is_counted_not_retried_forever() {
    let queue = ScriptedQueue::default();
    queue.script.lock().unwrap().push_back(Script::EntryFails {
        index: 1,
        permanent: true,
    });
    let (report, stats) = run(&queue, (0..3).map(event).collect()).await;
    assert_eq!(report.published, 2);
    assert_eq!(count(&stats.of(StreamSource::Rekko).rejected), 1);
}

#[tokio::test]
async fn after_shutdown_the_grace_period_bounds_the_retries() {
    struct Down;
    impl BatchPublisher for Down {
        async fn publish_batch(
            &self,
            _: &[&QueueMessage],
        ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
            Err(PublishError::new("queue unreachable"))
        }
    }
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(8);
    let (trigger, shutdown) = shutdown_pair();
    for n in 0..3 {
        tx.send(event(n)).await.unwrap();
    }
    drop(tx);
    trigger.request();
    let report = Sink::new(
        Down,
        settings(),
        test_signer(),
        stats,
        None::<Idempotency<NoStore>>,
    )
    .run(rx, shutdown, trigger)
    .await;
    assert_eq!(
        report,
        SinkReport {
            published: 0,
            unsent: 3,
            refused: None,
        }
    );
}

#[tokio::test]
async fn a_queue_that_refuses_permanently_stops_the_bridge_after_the_limit() {
    struct Denied;
    impl BatchPublisher for Denied {
        async fn publish_batch(
            &self,
            _: &[&QueueMessage],
        ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
            Err(PublishError::permanent("AccessDenied: not authorized"))
        }
    }
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(8);
    let (trigger, shutdown) = shutdown_pair();
    for n in 0..3 {
        tx.send(event(n)).await.unwrap();
    }
    let settings = SinkSettings {
        permanent_failure_limit: Duration::from_millis(50),
        ..settings()
    };
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        Sink::new(
            Denied,
            settings,
            test_signer(),
            stats,
            None::<Idempotency<NoStore>>,
        )
        .run(rx, shutdown.clone(), trigger),
    )
    .await
    .expect("stops on its own, without a shutdown request");
    assert_eq!(report.published, 0);
    assert_eq!(report.unsent, 3);
    assert!(report.refused.unwrap().contains("AccessDenied"));
    assert!(shutdown.is_requested(), "the streams are told to stop");
    drop(tx);

    // A transient failure in between starts the clock again: never stopped by it.
    struct Flaky(std::sync::atomic::AtomicUsize);
    impl BatchPublisher for Flaky {
        async fn publish_batch(
            &self,
            messages: &[&QueueMessage],
        ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0..3 => Err(PublishError::permanent("QueueDoesNotExist")),
                _ => Ok(vec![Ok(()); messages.len()]),
            }
        }
    }
    // SendMessageBatch reports a disabled KMS key per entry: every entry refused stops the
    // bridge the same way.
    struct KeyDisabled;
    impl BatchPublisher for KeyDisabled {
        async fn publish_batch(
            &self,
            messages: &[&QueueMessage],
        ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
            let refused = EntryFailure {
                code: "KMS.DisabledException".to_owned(),
                sender_fault: true,
            };
            Ok(vec![Err(refused); messages.len()])
        }
    }
    let (tx, rx) = mpsc::channel(8);
    let (trigger, shutdown) = shutdown_pair();
    tx.send(event(7)).await.unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        Sink::new(
            KeyDisabled,
            settings,
            test_signer(),
            Arc::new(Stats::default()),
            None::<Idempotency<NoStore>>,
        )
        .run(rx, shutdown.clone(), trigger),
    )
    .await
    .expect("stops on its own");
    assert_eq!((report.published, report.unsent), (0, 1));
    assert!(report.refused.unwrap().contains("KMS.DisabledException"));
    drop(tx);

    let (tx, rx) = mpsc::channel(8);
    let (trigger, shutdown) = shutdown_pair();
    tx.send(event(9)).await.unwrap();
    drop(tx);
    let patient = SinkSettings {
        permanent_failure_limit: Duration::from_secs(30),
        ..settings
    };
    let report = Sink::new(
        Flaky(0.into()),
        patient,
        test_signer(),
        Arc::new(Stats::default()),
        None::<Idempotency<NoStore>>,
    )
    .run(rx, shutdown, trigger)
    .await;
    assert_eq!(
        (report.published, report.refused),
        (1, None),
        "recovered in time"
    );
}

mod durable_store {
    //! The sink's store stage against the store's rules over a map (`MemoryStore`).
    use hookrelay_devtools::memory::MemoryStore;
    use hookrelay_ingest::idempotency::{RecordState, StoredRecord};

    use super::*;

    async fn run_with(
        queue: &ScriptedQueue,
        store: &MemoryStore,
        events: Vec<Received>,
    ) -> (SinkReport, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(4);
        let (trigger, shutdown) = shutdown_pair();
        let sink = Sink::new(
            queue,
            settings(),
            test_signer(),
            stats.clone(),
            Some(Idempotency::new(
                store.clone(),
                Duration::from_secs(10),
                Duration::from_secs(600),
            )),
        );
        let feeder = async move {
            for e in events {
                tx.send(e).await.unwrap();
            }
        };
        let (report, ()) = tokio::join!(sink.run(rx, shutdown, trigger), feeder);
        (report, stats)
    }

    #[tokio::test]
    async fn two_bridges_sharing_the_store_publish_each_event_once() {
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        let (first, _) = run_with(&queue, &store, (0..12).map(event).collect()).await;
        // A second bridge (a deploy overlap, a restart) reads the same events and more.
        let (second, stats) = run_with(&queue, &store, (0..15).map(event).collect()).await;
        assert_eq!((first.published, second.published), (12, 3));
        let accepted = queue.accepted.lock().unwrap().clone();
        assert_eq!(accepted.len(), 15);
        assert_eq!(accepted.iter().collect::<HashSet<_>>().len(), 15);
        assert_eq!(count(&stats.of(StreamSource::Rekko).duplicates), 12);
        assert!(store.keys().iter().all(|key| {
            store
                .record(key)
                .is_some_and(|r| r.state == RecordState::Published)
        }));
    }

    #[tokio::test]
    async fn a_key_another_claimant_holds_stays_buffered_until_its_claim_lapses() {
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        let held = event(0);
        let key = held.event.dedupe_key().as_str().to_owned();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        store.put(
            &key,
            StoredRecord {
                state: RecordState::InProgress {
                    owner: "the-other-bridge".to_owned(),
                    lapses_at: now + 1,
                },
                digest: held.event.content_digest(),
                expires_at: now + 1,
                claimed_at: None,
                maybe_sent_since: None,
            },
        );
        let (report, stats) = run_with(&queue, &store, vec![held, event(1)]).await;
        assert_eq!(report.published, 2, "sent once the other claim lapsed");
        assert!(count(&stats.of(StreamSource::Rekko).in_progress) >= 1);
        assert_eq!(queue.accepted.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_redelivered_heisenberg_frame_is_a_duplicate_not_a_conflict() {
        let frame = |delivered_at: &str| {
            let text = format!(
                r#"{{"type":"polymarket.trade","timestamp":"{delivered_at}","data":{{"id":"0xabc_0xdef","price":0.53,"slug":"m"}}}}"#
            );
            match hookrelay_ingest::providers::heisenberg::route_frame(text).unwrap() {
                hookrelay_ingest::providers::heisenberg::HeisenbergMessage::Event(event) => {
                    Received {
                        event,
                        at: OffsetDateTime::now_utc(),
                    }
                }
                _ => unreachable!("a data frame"),
            }
        };
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        let (report, stats) = run_with(
            &queue,
            &store,
            vec![frame("2026-05-27T13:50:00Z"), frame("2026-05-27T13:51:07Z")],
        )
        .await;
        // And once more from a second bridge (the store's judgement, not the window's).
        let (again, _) = run_with(&queue, &store, vec![frame("2026-05-27T14:00:00Z")]).await;
        assert_eq!((report.published, again.published), (1, 0));
        let heisenberg = stats.of(StreamSource::Heisenberg);
        assert_eq!(count(&heisenberg.duplicates), 1);
        assert_eq!(count(&heisenberg.conflicts), 0);
        assert_eq!(queue.accepted.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_store_holds_nothing_back() {
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        store.fail_next(1);
        let (report, stats) = run_with(&queue, &store, (0..3).map(event).collect()).await;
        assert_eq!(report.published, 3);
        assert_eq!(count(&stats.of(StreamSource::Rekko).store_failures), 1);
        assert_eq!(queue.accepted.lock().unwrap().len(), 3);
        // The one whose claim the store did not answer went out anyway, and was recorded
        // after its send, so a late retry of it is still a duplicate.
        assert_eq!(published_records(&store), 3);
    }

    #[tokio::test]
    async fn a_failed_send_releases_its_claims_and_the_retry_claims_again() {
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        queue.script.lock().unwrap().push_back(Script::CallFails);
        let (report, stats) = run_with(&queue, &store, (0..3).map(event).collect()).await;
        assert_eq!(report.published, 3);
        assert_eq!(count(&stats.of(StreamSource::Rekko).store_failures), 0);
        assert_eq!(queue.accepted.lock().unwrap().len(), 3);
        assert_eq!(published_records(&store), 3);
        assert!(
            store.calls() > 3 * 2,
            "a release after the failed call, a claim before the retry"
        );
    }

    #[tokio::test]
    async fn an_unanswered_claim_goes_out_under_its_content_key_and_is_recorded_under_the_key() {
        // The store answers neither claim call: the key may be another event's, so the
        // envelope `id` names this content; the commit then records the key for it.
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        store.fail_next(2);
        let received = event(0);
        let key = received.event.dedupe_key().as_str().to_owned();
        let (report, stats) = run_with(&queue, &store, vec![received]).await;
        assert_eq!(report.published, 1);
        assert!(count(&stats.of(StreamSource::Rekko).store_failures) >= 1);
        assert_eq!(count(&stats.of(StreamSource::Rekko).unrecorded), 0);
        let ids = queue.envelope_ids.lock().unwrap().clone();
        assert_eq!(ids.len(), 1);
        assert!(ids[0].starts_with(&format!("{key}#")), "{ids:?}");
        assert_eq!(store.record(&key).unwrap().state, RecordState::Published);
        // A second bridge reading it again finds it.
        let (again, _) = run_with(&queue, &store, vec![event(0)]).await;
        assert_eq!(again.published, 0);
    }

    #[tokio::test]
    async fn after_a_failed_send_under_its_content_key_the_retry_claims_the_key_again() {
        // The claim goes unanswered, so the event goes out under its content key, and that
        // send fails. The retry claims the key (not the content key), keeps the message it
        // may already be queued under, and commits the key: a later reading is a duplicate.
        let (queue, store) = (ScriptedQueue::default(), MemoryStore::default());
        store.fail_next(2);
        queue.script.lock().unwrap().push_back(Script::CallFails);
        let received = event(0);
        let key = received.event.dedupe_key().as_str().to_owned();
        let (report, _) = run_with(&queue, &store, vec![received]).await;
        assert_eq!(report.published, 1);
        let ids = queue.envelope_ids.lock().unwrap().clone();
        assert_eq!(ids.len(), 1);
        assert!(ids[0].starts_with(&format!("{key}#")), "{ids:?}");
        assert_eq!(store.record(&key).unwrap().state, RecordState::Published);
        assert!(
            store.record(&ids[0]).is_none(),
            "the content key is never claimed"
        );
        let (again, _) = run_with(&queue, &store, vec![event(0)]).await;
        assert_eq!(again.published, 0);
    }

    fn published_records(store: &MemoryStore) -> usize {
        store
            .keys()
            .iter()
            .filter(|key| {
                store
                    .record(key)
                    .is_some_and(|r| r.state == RecordState::Published)
            })
            .count()
    }
}
