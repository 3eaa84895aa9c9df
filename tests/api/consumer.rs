//! The consumer side against real queue messages: the committed JSON Schema matches the Rust
//! types and every message the receiver queued, and the example consumer reports exactly the
//! bad messages of a batch as failures.

use std::sync::Mutex;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use hookrelay::config::Env;
use hookrelay::consumer::{Consumer, EventHandler};
use hookrelay::secret::SenderSecrets;
use hookrelay::{Envelope, Event};
use hookrelay_devtools::relay_keys;
use hookrelay_example_consumer::{process, process_batch};

use crate::fixtures::run_all_fixtures;
use crate::helpers::*;

const SCHEMA_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schema/envelope.v1.schema.json"
);

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(SCHEMA_PATH).expect("schema/envelope.v1.schema.json exists");
    serde_json::from_str(&text).unwrap()
}

#[cfg(feature = "json-schema")]
#[test]
fn the_committed_schema_is_generated_from_the_rust_types() {
    let generated = serde_json::to_string_pretty(&Envelope::json_schema()).unwrap() + "\n";
    if std::env::var_os("HOOKRELAY_UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_PATH, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/envelope.v1.schema.json is stale; regenerate with \
         HOOKRELAY_UPDATE_SCHEMA=1 cargo test --all-features --test api committed_schema"
    );
}

#[tokio::test]
async fn every_queued_message_validates_against_the_committed_schema() {
    let (client, queue_url, _) = run_all_fixtures(&unique_queue_name(true)).await;
    let messages = receive_all(&client, &queue_url).await;
    assert!(!messages.is_empty());
    let validator = jsonschema::validator_for(&committed_schema()).expect("the schema compiles");
    for message in &messages {
        let body: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{body}");

        let mut other_version = body.clone();
        other_version["version"] = 2.into();
        assert!(
            !validator.is_valid(&other_version),
            "the v1 schema must refuse version 2"
        );
        let mut no_id = body.clone();
        no_id.as_object_mut().unwrap().remove("id");
        assert!(!validator.is_valid(&no_id));
    }
}

#[test]
fn stream_envelopes_validate_against_the_committed_schema_and_pass_the_consumer() {
    use hookrelay_devtools::stream_sim::trade_frame;
    use hookrelay_ingest::dedupe::DedupeKey;
    use hookrelay_ingest::stream::{StreamEvent, StreamSource};
    // As the bridge routes a trade frame (its routing is tested in the bridge).
    let event = StreamEvent::stream(
        StreamSource::Heisenberg,
        "polymarket.trade".to_owned(),
        DedupeKey::new("heisenberg", &["trade-7"]),
        Some("btc-updown-5m-1779889800".to_owned()),
        None,
        trade_frame(7, "btc-updown-5m-1779889800"),
    )
    .unwrap();
    let message = event.queue_message(time::OffsetDateTime::now_utc(), &relay_keys::signer());
    let body: serde_json::Value = serde_json::from_str(&message.body).unwrap();
    let validator = jsonschema::validator_for(&committed_schema()).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{body}");
    let mut bad_via = body.clone();
    bad_via["via"] = "carrier-pigeon".into();
    assert!(!validator.is_valid(&bad_via));

    // No sender signature, yet accepted: a stream event has none to re-check, even when the
    // consumer holds secrets; the relay signature (which covers `via`) is what proves it.
    let secrets = SenderSecrets::from_env(&Env::new(|name| {
        (name == "HOOKRELAY_REKKO_SECRETS").then(|| REKKO_SECRET.to_owned())
    }))
    .unwrap();
    let collected = Collected::default();
    let consumer = Consumer::new(relay_keys::trust(), &collected).with_sender_secrets(secrets);
    let record = |body: &str, attributes: &[(&str, String)]| -> SqsMessage {
        let attributes: serde_json::Map<String, serde_json::Value> = attributes
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    serde_json::json!({"stringValue": value, "dataType": "String"}),
                )
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "messageId": "m-1", "body": body, "messageAttributes": attributes
        }))
        .unwrap()
    };
    assert!(process(&consumer, &record(&message.body, &message.attributes)).is_ok());
    assert_eq!(
        collected.0.lock().unwrap().as_slice(),
        [event.dedupe_key().as_str()]
    );

    // Claiming `via: stream` does not excuse a provider without a stream from its signature,
    // even under a genuine relay seal (which hookrelay never puts on such an envelope).
    let secrets = SenderSecrets::from_env(&Env::new(|name| {
        (name == "HOOKRELAY_ENGINE_SECRETS").then(|| ENGINE_SECRET.to_owned())
    }))
    .unwrap();
    let consumer = Consumer::new(relay_keys::trust(), &collected).with_sender_secrets(secrets);
    let forged = r#"{"version":1,"id":"engine:op:1","provider":"engine","via":"stream","type":"ORDER_MATCHED","market_id":null,"sequence":1,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:01.250Z","data":{"sequence":1,"eventType":"ORDER_MATCHED","timestamp":"2026-02-18T23:00:00Z","payload":null}}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let seal = relay_keys::signer().sign("engine:op:1", now, forged);
    let sealed = [
        ("relay_id", seal.id),
        ("relay_timestamp", seal.timestamp),
        ("relay_signature", seal.signatures),
    ];
    assert!(matches!(
        process(&consumer, &record(forged, &sealed)),
        Err(hookrelay::consumer::ConsumeError::NoSignature)
    ));
}

#[derive(Default)]
struct Collected(Mutex<Vec<String>>);

impl EventHandler for &Collected {
    fn handle(&self, envelope: &Envelope, event: Event) -> Result<(), String> {
        assert!(!matches!(event, Event::UnknownProvider { .. }));
        self.0.lock().unwrap().push(envelope.id.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_consumer_fails_only_the_poison_and_the_tampered_message() {
    let (client, queue_url, _) = run_all_fixtures(&unique_queue_name(true)).await;
    let genuine = receive_all(&client, &queue_url).await;

    // A message that isn't an envelope, and a genuine envelope whose data was altered after
    // hookrelay queued it (its attributes, relay seal included, still the genuine ones).
    let original = genuine
        .iter()
        .find(|m| m.body().unwrap().contains("\"price\":0.65"))
        .unwrap();
    let tampered_body = original
        .body()
        .unwrap()
        .replacen("\"price\":0.65", "\"price\":0.95", 1);
    // The same altered data resealed with the trusted relay key (a writer holding the relay key
    // but not the sender's secret): only the sender's own signature can catch it.
    let envelope_id = Envelope::from_json(&tampered_body).unwrap().id;
    let seal = relay_keys::signer().sign(&envelope_id, FIXTURE_TIME, &tampered_body);
    let mut resealed = original.message_attributes().cloned().unwrap_or_default();
    for (name, value) in [
        ("relay_id", seal.id),
        ("relay_timestamp", seal.timestamp),
        ("relay_signature", seal.signatures),
    ] {
        resealed.insert(
            name.to_owned(),
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .unwrap(),
        );
    }
    let mut bad_ids = Vec::new();
    for (body, attributes) in [
        ("poison: not an envelope", None),
        (tampered_body.as_str(), original.message_attributes()),
        (tampered_body.as_str(), Some(&resealed)),
    ] {
        let sent = client
            .send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .set_message_attributes(attributes.cloned())
            .message_group_id("tests")
            .message_deduplication_id(format!("bad-{}", bad_ids.len()))
            .send()
            .await
            .unwrap();
        bad_ids.push(sent.message_id.unwrap());
    }
    let batch = receive_all(&client, &queue_url).await;
    assert_eq!(batch.len(), 3);

    let mut event = SqsEvent::default();
    event.records = genuine.iter().chain(&batch).map(lambda_record).collect();
    let secrets = SenderSecrets::from_env(&Env::new(|name| match name {
        "HOOKRELAY_ENGINE_SECRETS" => Some(ENGINE_SECRET.into()),
        "HOOKRELAY_REKKO_SECRETS" => Some(REKKO_SECRET.into()),
        "HOOKRELAY_STANDARD_SECRETS" => Some(STANDARD_SECRET.into()),
        _ => None,
    }))
    .unwrap();
    let collected = Collected::default();
    // The fixtures were received (and sealed) at the fixtures' signing time.
    let consumer = Consumer::new(relay_keys::trust(), &collected)
        .with_sender_secrets(secrets)
        .with_clock(|| FIXTURE_TIME + 60);
    let response = process_batch(&consumer, event);

    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let resealed_id = bad_ids[2].clone();
    failed.sort();
    bad_ids.sort();
    assert_eq!(
        failed, bad_ids,
        "exactly the poison and the two tampered messages fail"
    );
    let resealed_record = lambda_record(
        batch
            .iter()
            .find(|m| m.message_id() == Some(resealed_id.as_str()))
            .unwrap(),
    );
    assert!(
        matches!(
            process(&consumer, &resealed_record),
            Err(hookrelay::consumer::ConsumeError::Unverified(_))
        ),
        "the resealed message passes the relay check and fails the sender's signature"
    );
    assert_eq!(
        collected.0.lock().unwrap().len(),
        genuine.len(),
        "every genuine event was handled"
    );
}
