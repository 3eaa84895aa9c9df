//! The durable idempotency store as users get it: the shipped `hookrelay` binary under the
//! Lambda emulator, moto's DynamoDB table (created as template.yaml creates it) and a standard
//! SQS queue, which deduplicates nothing, so every extra copy would show. Each rule of
//! docs/contract.md's key lifecycle is driven through real connections: a key published by
//! one instance is a duplicate on a cold one (with the engine's new delivery id); a claim held
//! elsewhere is 503 `in_progress` with `Retry-After`; an expired claim lets the retry through;
//! two registrations reusing an operator and sequence both reach the queue once, also when the
//! first one's send failed ambiguously; an SQS answer that proves nothing is never `accepted`; a
//! store that does not answer never refuses a delivery.

use hookrelay_devtools::lambda_emulator::{Invocation, LambdaInstance, function_url_event};
use hookrelay_devtools::local_dynamodb;
use hookrelay_devtools::moto::moto;
use hookrelay_devtools::sender_sim;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::*;

const SECRET_A: &str = "idempotency-test-registration-a";
const SECRET_B: &str = "idempotency-test-registration-b";

struct Answer {
    status: i64,
    retry_after: Option<String>,
    body: serde_json::Value,
}

/// An engine delivery signed with `secret`. Every attempt of one event carries the event's
/// `timestamp` (the test's start, within the replay window), as the engine re-sends an event.
fn engine_event(secret: &str, id: &str, sequence: u64, market: &str) -> Vec<u8> {
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let now = STARTED.get_or_init(|| OffsetDateTime::now_utc().format(&Rfc3339).unwrap());
    let body = format!(
        r#"{{"id":"{id}","sequence":{sequence},"eventType":"ORDER_MATCHED","marketId":"{market}","operatorId":"op-idem","payload":{{"price":0.65}},"timestamp":"{now}"}}"#
    );
    let mut headers = serde_json::Map::new();
    for (name, value) in sender_sim::sign(hookrelay::senders::ENGINE, secret, None, body.as_bytes())
    {
        headers.insert(name.to_ascii_lowercase(), value.into());
    }
    function_url_event("POST", "/engine", headers, body, false)
}

async fn deliver(instance: &LambdaInstance, event: Vec<u8>) -> Answer {
    let Invocation::Response(json) = instance.invoke_raw(event).await else {
        panic!("the receiver failed the invocation");
    };
    let response: serde_json::Value = serde_json::from_slice(&json).unwrap();
    Answer {
        status: response["statusCode"].as_i64().unwrap(),
        retry_after: response["headers"]["retry-after"]
            .as_str()
            .map(str::to_owned),
        body: serde_json::from_str(response["body"].as_str().unwrap()).unwrap(),
    }
}

/// A receiver instance with the store on: a fresh process, so an empty in-memory window.
async fn instance(queue_url: &str, table: &str, dynamodb_endpoint: &str) -> LambdaInstance {
    instance_via(queue_url, table, dynamodb_endpoint, &moto().endpoint).await
}

/// A queue (FIFO or standard) and an idempotency table in moto, the table named after `test`;
/// the queue's client, URL and the table's name.
async fn queue_and_table(fifo: bool, test: &str) -> (aws_sdk_sqs::Client, String, String) {
    let endpoint = &moto().endpoint;
    let sqs = sqs_client(endpoint);
    let queue_url = create_queue(&sqs, &unique_queue_name(fifo)).await;
    let table = format!("hookrelay-{test}-{}", std::process::id());
    local_dynamodb::create_idempotency_table(&local_dynamodb::client(endpoint), &table)
        .await
        .unwrap();
    (sqs, queue_url, table)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_receiver_keeps_every_rule_of_the_key_lifecycle_against_dynamodb() {
    let endpoint = &moto().endpoint;
    let sqs = sqs_client(endpoint);
    let queue_url = create_queue(&sqs, &unique_queue_name(false)).await;
    let dynamodb = local_dynamodb::client(endpoint);
    let table = format!("hookrelay-idempotency-{}", std::process::id());
    local_dynamodb::create_idempotency_table(&dynamodb, &table)
        .await
        .unwrap();

    // Published by one instance, a duplicate on a cold one, with the engine's new delivery id.
    let first = instance(&queue_url, &table, endpoint).await;
    let answer = deliver(&first, engine_event(SECRET_A, "d-1", 100, "m-1")).await;
    assert_eq!(
        (answer.status, &answer.body["status"]),
        (200, &"accepted".into())
    );
    let published = local_dynamodb::record(&dynamodb, &table, "engine:op-idem:100")
        .await
        .expect("a record");
    assert_eq!(published.state, "published");
    let ttl = published.expires_at - OffsetDateTime::now_utc().unix_timestamp();
    assert!((604_700..=604_800).contains(&ttl), "7-day TTL, got {ttl} s");
    drop(first);
    let cold = instance(&queue_url, &table, endpoint).await;
    let answer = deliver(&cold, engine_event(SECRET_A, "d-2", 100, "m-1")).await;
    assert_eq!(
        (answer.status, &answer.body["status"]),
        (200, &"duplicate".into())
    );

    // A claim another instance holds: 503 `in_progress` with Retry-After, nothing sent. The
    // engine's digest leaves out the sequence, so event 101 (same content as 100) has the
    // digest just stored.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    local_dynamodb::put_claim(
        &dynamodb,
        &table,
        "engine:op-idem:101",
        "another-instance",
        &published.digest,
        now + 30,
    )
    .await
    .unwrap();
    let answer = deliver(&cold, engine_event(SECRET_A, "d-3", 101, "m-1")).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.body["error"], "in_progress");
    let wait: u64 = answer.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");

    // The claimant died: its claim expired (TTL has not deleted it yet), so the retry goes
    // through.
    local_dynamodb::put_claim(
        &dynamodb,
        &table,
        "engine:op-idem:101",
        "a-dead-instance",
        &published.digest,
        now - 1,
    )
    .await
    .unwrap();
    let answer = deliver(&cold, engine_event(SECRET_A, "d-4", 101, "m-1")).await;
    assert_eq!(
        (answer.status, &answer.body["status"]),
        (200, &"accepted".into())
    );

    // Two registrations (two secrets) reuse operator and sequence for different events: both
    // reach the queue, the second under its own key, and retries of either are duplicates.
    let answer = deliver(&cold, engine_event(SECRET_B, "b-1", 100, "m-other")).await;
    assert_eq!(
        (answer.status, &answer.body["status"]),
        (200, &"accepted".into())
    );
    let conflict_id = answer.body["id"].as_str().unwrap().to_owned();
    assert!(
        conflict_id.starts_with("engine:op-idem:100#"),
        "{conflict_id}"
    );
    drop(cold);
    let third = instance(&queue_url, &table, endpoint).await;
    for (secret, id, market) in [(SECRET_B, "b-2", "m-other"), (SECRET_A, "d-5", "m-1")] {
        let answer = deliver(&third, engine_event(secret, id, 100, market)).await;
        assert_eq!(
            (answer.status, &answer.body["status"]),
            (200, &"duplicate".into()),
            "{id}"
        );
    }
    drop(third);

    // A store that does not answer: still published, once, under its content key (the key
    // may be a twin's, which the store could not show).
    let (_hole, dead_endpoint) = black_hole();
    let unstored = instance(&queue_url, &table, &dead_endpoint).await;
    let answer = deliver(&unstored, engine_event(SECRET_A, "d-6", 102, "m-1")).await;
    assert_eq!(
        (answer.status, &answer.body["status"]),
        (200, &"accepted".into())
    );
    let unstored_id = answer.body["id"].as_str().unwrap().to_owned();
    assert!(
        unstored_id.starts_with("engine:op-idem:102#"),
        "{unstored_id}"
    );
    drop(unstored);

    let mut ids: Vec<String> = receive_all(&sqs, &queue_url)
        .await
        .iter()
        .map(|message| {
            hookrelay::Envelope::from_json(message.body().unwrap())
                .unwrap()
                .id
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "engine:op-idem:100".to_owned(),
            conflict_id,
            "engine:op-idem:101".to_owned(),
            unstored_id,
        ],
        "each event exactly once, the conflict and the unstored one under their content keys"
    );
}

/// Sequence gaps end to end: the shipped receiver with the detection on records what it
/// publishes; the shipped detector (a second Lambda) reports exactly the skipped sequences, as a
/// sealed `hookrelay.sequence_gap` event the library's consumer decodes; sequences that only
/// arrived out of order, and a second registration counting its own, report nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_detector_reports_exactly_the_skipped_sequences() {
    use hookrelay::consumer::{Consumer, EventHandler};
    use std::sync::Mutex;

    let endpoint = &moto().endpoint;
    let sqs = sqs_client(endpoint);
    let queue_url = create_queue(&sqs, &unique_queue_name(true)).await;
    let dynamodb = local_dynamodb::client(endpoint);
    let table = format!("hookrelay-gaps-idem-{}", std::process::id());
    let sequences = format!("hookrelay-gaps-seq-{}", std::process::id());
    local_dynamodb::create_idempotency_table(&dynamodb, &table)
        .await
        .unwrap();
    local_dynamodb::create_sequence_table(&dynamodb, &sequences)
        .await
        .unwrap();

    let secrets = format!("{SECRET_A},{SECRET_B}");
    let receiver = start_receiver(
        &queue_url,
        &[
            ("HOOKRELAY_ENGINE_SECRETS", secrets.as_str()),
            ("HOOKRELAY_IDEMPOTENCY_TABLE", table.as_str()),
            ("HOOKRELAY_SEQUENCE_GAPS", "on"),
            ("HOOKRELAY_SEQUENCE_TABLE", sequences.as_str()),
            ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str()),
        ],
    )
    .await;
    // Registration A skips 4 and 7-8; 10 arrives after 11 (out of order, not a gap).
    // Registration B counts its own sequences over the same operator: 4, 7, 8 without holes.
    for (secret, sequence) in [
        (SECRET_A, 1),
        (SECRET_A, 2),
        (SECRET_A, 3),
        (SECRET_A, 5),
        (SECRET_A, 6),
        (SECRET_A, 9),
        (SECRET_A, 11),
        (SECRET_A, 10),
        (SECRET_B, 4),
        (SECRET_B, 5),
        (SECRET_B, 6),
        (SECRET_B, 7),
        (SECRET_B, 8),
    ] {
        let market = if secret == SECRET_A { "a" } else { "b" };
        let id = format!("{market}-{sequence}");
        let answer = deliver(&receiver, engine_event(secret, &id, sequence, market)).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.body);
    }
    drop(receiver);

    let relay = hookrelay_devtools::relay_keys::env();
    let detector_env = [
        ("HOOKRELAY_QUEUE_URL", queue_url.as_str()),
        ("HOOKRELAY_SEQUENCE_TABLE", sequences.as_str()),
        ("HOOKRELAY_SEQUENCE_GAP_GRACE_SECS", "1"),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_hookrelay-gap-detector"));
    let detector = LambdaInstance::start(binary, &detector_env, None)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for _ in 0..2 {
        // The second pass finds nothing new: each gap is reported once.
        let Invocation::Response(answer) = detector.invoke_raw(b"{}".to_vec()).await else {
            panic!("the detector failed its invocation");
        };
        let _: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    }
    drop(detector);

    #[derive(Default, Clone)]
    struct Gaps(std::sync::Arc<Mutex<Vec<(u64, u64, String)>>>);
    impl EventHandler for Gaps {
        fn handle(&self, _: &hookrelay::Envelope, event: hookrelay::Event) -> Result<(), String> {
            if let hookrelay::Event::SequenceGap(gap) = event {
                self.0.lock().unwrap().push((
                    gap.first_missing,
                    gap.last_missing,
                    gap.registration,
                ));
            }
            Ok(())
        }
    }
    let found = Gaps::default();
    let consumer = Consumer::new(hookrelay_devtools::relay_keys::trust(), found.clone());
    // Drained (received and deleted): a FIFO group holds back the rest of its messages while
    // one is received and not deleted.
    let mut messages = Vec::new();
    hookrelay_devtools::local_sqs::drain(&sqs, &queue_url, 2, |message| {
        messages.push(message.clone())
    })
    .await
    .unwrap();
    let ids: Vec<String> = messages
        .iter()
        .map(|m| {
            hookrelay::Envelope::from_json(m.body().unwrap())
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(
        messages.len(),
        13 + 2,
        "every event, and two gap reports: {ids:?}"
    );
    for message in &messages {
        let attributes: std::collections::HashMap<String, String> = message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
            .collect();
        consumer
            .process(message.body(), &attributes)
            .unwrap_or_else(|error| panic!("refused: {error}"));
    }
    let mut gaps = found.0.lock().unwrap().clone();
    gaps.sort();
    let registrations: std::collections::HashSet<&String> = gaps.iter().map(|g| &g.2).collect();
    assert_eq!(registrations.len(), 1, "registration B has no gap");
    let ranges: Vec<(u64, u64)> = gaps.iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(ranges, vec![(4, 4), (7, 8)]);
}

/// The record a publish leaves when its claim got no answer or lapsed (the adapter's
/// `RECORD_CONDITION`, as DynamoDB evaluates it): written over nothing alive but this event's
/// own content, so a late retry is a duplicate and another event's record is never lost.
#[tokio::test]
async fn the_record_of_a_publish_writes_over_nothing_but_its_own_content() {
    use hookrelay_ingest::dedupe::DedupeKey;
    use hookrelay_ingest::idempotency::{ContentDigest, IdempotencyStore, StoreKey};

    let endpoint = &moto().endpoint;
    let dynamodb = local_dynamodb::client(endpoint);
    let table = format!("hookrelay-record-{}", std::process::id());
    local_dynamodb::create_idempotency_table(&dynamodb, &table)
        .await
        .unwrap();
    let store =
        hookrelay_aws::DynamoDbStore::from_sdk_config(&local_sdk_config(endpoint).await, &table);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let ours = ContentDigest::of(&[b"this event"]);
    let theirs = ContentDigest::of(&[b"another event"]);
    let key = |n: &str| StoreKey::new(&DedupeKey::new("engine", &["op-record", n]));
    let state = |n: &'static str| {
        let (dynamodb, table) = (dynamodb.clone(), table.clone());
        async move {
            let record =
                local_dynamodb::record(&dynamodb, &table, &format!("engine:op-record:{n}"))
                    .await
                    .expect("a record");
            (record.state, record.digest)
        }
    };
    let claimed_by_other = |n: &'static str, digest: &ContentDigest, expires_at: i64| {
        let (dynamodb, table, digest) = (dynamodb.clone(), table.clone(), digest.clone());
        async move {
            let key = format!("engine:op-record:{n}");
            local_dynamodb::put_claim(
                &dynamodb,
                &table,
                &key,
                "other",
                digest.as_str(),
                expires_at,
            )
            .await
            .unwrap();
        }
    };
    let record = |n: &'static str| {
        let (store, key, ours) = (&store, key(n), &ours);
        async move {
            store
                .record_published(&key, ours, "me", now, now + 600)
                .await
        }
    };

    // Absent: recorded.
    record("1").await.unwrap();
    assert_eq!(
        state("1").await,
        ("published".to_owned(), ours.as_str().to_owned())
    );
    // This event claimed by another claimant (its claim lapsed under us): recorded published.
    claimed_by_other("2", &ours, now + 30).await;
    record("2").await.unwrap();
    assert_eq!(state("2").await.0, "published");
    // Another event's live claim: left alone, and said (the caller records its content key).
    claimed_by_other("3", &theirs, now + 30).await;
    assert_eq!(
        record("3").await,
        Err(hookrelay_ingest::idempotency::StoreError::OtherContent)
    );
    assert_eq!(
        state("3").await,
        ("in_progress".to_owned(), theirs.as_str().to_owned())
    );
    // Another event's expired claim counts as absent.
    claimed_by_other("4", &theirs, now - 1).await;
    record("4").await.unwrap();
    assert_eq!(
        state("4").await,
        ("published".to_owned(), ours.as_str().to_owned())
    );
}

/// A store call recognises its own earlier attempt: when an attempt was written but its answer
/// was lost (the proxy forwards it, then drops the connection) the SDK's retry is refused by the
/// condition, and the adapter reads the item that refused it: our own claim holds, our own
/// commit is done, our own release is done. Against moto's DynamoDB, through the fault proxy.
#[tokio::test]
async fn a_store_call_whose_answer_was_lost_recognises_its_own_write() {
    use hookrelay_devtools::fault_proxy::{Fault, FaultProxy};
    use hookrelay_ingest::dedupe::DedupeKey;
    use hookrelay_ingest::idempotency::{
        ClaimDecision, ClaimRequest, ContentDigest, IdempotencyStore, StoreKey,
    };

    let endpoint = &moto().endpoint;
    let dynamodb = local_dynamodb::client(endpoint);
    let table = format!("hookrelay-own-{}", std::process::id());
    local_dynamodb::create_idempotency_table(&dynamodb, &table)
        .await
        .unwrap();
    // Every call's first attempt is written and its answer lost; the retry is answered.
    let plan = plan_scripting(&[Some(Fault::ResetAfter), None].repeat(4));
    let proxy = FaultProxy::start(endpoint, plan).await.unwrap();
    let store =
        hookrelay_aws::DynamoDbStore::from_sdk_config(&local_sdk_config(&proxy.url).await, &table);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let digest = ContentDigest::of(&[b"one event"]);
    let key = StoreKey::new(&DedupeKey::new("engine", &["op-own", "1"]));
    let claimed = store
        .claim(ClaimRequest {
            key: &key,
            digest: &digest,
            owner: "me",
            now,
            claim_expires_at: now + 10,
            owned_until: now + 600,
        })
        .await;
    // Our own claim holds; what its lost write replaced is unknown, so a possible copy is
    // counted from the start of time (an upper bound).
    let ours = Ok(ClaimDecision::Reclaimed {
        maybe_sent_since: 0,
    });
    assert_eq!(claimed, ours, "our own claim holds");
    store.commit(&key, "me", now + 600).await.unwrap();
    let record = local_dynamodb::record(&dynamodb, &table, key.as_str()).await;
    assert_eq!(record.map(|r| r.state).as_deref(), Some("published"));
    // A second key, claimed and released the same way.
    let other = StoreKey::new(&DedupeKey::new("engine", &["op-own", "2"]));
    let claimed = store
        .claim(ClaimRequest {
            key: &other,
            digest: &digest,
            owner: "me",
            now,
            claim_expires_at: now + 10,
            owned_until: now + 600,
        })
        .await;
    assert_eq!(claimed, ours);
    assert_eq!(
        store.release(&other, "me", Some(now)).await,
        Ok(()),
        "our own release is done"
    );
    // Released: the claim lapsed at once, the key keeps its content for the same content's retry.
    let released = local_dynamodb::record(&dynamodb, &table, other.as_str())
        .await
        .unwrap();
    assert_eq!(
        (released.state.as_str(), released.claim_until),
        ("in_progress", Some(0))
    );
    // Each of those calls really lost its first answer.
    assert_eq!(
        proxy.counts.of(Fault::ResetAfter),
        4,
        "four calls, four lost answers"
    );
}

/// A receiver instance with the store on whose SQS calls go through `sqs_endpoint`.
async fn instance_via(
    queue_url: &str,
    table: &str,
    dynamodb_endpoint: &str,
    sqs_endpoint: &str,
) -> LambdaInstance {
    let secrets = format!("{SECRET_A},{SECRET_B}");
    start_receiver(
        queue_url,
        &[
            ("HOOKRELAY_ENGINE_SECRETS", secrets.as_str()),
            ("HOOKRELAY_IDEMPOTENCY_TABLE", table),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint),
            ("AWS_ENDPOINT_URL_SQS", sqs_endpoint),
        ],
    )
    .await
}

/// The silent loss an independent audit found (docs/contract.md, "Exactly once"): event *a*'s
/// send fails ambiguously (SQS has it under its deduplication id, *a* is answered 503); its twin
/// *t* (the same operator and sequence from a second registration, other content) reaches a cold
/// instance before *a*'s retry. *t* must not take the key and be dropped by FIFO deduplication
/// as a copy of *a*: it goes out under its own key, and *a*'s retry under the key, each once.
#[tokio::test(flavor = "multi_thread")]
async fn a_twin_after_an_ambiguous_failure_is_queued_under_its_own_key_and_nothing_is_lost() {
    use hookrelay_devtools::fault_proxy::{Fault, FaultProxy};
    let endpoint = &moto().endpoint;
    let (sqs, queue_url, table) = queue_and_table(true, "twins").await;
    // The queue check at init passes; then each of the send's three attempts is queued and its
    // answer lost.
    let script = [
        None,
        Some(Fault::ResetAfter),
        Some(Fault::ResetAfter),
        Some(Fault::ResetAfter),
    ];
    let proxy = FaultProxy::start(endpoint, plan_scripting(&script))
        .await
        .unwrap();
    let first = instance_via(&queue_url, &table, endpoint, &proxy.url).await;
    let original = engine_event(SECRET_A, "a-1", 40, "market-a");
    let failed = deliver(&first, original.clone()).await;
    assert_eq!(
        (failed.status, failed.body["error"].as_str()),
        (503, Some("queue_unavailable"))
    );
    assert_eq!(
        proxy.counts.of(Fault::ResetAfter),
        3,
        "every attempt reached SQS"
    );

    let cold = instance(&queue_url, &table, endpoint).await;
    let twin = deliver(&cold, engine_event(SECRET_B, "b-1", 40, "market-b")).await;
    assert_eq!(twin.status, 200);
    assert_eq!(twin.body["status"], "accepted");
    let twin_id = twin.body["id"].as_str().unwrap().to_owned();
    assert!(twin_id.starts_with("engine:op-idem:40#"), "{twin_id}");

    let retry = deliver(&instance(&queue_url, &table, endpoint).await, original).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["id"], "engine:op-idem:40");

    let messages = receive_all(&sqs, &queue_url).await;
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| {
            hookrelay::Envelope::from_json(m.body().unwrap())
                .unwrap()
                .id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["engine:op-idem:40".to_owned(), twin_id], "each once");
}

/// SQS answered 200 but without a `MessageId`, twice: the receiver never answers `accepted` for
/// a send it cannot prove; the sender's retry goes through, and the queue holds the event once.
#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_answer_without_proof_of_receipt_is_never_accepted() {
    use hookrelay_devtools::fault_proxy::{Fault, FaultProxy};
    let endpoint = &moto().endpoint;
    let (sqs, queue_url, table) = queue_and_table(true, "unproven").await;
    let script = [None, Some(Fault::NoMessageId), Some(Fault::WrongMd5)];
    let proxy = FaultProxy::start(endpoint, plan_scripting(&script))
        .await
        .unwrap();
    let unproven = instance_via(&queue_url, &table, endpoint, &proxy.url).await;
    let event = engine_event(SECRET_A, "u-1", 77, "market-u");
    let answer = deliver(&unproven, event.clone()).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (503, Some("queue_unavailable"))
    );
    let retry = deliver(&instance(&queue_url, &table, endpoint).await, event).await;
    assert_eq!(
        (retry.status, retry.body["status"].as_str()),
        (200, Some("accepted"))
    );
    // Once: the second send's message; the retry's, under the same FIFO id, dropped by SQS.
    assert_eq!(receive_all(&sqs, &queue_url).await.len(), 1);
}

/// Upgrading to FIFO ids that name the content (docs/contract.md, "Exactly once"): a retry whose
/// earlier attempt, on an instance of the previous version, went to SQS under the bare key and
/// failed ambiguously is not dropped by SQS, so the event is queued twice with one envelope id
/// (the documented bound). Items the previous version wrote are read by the lifecycle test
/// above (claims without `claim_until` lapse at their own expiry).
#[tokio::test(flavor = "multi_thread")]
async fn an_event_queued_under_the_old_fifo_id_is_queued_once_more_under_the_new_one() {
    let endpoint = &moto().endpoint;
    let (sqs, queue_url, table) = queue_and_table(true, "upgrade").await;
    // The previous version's send: the bare key as its deduplication id (its answer was lost,
    // so it released the claim, deleting the item).
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(r#"{"version":1,"id":"engine:op-idem:88"}"#)
        .message_group_id("engine")
        .message_deduplication_id("engine:op-idem:88")
        .send()
        .await
        .unwrap();
    let retry = deliver(
        &instance(&queue_url, &table, endpoint).await,
        engine_event(SECRET_A, "up-1", 88, "m-up"),
    )
    .await;
    assert_eq!(
        (retry.status, retry.body["status"].as_str()),
        (200, Some("accepted"))
    );
    let ids: Vec<String> = receive_all(&sqs, &queue_url)
        .await
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        ["engine:op-idem:88", "engine:op-idem:88"],
        "one envelope id, twice"
    );
}
