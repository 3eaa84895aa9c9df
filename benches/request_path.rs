//! The request path in-process, against its floor (`scripts/bench.sh` runs it; BENCHMARKS.md has
//! the results).
//!
//! For each sender and for 1 KiB and 16 KiB bodies, three measurements of the same bytes:
//! - `floor`: what any receiver must do: HMAC-SHA256 of the signed bytes and a plain serde_json
//!   parse of the routing fields into borrowed strings;
//! - `pipeline`: [`Pipeline::handle`]: route, verify, parse, replay check, dedupe, envelope;
//! - `lambda_event`: the Function URL event's JSON bytes in, the response's JSON bytes out,
//!   through [`function_url::handle_measured`], with its JSON log line (formatted, written to a
//!   sink) and its EMF document: what the Lambda does in-process per invocation.
//!
//! The publisher does nothing (the SQS round trip is measured under the Lambda emulator by
//! `hookrelay-lambda-bench`). Every iteration is a new event: a pool of 4,096 distinct signed
//! deliveries is cycled through a dedupe window of 1,024 keys, so each lookup misses and each
//! record evicts, the steady state of a full window.

use std::cell::Cell;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{KeyInit, Mac};
use hookrelay_devtools::audit::test_keys;
use hookrelay_devtools::sender_sim::{EventSpec, Sender, SignedDelivery};
use hookrelay_ingest::queue::{PublishError, Publisher, QueueMessage, Sent};
use hookrelay_receiver::config::Config;
use hookrelay_receiver::function_url;
use hookrelay_receiver::function_url::FunctionUrlRequest;
use hookrelay_receiver::metrics;
use hookrelay_receiver::outcome::{Handled, Outcome};
use hookrelay_receiver::pipeline::{FixedClock, InboundRequest, Pipeline, RequestBody, Stores};
use serde::Deserialize;
use time::OffsetDateTime;

const SIGNED_AT: i64 = 1_771_455_600;
const POOL: u64 = 4096;
const DEDUPE_CAPACITY: &str = "1024";
const BODY_SIZES: [usize; 2] = [1024, 16 * 1024];

/// Accepts every message and keeps none.
struct DiscardingPublisher;

impl Publisher for DiscardingPublisher {
    async fn publish(
        &self,
        message: &QueueMessage,
        _: std::time::Duration,
    ) -> Result<Sent, PublishError> {
        black_box(message);
        Ok(Sent::default())
    }
}

/// Runs a future that never waits (the publisher above answers at once) to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the discarding publisher never waits"),
    }
}

fn pipeline() -> Pipeline<DiscardingPublisher, FixedClock> {
    let keys = test_keys();
    let relay = hookrelay_devtools::relay_keys::env();
    let vars = [
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        (
            "HOOKRELAY_QUEUE_URL",
            "http://127.0.0.1:1/000000000000/bench.fifo",
        ),
        ("HOOKRELAY_ENGINE_SECRETS", keys.engine.as_str()),
        ("HOOKRELAY_REKKO_SECRETS", keys.rekko.as_str()),
        ("HOOKRELAY_STANDARD_SECRETS", keys.standard.as_str()),
        ("HOOKRELAY_DEDUPE_CAPACITY", DEDUPE_CAPACITY),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("the benchmark configuration is valid");
    let now = OffsetDateTime::from_unix_timestamp(SIGNED_AT + 1).expect("a valid instant");
    Pipeline::new(&config, DiscardingPublisher, FixedClock(now), Stores::NONE)
}

fn deliveries(sender: Sender, body_len: usize) -> Vec<SignedDelivery> {
    let keys = test_keys();
    (0..POOL)
        .map(|n| EventSpec::of(sender, n).sign_padded(&keys, SIGNED_AT as f64, body_len))
        .collect()
}

fn inbound_request(delivery: &SignedDelivery) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        path: delivery.path.to_owned(),
        headers: delivery
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .collect(),
        body: RequestBody::Text(String::from_utf8(delivery.body.clone()).expect("JSON text")),
    }
}

// The floor's routing fields: the same fields hookrelay routes on, borrowed, nothing else.
#[allow(dead_code)]
#[derive(Deserialize)]
struct EngineRouting<'a> {
    id: &'a str,
    sequence: u64,
    #[serde(rename = "eventType")]
    event_type: &'a str,
    #[serde(rename = "marketId")]
    market_id: Option<&'a str>,
    #[serde(rename = "operatorId")]
    operator_id: &'a str,
    timestamp: &'a str,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct RekkoRouting<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    market_id: Option<&'a str>,
    timestamp: &'a str,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct StandardRouting<'a> {
    #[serde(rename = "type")]
    event_type: Option<&'a str>,
}

/// HMAC-SHA256 over the bytes the sender signed, and the routing fields parsed.
fn floor(sender: Sender, keys: &[u8], delivery: &SignedDelivery) -> bool {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(keys).expect("any key length");
    if sender == Sender::Standard {
        let header = |name| {
            let value = delivery.headers.iter().find(|(n, _)| *n == name);
            value.map_or("", |(_, value)| value.as_str())
        };
        mac.update(header("webhook-id").as_bytes());
        mac.update(b".");
        mac.update(header("webhook-timestamp").as_bytes());
        mac.update(b".");
    }
    mac.update(&delivery.body);
    let tag = mac.finalize().into_bytes();
    let parsed = match sender {
        Sender::Engine => serde_json::from_slice::<EngineRouting>(&delivery.body).is_ok(),
        Sender::Rekko => serde_json::from_slice::<RekkoRouting>(&delivery.body).is_ok(),
        Sender::Standard => serde_json::from_slice::<StandardRouting>(&delivery.body).is_ok(),
    };
    black_box(tag);
    parsed
}

fn floor_key(sender: Sender) -> Vec<u8> {
    use base64::Engine as _;
    let keys = test_keys();
    match sender {
        Sender::Engine => keys.engine.into_bytes(),
        Sender::Rekko => keys.rekko.into_bytes(),
        Sender::Standard => base64::engine::general_purpose::STANDARD
            .decode(keys.standard.trim_start_matches("whsec_"))
            .expect("a base64 key"),
    }
}

fn accepted(handled: &Result<Handled, impl std::fmt::Debug>) -> bool {
    matches!(
        handled,
        Ok(Handled {
            outcome: Outcome::Accepted { .. },
            ..
        })
    )
}

/// The next index into the pool, round-robin.
fn cycle(next: &Cell<usize>, len: usize) -> usize {
    let index = next.get();
    next.set((index + 1) % len);
    index
}

fn request_path(c: &mut Criterion) {
    // The receiver's log lines, formatted as in Lambda (JSON) and thrown away.
    let _ = tracing::subscriber::set_global_default(hookrelay_ingest::telemetry::subscriber(
        "info",
        true,
        std::io::sink,
        &[],
    ));
    for sender in [Sender::Engine, Sender::Rekko, Sender::Standard] {
        for body_len in BODY_SIZES {
            let pool = deliveries(sender, body_len);
            assert!(pool.iter().all(|d| d.body.len() == body_len));
            let name = format!(
                "request_path/{}/{}KiB",
                pool[0].path.trim_start_matches('/'), // the route names the sender
                body_len / 1024
            );
            let mut group = c.benchmark_group(&name);
            group.throughput(Throughput::Bytes(body_len as u64));

            let key = floor_key(sender);
            assert!(
                pool.iter().all(|d| floor(sender, &key, d)),
                "the floor parses"
            );
            let next = Cell::new(0);
            group.bench_function("floor", |b| {
                b.iter(|| floor(sender, &key, &pool[cycle(&next, pool.len())]))
            });

            let receiver = pipeline();
            let next = Cell::new(0);
            group.bench_function("pipeline", |b| {
                b.iter_batched(
                    || inbound_request(&pool[cycle(&next, pool.len())]),
                    |request| {
                        let handled = ready(receiver.handle(request));
                        assert!(accepted(&handled.1), "{handled:?}");
                        handled
                    },
                    BatchSize::SmallInput,
                )
            });

            let receiver = pipeline();
            let events: Vec<Vec<u8>> = pool
                .iter()
                .map(SignedDelivery::function_url_event)
                .collect();
            let next = Cell::new(0);
            group.bench_function("lambda_event", |b| {
                b.iter(|| {
                    let bytes = &events[cycle(&next, events.len())];
                    let event: FunctionUrlRequest =
                        serde_json::from_slice(bytes).expect("a Function URL event");
                    let (response, request_metrics, _store) = ready(function_url::handle_measured(
                        &receiver,
                        event,
                        function_url::default_budget(),
                    ));
                    assert_eq!(response.status_code, 200);
                    let emf = metrics::document("hookrelay", SIGNED_AT * 1000, &request_metrics);
                    (serde_json::to_vec(&response).expect("a response"), emf)
                })
            });
            group.finish();
        }
    }
}

/// The relay signature on its own, per message: sealing (the receiver and the bridge, once per
/// event), checking (each consumer, once per receive), and loading the keys at cold start.
fn relay_signature(c: &mut Criterion) {
    use hookrelay::relay::{ReceivedRelaySignature, RelaySigner, RelayTrust};
    let relay = hookrelay_devtools::relay_keys::env();
    let signer = RelaySigner::parse(&relay[0].1).expect("the test kit's key");
    let trust = RelayTrust::parse(&relay[1].1).expect("the test kit's public key");
    for body_len in BODY_SIZES {
        let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(body_len - 10));
        let mut group = c.benchmark_group(format!("relay_signature/{}KiB", body_len / 1024));
        group.throughput(Throughput::Bytes(body_len as u64));
        group.bench_function("seal", |b| {
            b.iter(|| signer.sign("engine:op-1:42", SIGNED_AT, &body))
        });
        let seal = signer.sign("engine:op-1:42", SIGNED_AT, &body);
        group.bench_function("check", |b| {
            b.iter(|| {
                let received = ReceivedRelaySignature {
                    id: Some(&seal.id),
                    timestamp: Some(&seal.timestamp),
                    signatures: Some(&seal.signatures),
                };
                trust
                    .verify(received, &body, SIGNED_AT)
                    .expect("genuine")
                    .check_id("engine:op-1:42")
                    .expect("its own id")
            })
        });
        group.finish();
    }
    c.bench_function("relay_signature/load_keys", |b| {
        b.iter(|| {
            (
                RelaySigner::parse(&relay[0].1).expect("a key"),
                RelayTrust::parse(&relay[1].1).expect("a key"),
            )
        })
    });
}

/// Checking SQS's answer to one send (a `MessageId`, and MD5s of the body and of the attributes
/// equal to what was sent): once per event on the request path, for engine messages as the
/// receiver builds them.
fn sqs_answer_check(c: &mut Criterion) {
    use hookrelay_aws::sqs::{SendAnswer, check_answer, md5_of_attributes};
    for body_len in BODY_SIZES {
        let delivery = &deliveries(Sender::Engine, body_len)[0];
        let message = QueueMessage {
            body: String::from_utf8_lossy(&delivery.body).into_owned(),
            attributes: vec![
                ("provider", "engine".to_owned()),
                ("event_type", "ORDER_MATCHED".to_owned()),
                ("market_id", "mkt-1".to_owned()),
                ("delivery_id", "dlv-000001".to_owned()),
                ("signature", "sha256=".to_owned() + &"ab".repeat(32)),
                ("relay_id", "engine:op-audit:1".to_owned()),
                ("relay_timestamp", SIGNED_AT.to_string()),
                ("relay_signature", "v1a,".to_owned() + &"A".repeat(88)),
            ],
            group_id: "engine".to_owned(),
            deduplication_id: "engine:op-audit:1".to_owned(),
        };
        let body_md5 = {
            use md5::Digest as _;
            hex::encode(md5::Md5::digest(message.body.as_bytes()))
        };
        let attributes_md5 = md5_of_attributes(&message.attributes);
        let answer = SendAnswer {
            message_id: Some("5fea7756-0ea4-451a-a703-a558b933e274"),
            md5_of_body: Some(&body_md5),
            md5_of_attributes: Some(&attributes_md5),
        };
        let mut group = c.benchmark_group(format!("sqs_answer_check/{}KiB", body_len / 1024));
        group.throughput(Throughput::Bytes(body_len as u64));
        group.bench_function("check", |b| {
            b.iter(|| check_answer(black_box(&message), black_box(&answer)).expect("proven"))
        });
        group.finish();
    }
}

criterion_group!(benches, request_path, relay_signature, sqs_answer_check);
criterion_main!(benches);
