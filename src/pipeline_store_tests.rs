//! Every transition of a key's record, through the pipeline as the receiver runs it,
//! against the store's rules over a map (`MemoryStore`; moto's DynamoDB in
//! tests/api/idempotency.rs).

use hookrelay::senders::ENGINE;
use hookrelay_devtools::memory::MemoryStore;
use hookrelay_ingest::claims::StoreOperation;
use hookrelay_ingest::idempotency::{COMMIT_CALLS, RecordState, StoredRecord};

use super::*;

const SECRET_A: &str = "engine-registration-a-secret";
const SECRET_B: &str = "engine-registration-b-secret";

type StorePipeline = Pipeline<RecordingPublisher, FixedClock, MemoryStore>;

/// One receiver instance: its own memory, the shared store and queue.
fn instance(publisher: &RecordingPublisher, store: &MemoryStore, now: i64) -> StorePipeline {
    let secrets = format!("{SECRET_A},{SECRET_B}");
    let config = config(&[("HOOKRELAY_ENGINE_SECRETS", &secrets)]);
    Pipeline::new(
        &config,
        publisher.clone(),
        FixedClock(OffsetDateTime::from_unix_timestamp(now).unwrap()),
        Stores {
            idempotency: Some(store.clone()),
            sequences: None::<NoSequences>,
        },
    )
}

fn engine(secret: &str, id: &str, sequence: u64, market: &str) -> InboundRequest {
    let body = format!(
        r#"{{"id":"{id}","sequence":{sequence},"eventType":"ORDER_MATCHED","marketId":"{market}","operatorId":"op-1","payload":{{"price":0.65}},"timestamp":"2026-02-18T23:00:00.000Z"}}"#
    );
    let secret = SigningSecret::from_key_bytes(secret.as_bytes());
    let headers = ENGINE.scheme.sign(&secret, None, body.as_bytes());
    InboundRequest {
        method: "POST".into(),
        path: "/engine".into(),
        headers: headers.into_iter().collect(),
        body: RequestBody::Text(body),
    }
}

async fn answer(p: &StorePipeline, request: InboundRequest) -> (u16, &'static str) {
    status(p.handle(request).await)
}

fn in_progress(owner: &str, expires_at: i64) -> StoredRecord {
    StoredRecord {
        state: RecordState::InProgress {
            owner: owner.to_owned(),
            lapses_at: expires_at,
        },
        digest: ContentDigest::from_stored(String::new()),
        expires_at,
        claimed_at: None,
        maybe_sent_since: None,
    }
}

#[tokio::test]
async fn a_key_published_by_one_instance_is_a_duplicate_on_a_cold_one_even_with_a_new_delivery_id()
{
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    let first = instance(&publisher, &store, T0);
    assert_eq!(
        answer(&first, engine(SECRET_A, "d-1", 42, "m")).await,
        (200, "accepted")
    );
    let record = store.record("engine:op-1:42").unwrap();
    assert_eq!(record.state, RecordState::Published);
    assert_eq!(record.expires_at, T0 + 604_800, "the 7-day TTL");
    // A cold instance (empty memory), later, with the engine's new delivery id.
    let cold = instance(&publisher, &store, T0 + 200);
    assert_eq!(
        answer(&cold, engine(SECRET_A, "d-2", 42, "m")).await,
        (200, "duplicate")
    );
    assert_eq!(publisher.len(), 1);
    // The same instance answers from memory, without a store call.
    let calls = store.calls();
    assert_eq!(
        answer(&first, engine(SECRET_A, "d-3", 42, "m")).await,
        (200, "duplicate")
    );
    assert_eq!(store.calls(), calls, "the window answers first");
}

#[tokio::test]
async fn a_key_in_progress_elsewhere_is_503_with_retry_after_and_lapses_when_its_owner_died() {
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    let p = instance(&publisher, &store, T0);
    // Learn the digest the way the pipeline computes it: publish once elsewhere.
    let scout_publisher = RecordingPublisher::default();
    let scout_store = MemoryStore::default();
    let scout = instance(&scout_publisher, &scout_store, T0);
    answer(&scout, engine(SECRET_A, "d-1", 7, "m")).await;
    let digest = scout_store.record("engine:op-1:7").unwrap().digest;
    let mut claim = in_progress("another-instance", T0 + 6);
    claim.digest = digest;
    store.put("engine:op-1:7", claim);

    let (sender, result) = p.handle(engine(SECRET_A, "d-1", 7, "m")).await;
    assert_eq!(sender.map(|s| s.name), Some("engine"));
    let rejection = result.unwrap_err();
    assert_eq!(rejection.status_and_code(), (503, "in_progress"));
    assert_eq!(rejection.retry_after_secs(), Some(6));
    assert!(publisher.is_empty());

    // The claimant died: past its expiry a retry goes through (on any instance).
    let later = instance(&publisher, &store, T0 + 7);
    assert_eq!(
        answer(&later, engine(SECRET_A, "d-1", 7, "m")).await,
        (200, "accepted")
    );
    assert_eq!(publisher.len(), 1);
}

#[tokio::test]
async fn a_failed_publish_releases_the_claim_so_the_retry_goes_through_in_full() {
    let publisher = RecordingPublisher::failing_first(1);
    let store = MemoryStore::default();
    let p = instance(&publisher, &store, T0);
    assert_eq!(
        answer(&p, engine(SECRET_A, "d-1", 9, "m")).await,
        (503, "queue_unavailable")
    );
    let released = store.record("engine:op-1:9").unwrap();
    assert!(
        matches!(released.state, RecordState::InProgress { lapses_at: 0, .. }),
        "released: lapsed at once, the key kept for its content"
    );
    let other = instance(&publisher, &store, T0 + 5);
    assert_eq!(
        answer(&other, engine(SECRET_A, "d-1", 9, "m")).await,
        (200, "accepted")
    );
    assert_eq!(publisher.len(), 1);
    assert_eq!(
        publisher.sent()[0].deduplication_id,
        format!("engine:op-1:9#{}", released.digest.as_str()),
        "the FIFO id names the content"
    );
}

#[tokio::test]
async fn a_publish_after_an_ambiguous_failure_counts_a_possible_copy_only_past_fifos_window() {
    // Both attempts fail after their request may have reached SQS. (The event's signed
    // time is T0; every delivery here is within the replay window around it.)
    let publisher = RecordingPublisher::failing_first_ambiguously(2);
    let store = MemoryStore::default();
    let first = instance(&publisher, &store, T0 - 150);
    for sequence in [21, 22] {
        assert_eq!(
            answer(&first, engine(SECRET_A, "d", sequence, "m")).await,
            (503, "queue_unavailable")
        );
    }
    // Well within FIFO's five minutes SQS drops a copy under the same id: nothing counted.
    let soon = instance(&publisher, &store, T0 + 139);
    let (_, within) = soon.handle(engine(SECRET_A, "d", 21, "m")).await;
    let within = within.unwrap().store;
    assert_eq!(within.possible_copy_of, None);
    assert_eq!(
        within.earlier_attempt_at,
        Some(T0 - 150),
        "still noted, for the log"
    );
    // Near or past them it may not: counted (10 s early), with the earlier claim's time.
    let late = instance(&publisher, &store, T0 + 141);
    let (_, past) = late.handle(engine(SECRET_A, "d", 22, "m")).await;
    assert_eq!(past.unwrap().store.possible_copy_of, Some(T0 - 150));
    // A definite failure (nothing sent) leaves nothing to count.
    let refused = RecordingPublisher::failing_first(1);
    let p = instance(&refused, &store, T0 - 150);
    assert_eq!(
        answer(&p, engine(SECRET_A, "d", 23, "m")).await,
        (503, "queue_unavailable")
    );
    let q = instance(&refused, &store, T0 + 151);
    let (_, again) = q.handle(engine(SECRET_A, "d", 23, "m")).await;
    assert_eq!(again.unwrap().store.possible_copy_of, None);
}

#[tokio::test]
async fn an_ambiguous_send_under_an_unanswered_claim_still_keeps_the_key_for_its_content() {
    // Both claim calls go unanswered (never written); the send fails ambiguously. The
    // key is then recorded for this content, so a twin can't take it.
    let publisher = RecordingPublisher::failing_first_ambiguously(1);
    let store = MemoryStore::default();
    store.fail_next(2);
    let first = instance(&publisher, &store, T0);
    let (_, failed) = first.handle(engine(SECRET_A, "a-1", 60, "m")).await;
    let Err(Rejection::QueueUnavailable { store: notes, .. }) = failed else {
        panic!("a 503");
    };
    assert!(!notes.unrecorded, "{notes:?}");
    let (_, twin) = instance(&publisher, &store, T0 + 1)
        .handle(engine(SECRET_B, "b-1", 60, "other"))
        .await;
    let twin = twin.unwrap();
    assert!(twin.dedupe_key.as_str().starts_with("engine:op-1:60#"));
    assert!(twin.store.conflict.is_some());
}

/// The envelope `id` of a queued message.
fn envelope_id(message: &hookrelay_ingest::queue::QueueMessage) -> String {
    let envelope: serde_json::Value = serde_json::from_str(&message.body).unwrap();
    envelope["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_unanswered_claim_goes_out_under_its_content_key_which_no_twin_can_share() {
    // Both claim calls go unanswered: the bare key may be a twin's, so the envelope `id`
    // names this content. The record then keeps the bare key for it.
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    store.fail_next(2);
    let first_instance = instance(&publisher, &store, T0);
    let (_, first) = first_instance
        .handle(engine(SECRET_A, "a-1", 70, "m"))
        .await;
    let first = first.unwrap();
    assert_eq!(first.outcome.as_str(), "accepted");
    assert!(
        first.store.conflict.is_none(),
        "not a conflict: counted as store failures"
    );
    assert!(first.dedupe_key.as_str().starts_with("engine:op-1:70#"));
    assert_eq!(envelope_id(&publisher.sent()[0]), first.dedupe_key.as_str());
    assert_eq!(
        store.record("engine:op-1:70").unwrap().state,
        RecordState::Published
    );
    // Its retry on the same instance while the store is still down: this instance's
    // memory says duplicate (it recorded the content under the key, not holding it).
    store.fail_next(2);
    let (_, again) = first_instance
        .handle(engine(SECRET_A, "a-1b", 70, "m"))
        .await;
    assert_eq!(again.unwrap().outcome.as_str(), "duplicate");
    assert_eq!(publisher.len(), 1);
    store.fail_next(0);
    // A twin later takes a key of its own; this content's retry is a duplicate.
    let (_, twin) = instance(&publisher, &store, T0 + 1)
        .handle(engine(SECRET_B, "b-1", 70, "other"))
        .await;
    let twin = twin.unwrap();
    assert!(twin.store.conflict.is_some());
    assert_ne!(twin.dedupe_key, first.dedupe_key);
    let cold = instance(&publisher, &store, T0 + 200);
    let retry = engine(SECRET_A, "a-1-late", 70, "m");
    assert_eq!(answer(&cold, retry).await, (200, "duplicate"));
    let ids: std::collections::HashSet<_> = publisher.sent().iter().map(envelope_id).collect();
    assert_eq!((publisher.len(), ids.len()), (2, 2), "two events, two ids");
}

#[tokio::test]
async fn an_unanswered_claim_beside_a_twin_that_holds_the_key_is_recorded_under_its_content_key() {
    // The twin holds the bare key; this event's claim goes unanswered, so it can't see
    // that. It goes out under its content key, and is recorded there (the bare key's
    // record is refused), so its late retry is a duplicate, not a second send.
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    let (_, twin) = instance(&publisher, &store, T0)
        .handle(engine(SECRET_B, "b-1", 71, "other"))
        .await;
    assert_eq!(twin.unwrap().dedupe_key.as_str(), "engine:op-1:71");
    store.fail_next(2);
    let (_, this) = instance(&publisher, &store, T0 + 1)
        .handle(engine(SECRET_A, "a-1", 71, "m"))
        .await;
    let this = this.unwrap();
    assert!(!this.store.unrecorded, "{:?}", this.store);
    let content_key = this.dedupe_key.as_str().to_owned();
    assert!(content_key.starts_with("engine:op-1:71#"));
    assert_eq!(
        store.record(&content_key).unwrap().state,
        RecordState::Published
    );
    let cold = instance(&publisher, &store, T0 + 200);
    let retry = engine(SECRET_A, "a-1-late", 71, "m");
    assert_eq!(answer(&cold, retry).await, (200, "duplicate"));
    let ids: Vec<_> = publisher.sent().iter().map(envelope_id).collect();
    assert_eq!(ids, ["engine:op-1:71".to_owned(), content_key]);

    // The same with an ambiguous send (a 503): its released record goes under the
    // content key too, and the retry finds it there (counted as a possible copy).
    let ambiguous = RecordingPublisher::failing_first_ambiguously(1);
    instance(&publisher, &store, T0)
        .handle(engine(SECRET_B, "b-2", 72, "other"))
        .await
        .1
        .unwrap();
    store.fail_next(2);
    let (_, failed) = instance(&ambiguous, &store, T0 - 150)
        .handle(engine(SECRET_A, "a-2", 72, "m"))
        .await;
    let Err(Rejection::QueueUnavailable { store: notes, .. }) = failed else {
        panic!("a 503");
    };
    assert!(!notes.unrecorded, "{notes:?}");
    let (_, retried) = instance(&ambiguous, &store, T0 + 150)
        .handle(engine(SECRET_A, "a-2", 72, "m"))
        .await;
    let retried = retried.unwrap();
    assert!(retried.dedupe_key.as_str().starts_with("engine:op-1:72#"));
    assert_eq!(retried.store.possible_copy_of, Some(T0 - 150));
}

#[tokio::test]
async fn on_a_standard_queue_a_publish_under_an_unanswered_claim_counts_a_possible_copy() {
    // The store could not show another attempt of this content (one sending at the same
    // time under the key, say), which a standard queue would keep.
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    let secrets = format!("{SECRET_A},{SECRET_B}");
    let config = config(&[
        ("HOOKRELAY_ENGINE_SECRETS", &secrets),
        ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:1/q"),
    ]);
    let standard = Pipeline::new(
        &config,
        publisher.clone(),
        FixedClock(OffsetDateTime::from_unix_timestamp(T0).unwrap()),
        Stores {
            idempotency: Some(store.clone()),
            sequences: None::<NoSequences>,
        },
    );
    store.fail_next(2);
    let (_, unanswered) = standard.handle(engine(SECRET_A, "a-1", 73, "m")).await;
    assert_eq!(unanswered.unwrap().store.possible_copy_of, Some(T0));
    let (_, answered) = standard.handle(engine(SECRET_A, "a-2", 74, "m")).await;
    assert_eq!(answered.unwrap().store.possible_copy_of, None);
    // On FIFO the same publish is dropped by SQS as a copy (one FIFO id): not counted.
    store.fail_next(2);
    let (_, fifo) = instance(&publisher, &store, T0)
        .handle(engine(SECRET_A, "a-3", 75, "m"))
        .await;
    assert_eq!(fifo.unwrap().store.possible_copy_of, None);
}

#[tokio::test]
async fn a_publish_the_store_recorded_nothing_for_is_counted() {
    // Two unanswered claims, then two unanswered records: the event is queued, but its
    // key may hold nothing.
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    store.fail_next(4);
    let (_, handled) = instance(&publisher, &store, T0)
        .handle(engine(SECRET_A, "a-1", 61, "m"))
        .await;
    let handled = handled.unwrap();
    assert_eq!(handled.outcome.as_str(), "accepted");
    assert!(handled.store.unrecorded);
    assert!(store.record("engine:op-1:61").is_none());
    // Answered on the second record call: recorded, nothing to count.
    store.fail_next(3);
    let (_, handled) = instance(&publisher, &store, T0)
        .handle(engine(SECRET_A, "a-2", 62, "m"))
        .await;
    assert!(!handled.unwrap().store.unrecorded);
    assert!(store.record("engine:op-1:62").is_some());
}

#[tokio::test]
async fn a_twin_after_a_failed_publish_goes_out_under_its_own_key_never_behind_the_first() {
    // The first send failed, perhaps ambiguously (it may be in the queue under the key):
    // another event reusing the key, arriving on a cold instance before the first one's
    // retry, must not take the key, or its send would stand behind the first one's.
    let publisher = RecordingPublisher::failing_first(1);
    let store = MemoryStore::default();
    let first = instance(&publisher, &store, T0);
    assert_eq!(
        answer(&first, engine(SECRET_A, "a-1", 40, "m")).await,
        (503, "queue_unavailable")
    );
    let cold = instance(&publisher, &store, T0 + 2);
    let (_, twin) = cold.handle(engine(SECRET_B, "b-1", 40, "other")).await;
    let twin = twin.unwrap();
    assert_eq!(twin.outcome.as_str(), "accepted");
    assert!(twin.store.conflict.is_some(), "a conflict, counted");
    assert!(twin.dedupe_key.as_str().starts_with("engine:op-1:40#"));
    // The first event's retry still goes out under the key, once.
    let retry = instance(&publisher, &store, T0 + 5);
    let (_, again) = retry.handle(engine(SECRET_A, "a-1", 40, "m")).await;
    let again = again.unwrap();
    assert_eq!(again.outcome.as_str(), "accepted");
    assert_eq!(again.dedupe_key.as_str(), "engine:op-1:40");
    let sent = publisher.sent();
    assert_eq!(sent.len(), 2);
    let ids: std::collections::HashSet<_> =
        sent.iter().map(|m| m.deduplication_id.as_str()).collect();
    assert_eq!(ids.len(), 2, "two events, two FIFO ids");
}

#[tokio::test]
async fn a_failing_store_never_refuses_a_delivery_and_still_records_it() {
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    let p = instance(&publisher, &store, T0);
    // The claim fails: published anyway, then recorded, so a late retry on a cold
    // instance (after SQS FIFO's window) is a duplicate.
    store.fail_next(1);
    let (_, result) = p.handle(engine(SECRET_A, "d-1", 11, "m")).await;
    let handled = result.unwrap();
    assert_eq!(handled.outcome.as_str(), "accepted");
    assert_eq!(handled.store.calls.failures.len(), 1);
    assert_eq!(handled.store.calls.failures[0].0, StoreOperation::Claim);
    assert_eq!(publisher.len(), 1);
    let recorded = store.record("engine:op-1:11").unwrap();
    assert_eq!(recorded.state, RecordState::Published);
    let cold = instance(&publisher, &store, T0 + 5);
    let late = engine(SECRET_A, "d-1-late", 11, "m");
    assert_eq!(answer(&cold, late).await, (200, "duplicate"));
    assert_eq!(publisher.len(), 1);

    // A commit the store did not answer is made again.
    store.fail_commits(1);
    let (_, result) = p.handle(engine(SECRET_A, "d-1", 12, "m")).await;
    let handled = result.unwrap();
    assert_eq!(handled.outcome.as_str(), "accepted");
    assert_eq!(handled.store.calls.failures.len(), 1);
    assert_eq!(handled.store.calls.failures[0].0, StoreOperation::Commit);
    let recorded = store.record("engine:op-1:12").unwrap();
    assert_eq!(recorded.state, RecordState::Published);

    // Up to `COMMIT_CALLS` times: then the claim is left to lapse, and the event is
    // still accepted.
    store.fail_commits(COMMIT_CALLS as usize);
    let (_, result) = p.handle(engine(SECRET_A, "d-1", 13, "m")).await;
    let handled = result.unwrap();
    assert_eq!(handled.outcome.as_str(), "accepted");
    assert_eq!(handled.store.calls.failures.len(), COMMIT_CALLS as usize);
    assert!(matches!(
        store.record("engine:op-1:13").unwrap().state,
        RecordState::InProgress { .. }
    ));
    assert_eq!(publisher.len(), 3);
}

#[tokio::test]
async fn two_registrations_reusing_operator_and_sequence_both_reach_the_queue_once() {
    let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
    let a = instance(&publisher, &store, T0);
    let b = instance(&publisher, &store, T0 + 1);
    assert_eq!(
        answer(&a, engine(SECRET_A, "a-1", 42, "market-a")).await,
        (200, "accepted")
    );
    let (_, second) = b.handle(engine(SECRET_B, "b-1", 42, "market-b")).await;
    let second = second.unwrap();
    assert_eq!(second.outcome.as_str(), "accepted");
    let conflict = second.store.conflict.expect("counted as a conflict");
    assert_eq!(conflict.key.as_str(), "engine:op-1:42");
    assert_ne!(conflict.recorded, conflict.this);
    assert_eq!(
        second.dedupe_key.as_str(),
        format!("engine:op-1:42#{}", conflict.this)
    );
    // Retries of either, on either instance (its memory or the store), are duplicates.
    for (p, request) in [
        (&a, engine(SECRET_A, "a-2", 42, "market-a")),
        (&a, engine(SECRET_B, "b-2", 42, "market-b")),
        (&b, engine(SECRET_B, "b-3", 42, "market-b")),
        (&b, engine(SECRET_A, "a-3", 42, "market-a")),
    ] {
        assert_eq!(answer(p, request).await, (200, "duplicate"));
    }
    let sent = publisher.sent();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0].deduplication_id, sent[1].deduplication_id);
    // The same rule in one instance's memory, without the store's help.
    let alone = RecordingPublisher::default();
    let p = Pipeline::new(
        &config(&[(
            "HOOKRELAY_ENGINE_SECRETS",
            &format!("{SECRET_A},{SECRET_B}"),
        )]),
        alone.clone(),
        FixedClock(OffsetDateTime::from_unix_timestamp(T0).unwrap()),
        Stores::NONE,
    );
    assert_eq!(
        status(p.handle(engine(SECRET_A, "a-1", 5, "x")).await),
        (200, "accepted")
    );
    assert_eq!(
        status(p.handle(engine(SECRET_B, "b-1", 5, "y")).await),
        (200, "accepted")
    );
    assert_eq!(
        status(p.handle(engine(SECRET_B, "b-2", 5, "y")).await),
        (200, "duplicate")
    );
    assert_eq!(alone.len(), 2);
}
