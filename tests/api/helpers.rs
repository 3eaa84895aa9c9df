//! Test harness: SQS clients and queues on the shared `moto_server` (hookrelay_devtools::moto),
//! the fixture events, and pipelines wired exactly as `main.rs` wires them but with a fixed clock.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use hookrelay_aws::SqsPublisher;
use hookrelay_devtools::fault_proxy::{Fault, FaultPlan};
use hookrelay_devtools::relay_keys;
use hookrelay_receiver::config::Config;
use hookrelay_receiver::function_url::FunctionUrlRequest;
use hookrelay_receiver::pipeline::{FixedClock, Pipeline, Stores};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use time::OffsetDateTime;

/// The instant the fixtures were signed at (see scripts/make_fixtures.py).
pub const FIXTURE_TIME: i64 = 1_771_455_600;

/// Test secrets, as events/README.md states them.
pub const ENGINE_SECRET: &str = "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
pub const REKKO_SECRET: &str = "hookrelay-test-rekko-secret";
pub const STANDARD_SECRET: &str = "whsec_aG9va3JlbGF5LXRlc3Qtc3RhbmRhcmQtc2VjcmV0ISE=";

pub use hookrelay_devtools::moto::moto;

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Credentials moto accepts (it checks none).
fn local_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "hookrelay-tests")
}

/// An SQS client for `endpoint` with hookrelay's production timeouts and retries.
pub fn sqs_client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(local_credentials())
        .endpoint_url(endpoint)
        .timeout_config(hookrelay_aws::timeouts())
        .retry_config(hookrelay_aws::retries())
        .build();
    Client::from_conf(config)
}

/// A unique queue name for this test process.
pub fn unique_queue_name(fifo: bool) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let suffix = if fifo { ".fifo" } else { "" };
    format!("hookrelay-test-{}-{n}{suffix}", std::process::id())
}

/// Creates a queue (FIFO if `name` ends in `.fifo`) and returns its URL.
pub async fn create_queue(client: &Client, name: &str) -> String {
    let mut request = client.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    request
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Everything in the queue, without deleting it (moto forgets a deleted message's dedup id).
pub async fn receive_all(client: &Client, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    hookrelay_devtools::local_sqs::collect(client, queue_url, 0, Duration::ZERO, Duration::ZERO)
        .await
        .expect("receive")
}

/// The configuration the tests run with: the test secrets and the default limits.
pub fn test_config(queue_url: &str) -> Config {
    let relay = relay_keys::env();
    let vars = [
        ("HOOKRELAY_QUEUE_URL", queue_url),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        ("HOOKRELAY_ENGINE_SECRETS", ENGINE_SECRET),
        ("HOOKRELAY_REKKO_SECRETS", REKKO_SECRET),
        ("HOOKRELAY_STANDARD_SECRETS", STANDARD_SECRET),
    ];
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("test configuration is valid")
}

pub type TestPipeline = Pipeline<SqsPublisher, FixedClock>;

/// A pipeline publishing to `queue_url` through `client`, its clock `offset_secs` after the
/// fixtures were signed.
pub fn pipeline(client: &Client, queue_url: &str, offset_secs: i64) -> TestPipeline {
    let clock =
        FixedClock(OffsetDateTime::from_unix_timestamp(FIXTURE_TIME + offset_secs).unwrap());
    Pipeline::new(
        &test_config(queue_url),
        SqsPublisher::new(client.clone(), queue_url),
        clock,
        Stores::NONE,
    )
}

/// The AWS SDK configuration `main.rs` builds (`hookrelay_aws::sdk_config`, with the production
/// timeouts and retries), pointed at the local `endpoint` (moto, or a fault proxy before it).
pub async fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(local_credentials());
    hookrelay_aws::sdk_config(loader).await
}

/// A pipeline whose publisher is built exactly as `main.rs` builds it, pointed at `endpoint`.
pub async fn production_pipeline(endpoint: &str, queue_url: &str) -> TestPipeline {
    let publisher = SqsPublisher::from_sdk_config(&local_sdk_config(endpoint).await, queue_url);
    let clock = FixedClock(OffsetDateTime::from_unix_timestamp(FIXTURE_TIME + 2).unwrap());
    Pipeline::new(&test_config(queue_url), publisher, clock, Stores::NONE)
}

pub use hookrelay_devtools::memory::MemoryPublisher;
pub use hookrelay_devtools::sender_sim::signature;

/// The signature header value `sender`'s scheme writes for `body` under raw key bytes `key`
/// (the library's `Scheme::sign`), for forgeries with keys no configuration would hold.
pub fn signature_with_key(
    sender: hookrelay::senders::Sender,
    key: &[u8],
    id_and_timestamp: Option<(&str, &str)>,
    body: &[u8],
) -> String {
    let secret = hookrelay::signature::SigningSecret::from_key_bytes(key);
    let header = sender.scheme.signature_header();
    sender
        .scheme
        .sign(&secret, id_and_timestamp, body)
        .into_iter()
        .find(|(name, _)| *name == header)
        .map(|(_, value)| value)
        .unwrap_or_default()
}

/// Signs `body` as Rekko does (hex HMAC-SHA256 with the test secret), for bodies made in tests.
pub fn rekko_signature(body: &[u8]) -> String {
    signature(hookrelay::senders::REKKO, REKKO_SECRET, None, body)
}

/// A pipeline over a [`MemoryPublisher`], its clock `offset_secs` after the fixture time.
pub fn memory_pipeline(
    offset_secs: i64,
) -> (Pipeline<MemoryPublisher, FixedClock>, MemoryPublisher) {
    let publisher = MemoryPublisher::default();
    let clock =
        FixedClock(OffsetDateTime::from_unix_timestamp(FIXTURE_TIME + offset_secs).unwrap());
    let pipeline = Pipeline::new(
        &test_config("http://127.0.0.1:9/123456789012/q.fifo"),
        publisher.clone(),
        clock,
        Stores::NONE,
    );
    (pipeline, publisher)
}

/// A fixture event from events/.
pub fn fixture(name: &str) -> FunctionUrlRequest {
    let path = project_dir().join("events").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bytes a fixture's sender signed (its body, base64 transport encoding undone).
pub fn fixture_body(name: &str) -> Vec<u8> {
    use base64::Engine as _;
    let event = fixture(name);
    let body = event.body.unwrap_or_default();
    if event.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    } else {
        body.into_bytes()
    }
}

/// Status and parsed JSON body of a response.
pub fn read_response(response: &ApiGatewayV2httpResponse) -> (i64, serde_json::Value) {
    let Some(lambda_http::Body::Text(text)) = &response.body else {
        panic!("response without a text body")
    };
    (
        response.status_code,
        serde_json::from_str(text).expect("response body is JSON"),
    )
}

/// A loopback port that accepts connections and never answers: an SQS that hangs.
pub fn black_hole() -> (TcpListener, String) {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    (listener, endpoint)
}

/// Adds a header to a Function URL event as Lambda delivers it: a name seen twice has its values
/// joined with commas.
pub fn add_header(event: &mut FunctionUrlRequest, name: &str, value: &str) {
    event
        .headers
        .entry(name.to_ascii_lowercase())
        .and_modify(|joined| {
            joined.push(',');
            joined.push_str(value);
        })
        .or_insert_with(|| value.to_owned());
}

/// An SQS message as the Lambda SQS event carries it.
pub fn lambda_record(
    message: &aws_sdk_sqs::types::Message,
) -> aws_lambda_events::event::sqs::SqsMessage {
    let attributes: serde_json::Map<String, serde_json::Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, a)| {
            (
                name.clone(),
                serde_json::json!({"stringValue": a.string_value(), "dataType": a.data_type()}),
            )
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "messageId": message.message_id(),
        "body": message.body(),
        "messageAttributes": attributes,
    }))
    .unwrap()
}

/// The shipped receiver under the Lambda emulator against moto: `queue_url`, the test kit's
/// relay keys and the given sender secrets (`HOOKRELAY_*_SECRETS`).
pub async fn start_receiver(
    queue_url: &str,
    secrets: &[(&str, &str)],
) -> hookrelay_devtools::lambda_emulator::LambdaInstance {
    let relay = hookrelay_devtools::relay_keys::env();
    let endpoint = &hookrelay_devtools::moto::moto().endpoint;
    let mut env = vec![
        ("HOOKRELAY_QUEUE_URL", queue_url),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        ("AWS_ENDPOINT_URL_SQS", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    env.extend_from_slice(secrets);
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_hookrelay"));
    hookrelay_devtools::lambda_emulator::LambdaInstance::start(binary, &env, None)
        .await
        .unwrap()
}

/// The first seed whose plan scripts the proxy's first calls as `calls`.
pub fn plan_scripting(calls: &[Option<Fault>]) -> FaultPlan {
    // The transport faults alone when they suffice, so existing scripts keep their seeds.
    let kinds = if calls.iter().flatten().all(|f| Fault::TRANSPORT.contains(f)) {
        Fault::TRANSPORT
    } else {
        Fault::SQS
    };
    (0..10_000_000)
        .map(|seed| FaultPlan {
            fraction: 0.6,
            seed,
            slow_for: std::time::Duration::from_secs(3),
            kinds,
        })
        .find(|plan| {
            (0..)
                .zip(calls)
                .all(|(call, fault)| plan.fault_for(call) == *fault)
        })
        .expect("a seed scripting these calls")
}
