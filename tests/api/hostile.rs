//! Hostile input against the real handler: a forgery matrix (every single-bit flip, wrong and
//! foreign secrets, re-serialised JSON, mangled signature headers, replayed timestamps) that must
//! all be refused without publishing, and property tests over arbitrary requests: the handler
//! never panics, answers only contract statuses, and publishes only bodies a configured secret
//! signed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookrelay::senders::{ENGINE, REKKO, STANDARD};
use hookrelay::{Envelope, secret::SenderSecrets};
use hookrelay_receiver::function_url;
use hookrelay_receiver::function_url::FunctionUrlRequest;
use proptest::prelude::*;

use crate::helpers::*;

/// Runs one request through the real handler; returns (status, error code or outcome).
fn answer(event: FunctionUrlRequest) -> (i64, String) {
    let (pipeline, _) = memory_pipeline(2);
    answer_with(&pipeline, event)
}

fn answer_with(
    pipeline: &hookrelay_receiver::pipeline::Pipeline<
        MemoryPublisher,
        hookrelay_receiver::pipeline::FixedClock,
    >,
    event: FunctionUrlRequest,
) -> (i64, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let response = runtime
        .block_on(function_url::handle_measured(
            pipeline,
            event,
            function_url::default_budget(),
        ))
        .0;
    let (status, body) = read_response(&response);
    let word = body
        .get("error")
        .or_else(|| body.get("status"))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    (status, word.to_owned())
}

fn with_body(mut event: FunctionUrlRequest, body: &[u8]) -> FunctionUrlRequest {
    event.is_base64_encoded = true;
    event.body = Some(BASE64.encode(body));
    event
}

fn with_header(
    mut event: FunctionUrlRequest,
    name: &'static str,
    value: &[u8],
) -> Option<FunctionUrlRequest> {
    // Header text only: bytes that are not UTF-8 can't be in Lambda's JSON event.
    let text = String::from_utf8(value.to_vec()).ok()?;
    event.headers.insert(name.to_owned(), text);
    Some(event)
}

const SIGNATURE_HEADERS: [(&str, &str); 3] = [
    ("engine", "x-webhook-signature"),
    ("rekko", "x-webhook-signature"),
    ("standard", "webhook-signature"),
];

#[test]
fn every_single_bit_flip_of_body_or_signed_headers_is_refused() {
    for (route, signature_header) in SIGNATURE_HEADERS {
        let name = format!("{route}-valid");
        assert_eq!(
            answer(fixture(&name)),
            (200, "accepted".to_owned()),
            "{name} must pass unflipped"
        );
        let body = fixture_body(&name);
        let mut checked = 0;
        for byte in 0..body.len() {
            for bit in 0..8 {
                let mut flipped = body.clone();
                flipped[byte] ^= 1 << bit;
                let (status, code) = answer(with_body(fixture(&name), &flipped));
                assert_eq!(
                    (status, code.as_str()),
                    (401, "invalid_signature"),
                    "{name}: body byte {byte} bit {bit}"
                );
                checked += 1;
            }
        }
        let mut signed_headers = vec![signature_header];
        if route == "standard" {
            signed_headers.extend(["webhook-id", "webhook-timestamp"]);
        }
        for header in signed_headers {
            let value = fixture(&name).headers[header].as_bytes().to_vec();
            for byte in 0..value.len() {
                for bit in 0..8 {
                    let mut flipped = value.clone();
                    flipped[byte] ^= 1 << bit;
                    // Hex may be either case (contract), so a case flip inside the hex digits is
                    // the same signature; the `sha256=` tag and base64 stay exact.
                    let hex_digits_start = if route == "engine" {
                        "sha256=".len()
                    } else {
                        0
                    };
                    let is_hex_case_flip = header == "x-webhook-signature"
                        && byte >= hex_digits_start
                        && value[byte].is_ascii_alphabetic()
                        && flipped[byte].eq_ignore_ascii_case(&value[byte]);
                    if is_hex_case_flip {
                        continue;
                    }
                    // Some flips make bytes that are not UTF-8; those can't be in the event.
                    let Some(event) = with_header(fixture(&name), header, &flipped) else {
                        continue;
                    };
                    let (status, code) = answer(event);
                    let refused = status == 401 || (header == "webhook-timestamp" && status == 400);
                    assert!(
                        refused,
                        "{name}: {header} byte {byte} bit {bit} answered {status} {code}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked >= body.len() * 8 + 64 * 4,
            "{name}: only {checked} flips checked"
        );
    }
}

#[test]
fn wrong_and_foreign_secrets_are_refused() {
    let engine_body = fixture_body("engine-valid");
    let rekko_body = fixture_body("rekko-valid");
    for (name, header, value) in [
        (
            "engine-valid",
            "x-webhook-signature",
            signature_with_key(ENGINE, b"a-completely-wrong-secret", None, &engine_body),
        ),
        // Signed with the Rekko secret, sent to the engine route (and vice versa).
        (
            "engine-valid",
            "x-webhook-signature",
            signature_with_key(ENGINE, REKKO_SECRET.as_bytes(), None, &engine_body),
        ),
        (
            "rekko-valid",
            "x-webhook-signature",
            signature_with_key(REKKO, ENGINE_SECRET.as_bytes(), None, &rekko_body),
        ),
        // The engine's own format (with its tag) on the Rekko route, correctly keyed.
        (
            "rekko-valid",
            "x-webhook-signature",
            signature_with_key(ENGINE, REKKO_SECRET.as_bytes(), None, &rekko_body),
        ),
    ] {
        let event = with_header(fixture(name), header, value.as_bytes()).unwrap();
        assert_eq!(
            answer(event),
            (401, "invalid_signature".to_owned()),
            "{name} {value}"
        );
    }
    // A Standard Webhooks signature made with the engine secret's bytes as the key.
    let event = fixture("standard-valid");
    let id = event.headers["webhook-id"].clone();
    let ts = event.headers["webhook-timestamp"].clone();
    let body = fixture_body("standard-valid");
    let forged = signature_with_key(STANDARD, ENGINE_SECRET.as_bytes(), Some((&id, &ts)), &body);
    let event = with_header(event, "webhook-signature", forged.as_bytes()).unwrap();
    assert_eq!(answer(event), (401, "invalid_signature".to_owned()));
}

#[test]
fn a_signature_over_re_serialised_json_is_refused() {
    // The provider's Node example signs JSON.stringify(parsed body), not the bytes sent. A body sent
    // with different spacing and key order than what was signed must fail.
    let body = br#"{ "type": "price_shift", "timestamp": "2026-02-18T23:00:00Z", "market_id": "KXFED-26MAR19" }"#;
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap();
    let reserialised = serde_json::to_vec(&parsed).unwrap();
    assert_ne!(reserialised, body.to_vec());
    let event = with_body(fixture("rekko-valid"), body);
    let event = with_header(
        event,
        "x-webhook-signature",
        rekko_signature(&reserialised).as_bytes(),
    )
    .unwrap();
    assert_eq!(answer(event), (401, "invalid_signature".to_owned()));
    // The same body signed over its own bytes passes: the refusal is about the bytes.
    let event = with_body(fixture("rekko-valid"), body);
    let event = with_header(
        event,
        "x-webhook-signature",
        rekko_signature(body).as_bytes(),
    )
    .unwrap();
    assert_eq!(answer(event).0, 200);
}

#[test]
fn mangled_signature_headers_are_refused() {
    let engine_signature = fixture("engine-valid").headers["x-webhook-signature"].clone();
    let hex_part = engine_signature.trim_start_matches("sha256=").to_owned();
    let standard_signature = fixture("standard-valid").headers["webhook-signature"].clone();
    let cases: Vec<(&str, &'static str, Vec<String>, &str)> = vec![
        (
            "engine-valid",
            "x-webhook-signature",
            vec![engine_signature[..engine_signature.len() - 2].to_owned()],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![format!("{engine_signature}00")],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![String::new()],
            "missing_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![engine_signature.clone(), engine_signature.clone()],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![format!("SHA256={hex_part}")],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![format!("sha-256={hex_part}")],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![format!("sha256:{hex_part}")],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![format!("sha512={hex_part}")],
            "invalid_signature",
        ),
        (
            "engine-valid",
            "x-webhook-signature",
            vec![hex_part.clone()],
            "invalid_signature",
        ),
        (
            "standard-valid",
            "webhook-signature",
            vec![standard_signature.replacen("v1,", "V1,", 1)],
            "invalid_signature",
        ),
        (
            "standard-valid",
            "webhook-signature",
            vec![standard_signature.replacen("v1,", "v2,", 1)],
            "invalid_signature",
        ),
        (
            "standard-valid",
            "webhook-signature",
            vec![standard_signature.replacen("v1,", "", 1)],
            "invalid_signature",
        ),
        (
            "standard-valid",
            "webhook-signature",
            vec![standard_signature[..standard_signature.len() - 4].to_owned()],
            "invalid_signature",
        ),
        (
            "standard-valid",
            "webhook-signature",
            vec![standard_signature.clone(), standard_signature.clone()],
            "invalid_signature",
        ),
    ];
    for (name, header, values, expected) in cases {
        let mut event = fixture(name);
        event.headers.remove(header);
        for value in &values {
            add_header(&mut event, header, value);
        }
        let (status, code) = answer(event);
        assert_eq!(
            (status, code.as_str()),
            (401, expected),
            "{name} {header}: {values:?}"
        );
    }
}

#[test]
fn stale_and_future_timestamps_are_refused_exactly_past_the_tolerance() {
    for route in ["engine", "rekko", "standard"] {
        let name = format!("{route}-valid");
        for (offset, expected) in [
            (300, 200),
            (-300, 200),
            (301, 401),
            (-301, 401),
            (86_400, 401),
            (-86_400, 401),
        ] {
            let (pipeline, _) = memory_pipeline(offset);
            let (status, code) = answer_with(&pipeline, fixture(&name));
            assert_eq!(
                status, expected,
                "{name} with the clock {offset:+} s: {code}"
            );
            if expected == 401 {
                assert_eq!(code, "stale_timestamp");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests

#[derive(Debug, Clone)]
struct ArbitraryRequest {
    path: String,
    method: &'static str,
    body: Vec<u8>,
    base64: bool,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// How the request is signed: well-formed signatures (right or wrong key) reach the
    /// verifier's decision and the parse path; arbitrary headers rarely would.
    signing: Signing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    /// Signed with the route's configured secret.
    Correct,
    /// A well-formed signature made with a key hookrelay doesn't hold.
    WrongKey,
    /// Only whatever arbitrary headers were generated.
    Unsigned,
}

const WRONG_KEY: &[u8] = b"a-key-hookrelay-does-not-hold";

fn header_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "x-webhook-signature",
        "x-webhook-id",
        "x-webhook-event",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    ])
}

fn json_ish_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        // Bodies shaped like the senders', with arbitrary routing-field values.
        (
            any::<Option<String>>(),
            any::<Option<i64>>(),
            prop::option::of("[0-9T:.Z-]{0,30}"),
            any::<Option<String>>()
        )
            .prop_map(|(kind, sequence, timestamp, market)| {
                let mut object = serde_json::Map::new();
                if let Some(kind) = kind {
                    object.insert("type".into(), kind.clone().into());
                    object.insert("eventType".into(), kind.into());
                }
                if let Some(sequence) = sequence {
                    object.insert("sequence".into(), sequence.into());
                }
                if let Some(timestamp) = timestamp {
                    object.insert("timestamp".into(), timestamp.into());
                }
                if let Some(market) = market {
                    object.insert("marketId".into(), market.clone().into());
                    object.insert("market_id".into(), market.into());
                }
                serde_json::to_vec(&object).unwrap()
            }),
        Just(
            br#"{"type":"price_shift","market_id":"m","timestamp":"2026-02-18T23:00:00Z"}"#
                .to_vec()
        ),
        Just(
            br#"{"sequence":1,"eventType":"ORDER_MATCHED","timestamp":"2026-02-18T23:00:00.000Z"}"#
                .to_vec()
        ),
    ]
}

fn arbitrary_request() -> impl Strategy<Value = ArbitraryRequest> {
    (
        prop_oneof![
            Just("/engine".to_owned()),
            Just("/rekko".to_owned()),
            Just("/standard".to_owned()),
            "/[a-z/]{0,12}"
        ],
        prop::sample::select(vec!["POST", "POST", "POST", "GET", "PUT"]),
        json_ish_body(),
        any::<bool>(),
        prop::collection::vec(
            (header_name(), prop::collection::vec(any::<u8>(), 0..80)),
            0..6,
        ),
        prop::sample::select(vec![Signing::Correct, Signing::WrongKey, Signing::Unsigned]),
    )
        .prop_map(
            |(path, method, body, base64, headers, signing)| ArbitraryRequest {
                path,
                method,
                body,
                base64,
                headers,
                signing,
            },
        )
}

fn event_of(request: &ArbitraryRequest) -> FunctionUrlRequest {
    let mut event = fixture("engine-valid");
    event.headers.clear();
    event.raw_path = Some(request.path.clone());
    event.request_context.http.method = request.method.to_owned();
    for (name, value) in &request.headers {
        add_header(&mut event, name, &String::from_utf8_lossy(value));
    }
    if request.signing != Signing::Unsigned {
        let key_for = |secret: &'static [u8]| {
            if request.signing == Signing::Correct {
                secret
            } else {
                WRONG_KEY
            }
        };
        let id = "msg_prop";
        let ts = (FIXTURE_TIME).to_string();
        let (header, value) = match request.path.as_str() {
            "/engine" => (
                "x-webhook-signature",
                signature_with_key(
                    ENGINE,
                    key_for(ENGINE_SECRET.as_bytes()),
                    None,
                    &request.body,
                ),
            ),
            "/rekko" => (
                "x-webhook-signature",
                signature_with_key(REKKO, key_for(REKKO_SECRET.as_bytes()), None, &request.body),
            ),
            _ => {
                let key = BASE64
                    .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
                    .unwrap();
                event.headers.insert("webhook-id".into(), id.into());
                event.headers.insert("webhook-timestamp".into(), ts.clone());
                let key = if request.signing == Signing::Correct {
                    &key[..]
                } else {
                    WRONG_KEY
                };
                let value = signature_with_key(STANDARD, key, Some((id, &ts)), &request.body);
                ("webhook-signature", value)
            }
        };
        event.headers.insert(header.into(), value);
    }
    match (request.base64, String::from_utf8(request.body.clone())) {
        (false, Ok(text)) => event.body = Some(text),
        _ => {
            event.is_base64_encoded = true;
            event.body = Some(BASE64.encode(&request.body));
        }
    }
    event
}

fn all_secrets() -> SenderSecrets {
    SenderSecrets::from_env(&hookrelay::config::Env::new(|name: &str| match name {
        "HOOKRELAY_ENGINE_SECRETS" => Some(ENGINE_SECRET.into()),
        "HOOKRELAY_REKKO_SECRETS" => Some(REKKO_SECRET.into()),
        "HOOKRELAY_STANDARD_SECRETS" => Some(STANDARD_SECRET.into()),
        _ => None,
    }))
    .unwrap()
}

const CONTRACT: [(i64, &str); 11] = [
    (200, "accepted"),
    (200, "duplicate"),
    (400, "malformed_payload"),
    (401, "missing_signature"),
    (401, "invalid_signature"),
    (401, "stale_timestamp"),
    (404, "unknown_route"),
    (405, "method_not_allowed"),
    (413, "payload_too_large"),
    (503, "queue_unavailable"),
    (200, "accepted"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_request_gets_a_contract_answer_and_only_verified_bodies_are_published(request in arbitrary_request()) {
        let (pipeline, published) = memory_pipeline(2);
        let (status, word) = answer_with(&pipeline, event_of(&request));
        prop_assert!(CONTRACT.contains(&(status, word.as_str())), "{status} {word}");

        let secrets = all_secrets();
        for message in published.sent().iter() {
            let envelope = Envelope::from_json(&message.body).expect("published messages are envelopes");
            let provider = hookrelay::senders::by_name(&envelope.provider).unwrap();
            let signature = message.attribute("signature").unwrap();
            prop_assert!(envelope.verify_signature(signature, secrets.of(provider).unwrap()).is_ok());
            prop_assert_eq!(envelope.signed_data().as_bytes(), request.body.as_slice());
            // Whatever is queued, a consumer can read: `data` parses as JSON.
            prop_assert!(serde_json::from_str::<serde_json::Value>(envelope.signed_data()).is_ok());
            prop_assert_eq!(
                request.signing,
                Signing::Correct,
                "a request not signed with a configured secret was published"
            );
        }
    }
}
