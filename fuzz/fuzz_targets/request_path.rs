//! Fuzzes the whole request path through the real Function URL handler: route, body decoding,
//! verification, parsing, replay window, dedupe, envelope. The first byte picks the route, the
//! base64 flag and whether the body gets a correct signature (so inputs also reach the parser
//! and the envelope, not only the verifier); the rest is the body. Checks: no panic, only
//! contract statuses, and every published message re-verifies with the configured secret.
#![no_main]

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hookrelay::senders::{ENGINE, REKKO};
use hookrelay::signature::SigningSecret;
use hookrelay_ingest::queue::{PublishError, Publisher, QueueMessage, Sent};
use hookrelay_receiver::config::Config;
use hookrelay_receiver::function_url::FunctionUrlRequest;
use hookrelay_receiver::pipeline::{FixedClock, Pipeline, Stores};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzzing-secret-0123456789abcdef";

#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<QueueMessage>>>);

impl Publisher for Memory {
    async fn publish(&self, message: &QueueMessage) -> Result<Sent, PublishError> {
        self.0.lock().unwrap().push(message.clone());
        Ok(Sent::default())
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn config() -> Config {
    CONFIG.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| {
                Config::from_lookup(|name| match name {
                    "HOOKRELAY_QUEUE_URL" => Some("http://127.0.0.1:9/1/q.fifo".into()),
                    "HOOKRELAY_ENGINE_SECRETS" | "HOOKRELAY_REKKO_SECRETS" => Some(SECRET.into()),
                    // Unsigned here, but it puts the header-family and header-reading code on
                    // the fuzzed path.
                    "HOOKRELAY_STANDARD_SECRETS" => {
                        Some("whsec_ZnV6emluZy1zdGFuZGFyZC1zZWNyZXQtMTIz".into())
                    }
                    _ => None,
                })
                .unwrap()
            })
            .clone()
    })
}

/// The signature header value `route`'s sender writes for `body` (the library's `sign`).
fn signature(route: &str, body: &[u8]) -> String {
    let sender = if route == "/engine" { ENGINE } else { REKKO };
    let secret = SigningSecret::from_key_bytes(SECRET.as_bytes());
    sender.scheme.sign(&secret, None, body).remove(0).1
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, body)) = input.split_first() else {
        return;
    };
    let route = ["/engine", "/rekko", "/standard", "/elsewhere"][usize::from(control & 3)];
    let base64 = control & 4 != 0;
    let signed = control & 8 != 0;
    let mut headers = serde_json::Map::new();
    if signed {
        headers.insert("x-webhook-signature".into(), signature(route, body).into());
    } else if control & 16 != 0 {
        headers.insert(
            "x-webhook-signature".into(),
            String::from_utf8_lossy(&body[..body.len().min(80)]).into(),
        );
    }
    // Flagged base64: sometimes the body's real base64, sometimes raw bytes that may not decode.
    let body_field = if base64 && control & 32 == 0 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let event = serde_json::json!({
        "rawPath": route,
        "headers": headers,
        "requestContext": {"http": {"method": if control & 64 != 0 { "GET" } else { "POST" }}},
        "body": body_field,
        "isBase64Encoded": base64,
    });
    let Ok(event) = serde_json::from_value::<FunctionUrlRequest>(event) else {
        return;
    };

    let publisher = Memory::default();
    let now = time::OffsetDateTime::from_unix_timestamp(1_771_455_600).unwrap();
    let pipeline = Pipeline::new(&config(), publisher.clone(), FixedClock(now), Stores::NONE);
    let (response, _, _) = RUNTIME.with(|rt| {
        rt.block_on(hookrelay_receiver::function_url::handle_measured(
            &pipeline, event,
        ))
    });
    assert!(
        [200, 400, 401, 404, 405, 413, 503].contains(&response.status_code),
        "{}",
        response.status_code
    );

    let secrets = config().secrets;
    for message in publisher.0.lock().unwrap().iter() {
        let envelope =
            hookrelay::Envelope::from_json(&message.body).expect("published messages decode");
        let provider = hookrelay::senders::by_name(&envelope.provider).unwrap();
        let signature = message.attribute("signature").unwrap();
        assert!(
            envelope
                .verify_signature(signature, secrets.of(provider).unwrap())
                .is_ok(),
            "unverified body published"
        );
    }
});
