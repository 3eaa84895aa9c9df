//! Deliveries signed by the official libraries, not by our code: PyPI's `standardwebhooks` (the
//! spec's reference library) and `svix` (what Svix-powered providers ship) produce each
//! signature, and the test sets the header names of each family (`webhook-*`, and Svix's default
//! `svix-*`). They go through the real handler into the local SQS endpoint, and every queued
//! message is re-verified with both official libraries, as a consumer in Python would.
//! (tests/official/webhooks.py is the bridge to the libraries; scripts/test.sh installs them.)

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hookrelay::Envelope;
use hookrelay_aws::SqsPublisher;
use hookrelay_devtools::relay_keys;
use hookrelay_receiver::config::Config;
use hookrelay_receiver::function_url::{self, FunctionUrlRequest};
use hookrelay_receiver::pipeline::{FixedClock, Pipeline, Stores};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

/// The configured secrets: a rotation, two live at once.
const SECRET_A: &str = STANDARD_SECRET;
const SECRET_B: &str = "whsec_c2Vjb25kLXNlY3JldC1vZi10aGUtcm90YXRpb24=";
/// A secret hookrelay does not hold.
const FOREIGN: &str = "whsec_YS1mb3JlaWduLXNlY3JldC1ub2JvZHktaG9sZHM=";

/// Runs the official-library bridge on one request.
fn official(request: Value) -> Value {
    let python = hookrelay_devtools::moto::test_python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/official/webhooks.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the official-library bridge failed"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Webhook,
    Svix,
}

impl Family {
    fn names(self) -> [&'static str; 3] {
        match self {
            Family::Webhook => ["webhook-id", "webhook-timestamp", "webhook-signature"],
            Family::Svix => ["svix-id", "svix-timestamp", "svix-signature"],
        }
    }

    /// The library whose signatures this case uses (each family is tried with each library
    /// across the cases below).
    fn library(self) -> &'static str {
        match self {
            Family::Webhook => "standardwebhooks",
            Family::Svix => "svix",
        }
    }
}

struct Case {
    label: String,
    family: Family,
    id: String,
    timestamp: i64,
    body: String,
    /// Secrets whose official signatures the signature header lists, in order.
    signed_with: Vec<&'static str>,
    /// A header of the family to leave out (0 id, 1 timestamp, 2 signature).
    drop: Option<usize>,
    expected: (i64, &'static str),
}

#[tokio::test]
async fn official_library_signatures_in_both_header_families() {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut cases = Vec::new();
    for family in [Family::Webhook, Family::Svix] {
        let case = |label: &str, timestamp, signed_with: Vec<&'static str>, drop, expected| {
            let id = format!("msg_{}_{label}", family.library());
            Case {
                label: format!("{family:?} {label}"),
                family,
                body: format!(r#"{{"type":"invoice.paid","data":{{"case":"{id}"}}}}"#),
                id,
                timestamp,
                signed_with,
                drop,
                expected,
            }
        };
        cases.extend([
            case("valid", now, vec![SECRET_A], None, (200, "accepted")),
            case("rotated", now, vec![SECRET_B], None, (200, "accepted")),
            case(
                "several",
                now,
                vec![FOREIGN, SECRET_A],
                None,
                (200, "accepted"),
            ),
            case(
                "stale",
                now - 400,
                vec![SECRET_A],
                None,
                (401, "stale_timestamp"),
            ),
            case(
                "foreign",
                now,
                vec![FOREIGN],
                None,
                (401, "invalid_signature"),
            ),
            case(
                "no-signature",
                now,
                vec![SECRET_A],
                Some(2),
                (401, "missing_signature"),
            ),
            case(
                "no-id",
                now,
                vec![SECRET_A],
                Some(0),
                (400, "malformed_payload"),
            ),
        ]);
    }
    // Every signature from the official libraries, in one Python run.
    let mut sign = Vec::new();
    for case in &cases {
        for secret in &case.signed_with {
            sign.push(json!({"library": case.family.library(), "secret": secret,
                "id": case.id, "timestamp": case.timestamp, "body": case.body}));
        }
    }
    let signatures = official(json!({ "sign": sign }))["signatures"]
        .as_array()
        .unwrap()
        .clone();
    let mut signatures = signatures.iter().map(|s| s.as_str().unwrap().to_owned());

    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    let secrets = format!("{SECRET_A},{SECRET_B}");
    let relay = relay_keys::env();
    let config = Config::from_lookup(|name| match name {
        "HOOKRELAY_QUEUE_URL" => Some(queue_url.clone()),
        name if name == relay[0].0 => Some(relay[0].1.clone()),
        name if name == relay[1].0 => Some(relay[1].1.clone()),
        "HOOKRELAY_STANDARD_SECRETS" => Some(secrets.clone()),
        _ => None,
    })
    .unwrap();
    let clock = FixedClock(OffsetDateTime::from_unix_timestamp(now).unwrap());
    let publisher = SqsPublisher::new(client.clone(), queue_url.clone());
    let pipeline = Pipeline::new(&config, publisher, clock, Stores::NONE);

    let mut accepted = Vec::new();
    for case in &cases {
        let signature: Vec<String> = (&mut signatures).take(case.signed_with.len()).collect();
        let values = [
            case.id.clone(),
            case.timestamp.to_string(),
            signature.join(" "),
        ];
        let mut event: FunctionUrlRequest = serde_json::from_value(json!({
            "rawPath": "/standard",
            "requestContext": {"http": {"method": "POST"}},
            "headers": {"content-type": "application/json"},
            "body": case.body, "isBase64Encoded": false
        }))
        .unwrap();
        for (index, (name, value)) in case.family.names().into_iter().zip(values).enumerate() {
            if case.drop != Some(index) {
                event.headers.insert(name.to_owned(), value);
            }
        }
        let (status, body) = read_response(&function_url::handle(&pipeline, event).await);
        let code = body["status"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or_default();
        assert_eq!((status, code), case.expected, "{}: {body}", case.label);
        if let Some(dropped) = case.drop {
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains(case.family.names()[dropped]),
                "{}: the message names the family's header: {message}",
                case.label
            );
        }
        if status == 200 {
            assert_eq!(body["id"], format!("standard:{}", case.id));
            accepted.push(case);
        }
    }
    assert_eq!(accepted.len(), 6, "three accepted cases per family");

    // Each accepted delivery is in the queue exactly once, and both official libraries verify
    // what a consumer reads: `data` as signed, the envelope's id and timestamp, the attribute.
    let messages = receive_all(&client, &queue_url).await;
    assert_eq!(messages.len(), accepted.len());
    let mut verify = Vec::new();
    for case in &accepted {
        let message = messages
            .iter()
            .find(|m| {
                Envelope::from_json(m.body().unwrap()).unwrap().id
                    == format!("standard:{}", case.id)
            })
            .unwrap_or_else(|| panic!("{} was not queued", case.label));
        let envelope = Envelope::from_json(message.body().unwrap()).unwrap();
        assert_eq!(envelope.delivery_id.as_deref(), Some(case.id.as_str()));
        assert_eq!(envelope.occurred_at, Some(case.timestamp.to_string()));
        let signature = message.message_attributes().unwrap()["signature"]
            .string_value()
            .unwrap()
            .to_owned();
        // The key that signed it (the several-signatures case: the configured one).
        let secret = *case.signed_with.last().unwrap();
        for library in ["standardwebhooks", "svix"] {
            for names in [Family::Webhook.names(), Family::Svix.names()] {
                if library == "standardwebhooks" && names[0] == "svix-id" {
                    continue; // the reference library reads the spec's names only
                }
                verify.push(json!({"library": library, "secret": secret,
                    "body": envelope.signed_data(),
                    "headers": {names[0]: envelope.delivery_id, names[1]: envelope.occurred_at,
                                names[2]: signature}}));
            }
        }
    }
    let verified = official(json!({ "verify": verify }))["verified"].clone();
    assert_eq!(verified.as_array().unwrap().len(), accepted.len() * 3);
    for (result, request) in verified.as_array().unwrap().iter().zip(&verify) {
        assert_eq!(result, &Value::Bool(true), "{request}");
    }
}
