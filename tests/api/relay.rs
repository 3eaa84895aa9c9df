//! The relay signature end to end, as users get it: genuine messages come from the receiver
//! binary (run under the Lambda emulator with the relay variables the template sets), attacks are
//! written straight into a real local SQS queue by someone who can send to it, and three
//! consumers read the queue: the crate's `Consumer`, the example Lambda's batch handler built from
//! its environment, and `examples/python/consume.py` (through tests/python/check_consumer.py,
//! with pyca/cryptography's Ed25519, not our code). Each must accept exactly the genuine messages
//! and a correctly rotated one, and refuse every attack.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use hookrelay::config::Env;
use hookrelay::consumer::{Consumer, EventHandler};
use hookrelay::relay::{self, RelaySigner, RelaySigningKey};
use hookrelay::{Envelope, Event};
use hookrelay_devtools::fixtures;
use hookrelay_devtools::lambda_emulator::Invocation;
use hookrelay_devtools::moto::moto;
use hookrelay_devtools::python_consumer;
use hookrelay_devtools::relay_keys;
use hookrelay_example_consumer::process_batch;
use time::OffsetDateTime;

use crate::helpers::*;

/// One message as written to the queue, and whether a consumer must accept it.
struct Case {
    name: &'static str,
    body: String,
    attributes: Vec<(String, String)>,
    accept: bool,
    age_only: bool,
}

struct Accepting;

impl EventHandler for Accepting {
    fn handle(&self, _: &Envelope, _: Event) -> Result<(), String> {
        Ok(())
    }
}

fn attributes_of(message: &Message) -> Vec<(String, String)> {
    let mut attributes: Vec<(String, String)> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
        .collect();
    attributes.sort();
    attributes
}

fn with_seal(
    attributes: &[(String, String)],
    seal: relay::RelaySignature,
) -> Vec<(String, String)> {
    let mut attributes: Vec<(String, String)> = attributes
        .iter()
        .filter(|(name, _)| !name.starts_with("relay_"))
        .cloned()
        .collect();
    attributes.extend([
        (relay::attributes::RELAY_ID.to_owned(), seal.id),
        (
            relay::attributes::RELAY_TIMESTAMP.to_owned(),
            seal.timestamp,
        ),
        (
            relay::attributes::RELAY_SIGNATURE.to_owned(),
            seal.signatures,
        ),
    ]);
    attributes
}

/// The genuine messages plus every attack on them.
fn cases(genuine: &[Message], now: i64) -> Vec<Case> {
    let mut cases = Vec::new();
    for message in genuine {
        cases.push(Case {
            name: "genuine",
            body: message.body().unwrap().to_owned(),
            attributes: attributes_of(message),
            accept: true,
            age_only: false,
        });
    }
    let template = genuine
        .iter()
        .find(|m| m.body().unwrap().contains("\"ORDER_MATCHED\""))
        .expect("the engine's ORDER_MATCHED went through");
    let body = template.body().unwrap().to_owned();
    let attributes = attributes_of(template);
    let id = Envelope::from_json(&body).unwrap().id;
    let other_market = body.replacen("\"market_id\":\"", "\"market_id\":\"x-", 1);
    assert_ne!(other_market, body);
    let attack = |name, body: String, attributes| Case {
        name,
        body,
        attributes,
        accept: false,
        age_only: false,
    };
    cases.push(attack(
        "unsealed",
        body.clone(),
        attributes
            .iter()
            .filter(|(name, _)| !name.starts_with("relay_"))
            .cloned()
            .collect(),
    ));
    cases.push(attack(
        "relabelled market",
        other_market.clone(),
        attributes.clone(),
    ));
    cases.push(attack(
        "relabelled type",
        body.replacen(
            "\"type\":\"ORDER_MATCHED\"",
            "\"type\":\"ORDER_CANCELLED\"",
            1,
        ),
        attributes.clone(),
    ));
    cases.push(attack(
        "foreign key",
        other_market.clone(),
        with_seal(
            &attributes,
            relay_keys::foreign_signer().sign(&id, now, &other_market),
        ),
    ));
    // A genuine seal of another envelope moved onto this one (the same body, another id).
    let moved_id = format!("{id}-other");
    cases.push(attack(
        "another envelope's seal",
        body.clone(),
        with_seal(
            &attributes,
            relay_keys::signer().sign(&moved_id, now, &body),
        ),
    ));
    cases.push(attack(
        "a signature entry that is not v1a",
        body.clone(),
        with_seal(&attributes, {
            let mut seal = relay_keys::signer().sign(&id, now, &body);
            seal.signatures = seal.signatures.replace("v1a,", "v1,");
            seal
        }),
    ));
    let too_old = now - relay::DEFAULT_MAX_AGE.as_secs() as i64 - 60;
    cases.push(Case {
        age_only: true,
        ..attack(
            "older than the maximum age",
            body.clone(),
            with_seal(&attributes, relay_keys::signer().sign(&id, too_old, &body)),
        )
    });
    cases.push(attack(
        "from the future",
        body.clone(),
        with_seal(
            &attributes,
            relay_keys::signer().sign(&id, now + 3600, &body),
        ),
    ));
    // More entries than hookrelay writes (four well-formed junk signatures, the genuine one last):
    // refused before any is checked, so a forged list can't cost a consumer seconds.
    cases.push(attack(
        "five signature entries",
        body.clone(),
        with_seal(&attributes, {
            let mut seal = relay_keys::signer().sign(&id, now, &body);
            let junk = format!("v1a,{}== ", "A".repeat(86));
            seal.signatures = format!("{}{}", junk.repeat(4), seal.signatures);
            seal
        }),
    ));
    // An envelope id holding a `.` is signed as its SHA-256 hex (sealed here with the trusted key,
    // as the receiver would).
    let dotted_id = format!("{id}.v2");
    let dotted = body.replacen(
        &format!("\"id\":\"{id}\""),
        &format!("\"id\":\"{dotted_id}\""),
        1,
    );
    assert_ne!(dotted, body);
    let seal = relay_keys::signer().sign(&dotted_id, now, &dotted);
    assert!(!seal.id.contains('.'));
    cases.push(Case {
        name: "an id with a dot, signed as its SHA-256",
        body: dotted.clone(),
        attributes: with_seal(&attributes, seal),
        accept: true,
        age_only: false,
    });
    // A rotation: the old key (still trusted) and a new one, two v1a entries.
    let rotating = RelaySigner::new(vec![
        RelaySigningKey::from_seed(*b"the next relay key, in rotation!"),
        relay_keys::signing_key(),
    ])
    .unwrap();
    let seal = rotating.sign(&id, now, &body);
    assert_eq!(seal.signatures.split(' ').count(), 2);
    cases.push(Case {
        name: "rotation, two v1a entries",
        body: body.clone(),
        attributes: with_seal(&attributes, seal),
        accept: true,
        age_only: false,
    });
    cases
}

/// A standard queue holding `cases`, and each message id's case index.
async fn queue_of(client: &Client, cases: &[Case]) -> (String, HashMap<String, usize>) {
    let queue_url = create_queue(client, &unique_queue_name(false)).await;
    let mut ids = HashMap::new();
    for (index, case) in cases.iter().enumerate() {
        let attributes = case
            .attributes
            .iter()
            .map(|(name, value)| {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .unwrap();
                (name.clone(), value)
            })
            .collect();
        let sent = client
            .send_message()
            .queue_url(&queue_url)
            .message_body(&case.body)
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .unwrap();
        ids.insert(sent.message_id.unwrap(), index);
    }
    (queue_url, ids)
}

/// Which case names each consumer accepted and refused, to compare with the expectation.
fn verdicts(cases: &[Case], accepted: impl Fn(usize) -> bool) -> BTreeMap<String, (bool, bool)> {
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| (format!("{i:02} {}", case.name), (case.accept, accepted(i))))
        .collect()
}

fn assert_verdicts(consumer: &str, verdicts: &BTreeMap<String, (bool, bool)>) {
    let wrong: Vec<_> = verdicts
        .iter()
        .filter(|(_, (expected, got))| expected != got)
        .map(|(name, (expected, _))| format!("{name}: expected accepted={expected}"))
        .collect();
    assert!(wrong.is_empty(), "{consumer} got these wrong: {wrong:#?}");
}

#[tokio::test]
async fn every_consumer_accepts_what_hookrelay_sealed_and_refuses_every_attack() {
    let client = sqs_client(&moto().endpoint);
    let receiver_queue = create_queue(&client, &unique_queue_name(true)).await;
    let instance = start_receiver(
        &receiver_queue,
        &[
            ("HOOKRELAY_ENGINE_SECRETS", ENGINE_SECRET),
            ("HOOKRELAY_REKKO_SECRETS", REKKO_SECRET),
            ("HOOKRELAY_STANDARD_SECRETS", STANDARD_SECRET),
        ],
    )
    .await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for provider in ["engine", "rekko", "standard"] {
        let event = fixtures::render(provider, "valid", now).unwrap();
        let Invocation::Response(answer) = instance.invoke_raw(event.into_bytes()).await else {
            panic!("{provider}: the invocation failed");
        };
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["statusCode"], 200, "{provider}: {answer}");
    }
    let genuine = receive_all(&client, &receiver_queue).await;
    assert_eq!(genuine.len(), 3, "one message per provider");
    let cases = cases(&genuine, now);

    // The crate's consumer, with the default maximum age.
    let (queue, ids) = queue_of(&client, &cases).await;
    let consumer = Consumer::new(relay_keys::trust(), Accepting);
    let mut results = HashMap::new();
    for message in receive_all(&client, &queue).await {
        let attributes: HashMap<String, String> = attributes_of(&message).into_iter().collect();
        let index = ids[message.message_id().unwrap()];
        let result = consumer.process(message.body(), &attributes);
        if cases[index].age_only {
            assert!(
                result.as_ref().unwrap_err().is_age_only(),
                "{}",
                cases[index].name
            );
        }
        results.insert(index, result.is_ok());
    }
    assert_eq!(results.len(), cases.len());
    assert_verdicts("the crate's Consumer", &verdicts(&cases, |i| results[&i]));

    // The example Lambda's handler, configured as the template configures it: public keys only.
    let (queue, ids) = queue_of(&client, &cases).await;
    let public_keys = relay_keys::signing_key().public_key().to_string();
    let public = public_keys.clone();
    let template_env =
        Env::new(move |name: &str| (name == "HOOKRELAY_RELAY_PUBLIC_KEYS").then(|| public.clone()));
    let lambda = Consumer::from_env(&template_env, Accepting).unwrap();
    let mut event = SqsEvent::default();
    event.records = receive_all(&client, &queue)
        .await
        .iter()
        .map(lambda_record)
        .collect();
    assert_eq!(event.records.len(), cases.len());
    let failed: Vec<usize> = process_batch(&lambda, event)
        .batch_item_failures
        .iter()
        .map(|failure| ids[&failure.item_identifier])
        .collect();
    assert_verdicts(
        "the example Lambda",
        &verdicts(&cases, |i| !failed.contains(&i)),
    );

    // The Python consumer, in its own process, with the same public key.
    let (queue, ids) = queue_of(&client, &cases).await;
    let mut python = HashMap::new();
    for verdict in python_consumer::verdicts(&moto().endpoint, &queue, &public_keys) {
        let index = ids[&verdict.message_id];
        if cases[index].age_only {
            assert!(verdict.age_only, "{verdict:?}");
        }
        python.insert(index, verdict.accepted);
    }
    assert_eq!(python.len(), cases.len());
    assert_verdicts("the Python consumer", &verdicts(&cases, |i| python[&i]));

    // Without public keys the example Lambda does not start, and the loud opt-out is the only
    // way to run without verifying.
    let none = Env::new(|_: &str| None);
    assert!(Consumer::from_env(&none, Accepting).is_err());
    let insecure = Env::new(|name: &str| {
        (name == "HOOKRELAY_RELAY_VERIFICATION").then(|| "insecure-off".to_owned())
    });
    assert!(
        !Consumer::from_env(&insecure, Accepting)
            .unwrap()
            .verifies_relay_signatures()
    );
}
