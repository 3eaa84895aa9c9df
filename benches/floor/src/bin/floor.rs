//! The floor of the Lambda benchmark (BENCHMARKS.md, "Cold start and warm overhead against the
//! floor"): a Function URL function built from hookrelay's runtime, SDK configuration, SQS
//! client, TLS settings and release profile that sends each event's body as one SQS message and
//! answers 200, with no verification and no routing. Whatever hookrelay takes beyond it is hookrelay's
//! own work. With `HOOKRELAY_FLOOR_CONNECT_AT_INIT=true` it opens its SQS connection during init
//! (one `GetQueueAttributes`), as the receiver's queue check does. It logs each send's time as
//! `PublishLatency`, as the receiver does, for the bench's overhead figure.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::Client;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};

/// The one field of the Function URL event the floor reads.
#[derive(Deserialize)]
struct FunctionUrlEvent {
    #[serde(default)]
    body: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk_config =
        hookrelay_aws::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
    let client = Client::new(&sdk_config);
    let queue_url = std::env::var("HOOKRELAY_QUEUE_URL")?;
    if std::env::var("HOOKRELAY_FLOOR_CONNECT_AT_INIT").is_ok_and(|value| value == "true") {
        client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .send()
            .await?;
    }
    let fifo = queue_url.ends_with(".fifo");
    // Deduplication ids no other process shares: a random instance token and a counter.
    let instance = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let sent = AtomicU64::new(0);
    let (client, queue_url, sent) = (&client, queue_url.as_str(), &sent);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<FunctionUrlEvent>| async move {
            let body = event.payload.body.unwrap_or_default();
            let mut send = client
                .send_message()
                .queue_url(queue_url)
                .message_body(body);
            if fifo {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                send = send
                    .message_group_id("floor")
                    .message_deduplication_id(format!("{instance:016x}-{n}"));
            }
            let started = Instant::now();
            send.send().await?;
            let publish_ms = started.elapsed().as_secs_f64() * 1e3;
            println!("{}", json!({ "PublishLatency": publish_ms }));
            Ok::<Value, Error>(json!({"statusCode": 200, "body": "{}"}))
        },
    ))
    .await
}
