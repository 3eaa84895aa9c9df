//! Every fixture in events/ through the real handler: the contract response for each, and
//! exactly the valid ones in the queue, with the envelope, attributes and FIFO ids the contract
//! promises.

use std::collections::HashMap;

use hookrelay::{Envelope, Event, events::EngineEvent, events::RekkoEvent};
use hookrelay_devtools::relay_keys;
use hookrelay_receiver::function_url;
use hookrelay_receiver::metrics::RequestMetrics;

use crate::helpers::*;

/// (fixture, status, `status` or `error` field) in the order a sender's traffic would arrive.
const EXPECTED: [(&str, i64, &str); 18] = [
    ("engine-valid", 200, "accepted"),
    ("engine-duplicate", 200, "duplicate"),
    ("engine-forged", 401, "invalid_signature"),
    ("engine-stale", 401, "stale_timestamp"),
    ("engine-malformed", 400, "malformed_payload"),
    ("engine-base64", 200, "accepted"),
    ("rekko-valid", 200, "accepted"),
    ("rekko-duplicate", 200, "duplicate"),
    ("rekko-forged", 401, "invalid_signature"),
    ("rekko-stale", 401, "stale_timestamp"),
    ("rekko-malformed", 400, "malformed_payload"),
    ("rekko-base64", 200, "accepted"),
    ("standard-valid", 200, "accepted"),
    ("standard-duplicate", 200, "duplicate"),
    ("standard-forged", 401, "invalid_signature"),
    ("standard-stale", 401, "stale_timestamp"),
    ("standard-malformed", 400, "malformed_payload"),
    ("standard-base64", 200, "accepted"),
];

const ACCEPTED: [(&str, &str); 6] = [
    ("engine-valid", "engine:op-7f3a:42"),
    ("engine-base64", "engine:op-7f3a:43"),
    ("rekko-valid", "rekko:"),
    ("rekko-base64", "rekko:"),
    ("standard-valid", "standard:msg_fixture_0001"),
    ("standard-base64", "standard:msg_fixture_0004"),
];

pub(crate) async fn run_all_fixtures(
    queue_name: &str,
) -> (aws_sdk_sqs::Client, String, HashMap<String, String>) {
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, queue_name).await;
    let pipeline = pipeline(&client, &queue_url, 2);
    let mut ids = HashMap::new();
    for (name, status, code) in EXPECTED {
        let (response, metrics, _store) =
            function_url::handle_measured(&pipeline, fixture(name), function_url::default_budget())
                .await;
        let (got_status, body) = read_response(&response);
        let provider = name.split('-').next().unwrap();
        match metrics {
            RequestMetrics::Accepted { provider: p, .. } => {
                assert_eq!((p, code), (provider, "accepted"))
            }
            RequestMetrics::Duplicate { provider: p } => {
                assert_eq!((p, code), (provider, "duplicate"))
            }
            RequestMetrics::Rejected {
                provider: p,
                reason,
            } => assert_eq!((p, reason), (provider, code)),
            RequestMetrics::PublishFailed { .. } => panic!("{name}: no publish should fail here"),
        }
        assert_eq!(got_status, status, "{name}: {body}");
        let field = if status == 200 { "status" } else { "error" };
        assert_eq!(body[field], code, "{name}: {body}");
        if status == 200 {
            ids.insert(name.to_owned(), body["id"].as_str().unwrap().to_owned());
        } else {
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{name}: {body}"
            );
        }
    }
    (client, queue_url, ids)
}

#[tokio::test]
async fn fifo_queue_receives_exactly_the_valid_fixtures_as_contract_envelopes() {
    let (client, queue_url, ids) = run_all_fixtures(&unique_queue_name(true)).await;
    assert_eq!(
        ids["engine-duplicate"], ids["engine-valid"],
        "a duplicate answers with the same id"
    );

    let messages = receive_all(&client, &queue_url).await;
    assert_eq!(
        messages.len(),
        ACCEPTED.len(),
        "only accepted deliveries are queued, once each"
    );

    for (fixture_name, key_prefix) in ACCEPTED {
        let id = &ids[fixture_name];
        assert!(id.starts_with(key_prefix), "{fixture_name}: {id}");
        let message = messages
            .iter()
            .find(|m| Envelope::from_json(m.body().unwrap()).unwrap().id == *id)
            .unwrap_or_else(|| panic!("{fixture_name} ({id}) is not in the queue"));
        let envelope = Envelope::from_json(message.body().unwrap()).unwrap();
        let event = fixture(fixture_name);
        let signed_body = fixture_body(fixture_name);

        // data is the signed body, byte for byte.
        assert_eq!(
            envelope.signed_data().as_bytes(),
            signed_body.as_slice(),
            "{fixture_name}"
        );
        let data: serde_json::Value = serde_json::from_slice(&signed_body).unwrap();
        assert_eq!(envelope.version, 1);
        assert_eq!(envelope.received_at, "2026-02-18T23:00:02.000Z");

        let attributes = message.message_attributes().unwrap();
        let attribute = |name: &str| {
            attributes
                .get(name)
                .and_then(|a| a.string_value())
                .map(str::to_owned)
        };
        assert_eq!(
            attribute("provider").as_deref(),
            Some(envelope.provider.as_str())
        );
        assert_eq!(
            attribute("event_type").as_deref(),
            Some(envelope.event_type.as_str())
        );
        assert_eq!(attribute("market_id"), envelope.market_id);
        assert_eq!(attribute("delivery_id"), envelope.delivery_id);

        let system = message.attributes().unwrap();
        let system_attribute = |name: &str| {
            system
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v.clone())
        };
        // The deduplication id names the key and the content: `{id}#{64 hex digits}`.
        let deduplication_id = system_attribute("MessageDeduplicationId").unwrap_or_default();
        let digest = deduplication_id
            .strip_prefix(&format!("{id}#"))
            .unwrap_or_default();
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{deduplication_id}"
        );
        // One group per provider and market (the provider alone without a market).
        let expected_group = match &envelope.market_id {
            Some(market) => format!("{}:{market}", envelope.provider),
            None => envelope.provider.clone(),
        };
        assert_eq!(
            system_attribute("MessageGroupId"),
            Some(expected_group),
            "{fixture_name}"
        );

        let header = |name: &str| event.headers.get(name).map(|v| v.to_owned());
        match envelope.provider.as_str() {
            "engine" => {
                assert_eq!(attribute("signature"), header("x-webhook-signature"));
                assert_eq!(envelope.event_type, data["eventType"]);
                assert_eq!(envelope.sequence, data["sequence"].as_u64());
                assert_eq!(envelope.market_id.as_deref(), data["marketId"].as_str());
                assert_eq!(envelope.delivery_id.as_deref(), data["id"].as_str());
                assert_eq!(envelope.occurred_at.as_deref(), data["timestamp"].as_str());
            }
            "rekko" => {
                assert_eq!(attribute("signature"), header("x-webhook-signature"));
                assert_eq!(envelope.event_type, data["type"]);
                assert_eq!(envelope.market_id.as_deref(), data["market_id"].as_str());
                assert_eq!(
                    (envelope.sequence, envelope.delivery_id.as_deref()),
                    (None, None)
                );
                assert_eq!(envelope.occurred_at.as_deref(), data["timestamp"].as_str());
            }
            "standard" => {
                assert_eq!(attribute("signature"), header("webhook-signature"));
                assert_eq!(envelope.event_type, data["type"]);
                assert_eq!(envelope.delivery_id, header("webhook-id"));
                assert_eq!(envelope.occurred_at, header("webhook-timestamp"));
                assert_eq!(envelope.market_id, None);
            }
            other => panic!("unexpected provider {other}"),
        }
    }
}

#[tokio::test]
async fn standard_queue_messages_carry_no_fifo_ids() {
    let (client, queue_url, _) = run_all_fixtures(&unique_queue_name(false)).await;
    let messages = receive_all(&client, &queue_url).await;
    assert_eq!(messages.len(), ACCEPTED.len());
    for message in &messages {
        let system = message.attributes().unwrap();
        assert!(
            !system
                .keys()
                .any(|k| matches!(k.as_str(), "MessageGroupId" | "MessageDeduplicationId")),
            "{system:?}"
        );
    }
}

#[tokio::test]
async fn consumers_decode_typed_events_and_re_verify_them() {
    let (client, queue_url, _) = run_all_fixtures(&unique_queue_name(true)).await;
    let messages = receive_all(&client, &queue_url).await;
    let secrets = |variable: &str, value: &str| {
        let relay = relay_keys::env();
        let vars = [
            ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1/q"),
            (relay[0].0, relay[0].1.as_str()),
            (relay[1].0, relay[1].1.as_str()),
            (variable, value),
        ];
        hookrelay_receiver::config::Config::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    };
    let engine = secrets("HOOKRELAY_ENGINE_SECRETS", ENGINE_SECRET)
        .secrets
        .of(hookrelay::senders::ENGINE)
        .unwrap()
        .clone();
    let rekko = secrets("HOOKRELAY_REKKO_SECRETS", REKKO_SECRET)
        .secrets
        .of(hookrelay::senders::REKKO)
        .unwrap()
        .clone();
    let standard = secrets("HOOKRELAY_STANDARD_SECRETS", STANDARD_SECRET)
        .secrets
        .of(hookrelay::senders::STANDARD)
        .unwrap()
        .clone();

    let mut order_matched = 0;
    let mut rekko_typed = 0;
    for message in &messages {
        let envelope = Envelope::from_json(message.body().unwrap()).unwrap();
        let signature = message.message_attributes().unwrap()["signature"]
            .string_value()
            .unwrap();
        let (right, wrong) = match envelope.provider.as_str() {
            "engine" => (&engine, &rekko),
            "rekko" => (&rekko, &standard),
            _ => (&standard, &engine),
        };
        envelope
            .verify_signature(signature, right)
            .expect("re-verifies with the sender's secret");
        assert!(envelope.verify_signature(signature, wrong).is_err());

        match envelope.event().unwrap() {
            Event::Engine(EngineEvent::OrderMatched(d)) => {
                assert_eq!(d.payload.price, 0.65);
                order_matched += 1;
            }
            Event::Rekko(RekkoEvent::PriceShift(_) | RekkoEvent::WhaleAlert(_)) => rekko_typed += 1,
            Event::Standard(s) => assert!(s.event_type.starts_with("invoice.")),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((order_matched, rekko_typed), (2, 2));
}
