//! Tests of the pipeline's stages, through `Pipeline::handle` as the edge calls it.

use hookrelay::senders::REKKO;
use hookrelay::signature::SigningSecret;
use hookrelay_devtools::memory::MemoryPublisher as RecordingPublisher;

use super::*;

const SECRET: &str = "rekko-unit-test-secret";
const T0: i64 = 1_771_455_600; // 2026-02-18T23:00:00Z

fn config(vars: &[(&str, &str)]) -> Config {
    let relay = hookrelay_devtools::relay_keys::env();
    let mut all = vec![
        ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:1/q.fifo"),
        ("HOOKRELAY_REKKO_SECRETS", SECRET),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
    ];
    all.extend_from_slice(vars);
    Config::from_lookup(|name| {
        all.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

fn pipeline(publisher: RecordingPublisher, now: i64) -> Pipeline<RecordingPublisher, FixedClock> {
    Pipeline::new(
        &config(&[]),
        publisher,
        FixedClock(OffsetDateTime::from_unix_timestamp(now).unwrap()),
        Stores::NONE,
    )
}

fn rekko_body(market: &str) -> String {
    format!(r#"{{"type":"price_shift","market_id":"{market}","timestamp":"2026-02-18T23:00:00Z"}}"#)
}

fn signed(body: &str) -> InboundRequest {
    let secret = SigningSecret::from_key_bytes(SECRET.as_bytes());
    let headers = REKKO.scheme.sign(&secret, None, body.as_bytes());
    InboundRequest {
        method: "POST".into(),
        path: "/rekko".into(),
        headers: headers.into_iter().collect(),
        body: RequestBody::Text(body.into()),
    }
}

fn status((_, result): (Option<Sender>, Result<Handled, Rejection>)) -> (u16, &'static str) {
    match result {
        Ok(handled) => (200, handled.outcome.as_str()),
        Err(rejection) => rejection.status_and_code(),
    }
}

#[tokio::test]
async fn a_repeat_is_a_duplicate_and_is_not_sent_again() {
    let publisher = RecordingPublisher::default();
    let p = pipeline(publisher.clone(), T0);
    assert_eq!(
        status(p.handle(signed(&rekko_body("m"))).await),
        (200, "accepted")
    );
    assert_eq!(
        status(p.handle(signed(&rekko_body("m"))).await),
        (200, "duplicate")
    );
    assert_eq!(
        status(p.handle(signed(&rekko_body("n"))).await),
        (200, "accepted")
    );
    assert_eq!(publisher.len(), 2);
}

#[tokio::test]
async fn a_failed_publish_is_503_and_the_retry_is_published() {
    let publisher = RecordingPublisher::failing_first(1);
    let p = pipeline(publisher.clone(), T0);
    let first = p.handle(signed(&rekko_body("m"))).await;
    assert_eq!(status(first), (503, "queue_unavailable"));
    assert_eq!(
        status(p.handle(signed(&rekko_body("m"))).await),
        (200, "accepted"),
        "not recorded as published"
    );
    assert_eq!(publisher.len(), 1);
}

#[tokio::test]
async fn the_replay_window_is_checked_against_the_injected_clock_both_ways() {
    for (now, expected) in [
        (T0 + 300, (200, "accepted")),
        (T0 - 300, (200, "accepted")),
        (T0 + 301, (401, "stale_timestamp")),
        (T0 - 301, (401, "stale_timestamp")),
    ] {
        let publisher = RecordingPublisher::default();
        let p = pipeline(publisher.clone(), now);
        assert_eq!(
            status(p.handle(signed(&rekko_body("m"))).await),
            expected,
            "now = T0 {:+}",
            now - T0
        );
        assert_eq!(publisher.len(), usize::from(expected.0 == 200));
    }
}

#[tokio::test]
async fn routes_methods_sizes_and_signatures_map_to_the_contract() {
    let p = pipeline(RecordingPublisher::default(), T0);
    let body = rekko_body("m");

    let mut r = signed(&body);
    r.path = "/engine".into(); // configured without engine secrets: disabled
    assert_eq!(status(p.handle(r).await), (404, "unknown_route"));
    let mut r = signed(&body);
    r.path = "/nope".into();
    assert_eq!(status(p.handle(r).await), (404, "unknown_route"));
    let mut r = signed(&body);
    r.method = "GET".into();
    assert_eq!(status(p.handle(r).await), (405, "method_not_allowed"));
    let mut r = signed(&body);
    r.headers.clear();
    assert_eq!(status(p.handle(r).await), (401, "missing_signature"));
    let mut r = signed(&body);
    r.body = RequestBody::Text(body.replace("\"m\"", "\"x\""));
    assert_eq!(status(p.handle(r).await), (401, "invalid_signature"));
    let mut r = signed(&body);
    r.body = RequestBody::Text("x".repeat(262_145));
    assert_eq!(status(p.handle(r).await), (413, "payload_too_large"));
    let mut r = signed(&body);
    r.body = RequestBody::Base64("A".repeat(400_000));
    assert_eq!(status(p.handle(r).await), (413, "payload_too_large"));
    let mut r = signed(&body);
    r.body = RequestBody::Base64("not base64!".into());
    assert_eq!(status(p.handle(r).await), (400, "malformed_payload"));
    assert_eq!(
        status(p.handle(signed("[1]")).await),
        (400, "malformed_payload")
    );
}

#[tokio::test]
async fn an_envelope_that_would_not_fit_in_sqs_is_413_not_a_retry_loop() {
    let publisher = RecordingPublisher::default();
    let clock = FixedClock(OffsetDateTime::from_unix_timestamp(T0).unwrap());
    let config = config(&[("HOOKRELAY_MAX_BODY_BYTES", "1000000")]);
    let p = Pipeline::new(&config, publisher.clone(), clock, Stores::NONE);
    // The type is repeated in the envelope and the attributes: 3 x 400 kB > 1 MiB.
    let long_type = "t".repeat(400_000);
    let body = format!(r#"{{"type":"{long_type}","timestamp":"2026-02-18T23:00:00Z"}}"#);
    let rejection = p.handle(signed(&body)).await.1.unwrap_err();
    assert_eq!(rejection.status_and_code(), (413, "payload_too_large"));
    assert!(
        rejection.to_string().contains("SQS message limit"),
        "{rejection}"
    );
    assert!(publisher.is_empty());
}

#[tokio::test]
async fn a_base64_transported_body_is_verified_as_its_decoded_bytes() {
    let publisher = RecordingPublisher::default();
    let p = pipeline(publisher.clone(), T0);
    let body = rekko_body("m");
    let mut r = signed(&body);
    r.body = RequestBody::Base64(BASE64.encode(&body));
    assert_eq!(status(p.handle(r).await), (200, "accepted"));
    let sent = publisher.sent();
    assert!(sent[0].body.ends_with(&format!("\"data\":{body}}}")));
}

#[test]
fn paths_route_to_senders() {
    let p = pipeline(RecordingPublisher::default(), T0);
    let sender = |path| p.served_route(path).map(|served| served.route.sender.name);
    assert_eq!(sender("/engine"), Some("engine"));
    assert_eq!(sender("/rekko/"), Some("rekko"));
    assert_eq!(sender("/standard"), Some("standard"));
    for other in [
        "/",
        "",
        "/Engine",
        "/engine/x",
        "/engine//",
        "/webhook",
        "engine",
    ] {
        assert_eq!(sender(other), None, "{other}");
    }
}

#[test]
fn queue_failures_do_not_leak_details_to_the_sender() {
    let rejection = Rejection::QueueUnavailable {
        after: Duration::from_secs(5),
        error: PublishError::new("dispatch failure: connection refused to 10.1.2.3"),
        dedupe_key: DedupeKey::new("rekko", &["k"]),
        store: Box::default(),
    };
    assert!(!rejection.public_message().contains("10.1.2.3"));
    assert!(
        rejection.to_string().contains("connection refused"),
        "the log keeps the cause"
    );
}

#[path = "pipeline_store_tests.rs"]
mod durable_store;
