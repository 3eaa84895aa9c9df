//! The Lambda benchmark's in-region model held to moto: the canned endpoints
//! (`hookrelay_devtools::canned_aws`, BENCHMARKS.md section 3) must take the calls the shipped
//! receiver makes as deployed (both secrets from Secrets Manager, the queue check, the store on,
//! every send over TLS) and answer them so that every check the receiver makes on moto's
//! answers passes on theirs, with the same outcome for every delivery and the same messages
//! queued. A canned answer the receiver rejected, or a call it never made, would leave the
//! benchmark timing something a deployment never does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hookrelay_devtools::canned_aws::{CannedAws, CannedPlan};
use hookrelay_devtools::lambda_emulator::LambdaInstance;
use hookrelay_devtools::local_dynamodb;
use hookrelay_devtools::moto::moto;
use hookrelay_devtools::sender_sim;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::*;

/// A throwaway CA and a certificate for 127.0.0.1 (`scripts/bench_tls.py`, as the benchmark
/// makes them), in a directory of this test's own.
fn tls_files() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookrelay-canned-tls-{}", std::process::id()));
    let python = hookrelay_devtools::moto::test_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_tls.py");
    let status = std::process::Command::new(python)
        .arg(script)
        .arg(&dir)
        .status()
        .expect("run scripts/bench_tls.py");
    assert!(status.success(), "scripts/bench_tls.py failed");
    dir
}

/// Engine deliveries signed with `secret` at the test's start: three events, then the first one
/// again (answered from the instance's window, with no call at all).
fn deliveries(secret: &str) -> Vec<Vec<u8>> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    [1, 2, 3, 1]
        .map(|sequence| {
            let body = format!(
                r#"{{"id":"evt-canned-{sequence}","sequence":{sequence},"eventType":"ORDER_MATCHED","marketId":"mkt-canned","operatorId":"op-canned","payload":{{"price":0.65}},"timestamp":"{now}"}}"#
            );
            let mut headers = serde_json::Map::new();
            for (name, value) in
                sender_sim::sign(hookrelay::senders::ENGINE, secret, None, body.as_bytes())
            {
                headers.insert(name.to_ascii_lowercase(), value.into());
            }
            hookrelay_devtools::lambda_emulator::function_url_event(
                "POST", "/engine", headers, body, false,
            )
        })
        .to_vec()
}

/// Each delivery's HTTP status and `status`, in order.
async fn outcomes(instance: &LambdaInstance, deliveries: &[Vec<u8>]) -> Vec<(i64, String)> {
    let mut answers = Vec::new();
    for event in deliveries {
        let hookrelay_devtools::lambda_emulator::Invocation::Response(json) =
            instance.invoke_raw(event.clone()).await
        else {
            panic!("the receiver failed the invocation");
        };
        let response: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        answers.push((
            response["statusCode"].as_i64().unwrap(),
            body["status"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn the_canned_endpoints_take_the_shipped_receivers_calls_as_moto_does() {
    let relay = hookrelay_devtools::relay_keys::env();
    let webhooks = format!(r#"{{"engine":"{ENGINE_SECRET}"}}"#);
    let deliveries = deliveries(ENGINE_SECRET);
    let base = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        (relay[1].0, relay[1].1.as_str()),
    ];

    // Moto: the queue, the table and both secrets, as the stack creates them.
    let endpoint = &moto().endpoint;
    let sqs = sqs_client(endpoint);
    let queue_name = unique_queue_name(true);
    let moto_queue = create_queue(&sqs, &queue_name).await;
    let table = format!("hookrelay-canned-{}", std::process::id());
    local_dynamodb::create_idempotency_table(&local_dynamodb::client(endpoint), &table)
        .await
        .unwrap();
    let webhooks_arn = crate::startup::create_secret(&webhooks).await;
    let relay_arn = crate::startup::create_secret(&relay[0].1).await;
    let mut env = base.to_vec();
    env.extend([
        ("HOOKRELAY_QUEUE_URL", moto_queue.as_str()),
        ("HOOKRELAY_SECRETS_ARN", webhooks_arn.as_str()),
        ("HOOKRELAY_RELAY_SIGNING_KEYS_ARN", relay_arn.as_str()),
        ("HOOKRELAY_IDEMPOTENCY_TABLE", table.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ]);
    let binary = Path::new(env!("CARGO_BIN_EXE_hookrelay"));
    let on_moto = LambdaInstance::start(binary, &env, None).await.unwrap();
    let moto_answers = outcomes(&on_moto, &deliveries).await;

    // The canned endpoints, over TLS: the same secrets under ARNs of their own.
    let tls = tls_files();
    let (canned_webhooks, canned_relay) = (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:canned-webhooks",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:canned-relay",
    );
    let canned = CannedAws::start(
        &tls.join("cert.pem"),
        &tls.join("key.pem"),
        CannedPlan {
            latency: Duration::from_millis(1),
            secrets: vec![
                (canned_webhooks.to_owned(), webhooks.clone()),
                (canned_relay.to_owned(), relay[0].1.clone()),
            ],
            fifo: true,
        },
    )
    .await
    .unwrap();
    let canned_queue = format!("{}/123456789012/{queue_name}", canned.sqs_url);
    let ca = tls.join("ca.pem").to_string_lossy().into_owned();
    let mut env = base.to_vec();
    env.extend([
        ("HOOKRELAY_QUEUE_URL", canned_queue.as_str()),
        ("HOOKRELAY_SECRETS_ARN", canned_webhooks),
        ("HOOKRELAY_RELAY_SIGNING_KEYS_ARN", canned_relay),
        ("HOOKRELAY_IDEMPOTENCY_TABLE", table.as_str()),
        ("AWS_ENDPOINT_URL_SQS", canned.sqs_url.as_str()),
        ("AWS_ENDPOINT_URL_DYNAMODB", canned.dynamodb_url.as_str()),
        (
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            canned.secrets_manager_url.as_str(),
        ),
        ("SSL_CERT_FILE", ca.as_str()),
    ]);
    let on_canned = LambdaInstance::start(binary, &env, None).await.unwrap();
    let canned_answers = outcomes(&on_canned, &deliveries).await;

    let accepted = (200, "accepted".to_owned());
    assert_eq!(
        moto_answers,
        [
            accepted.clone(),
            accepted.clone(),
            accepted,
            (200, "duplicate".to_owned())
        ],
        "moto: three events queued, the re-delivery a duplicate"
    );
    assert_eq!(
        canned_answers, moto_answers,
        "the canned endpoints' answers pass every check moto's do, to the same outcomes"
    );
    let queued = local_sqs_ids(&sqs, &moto_queue).await;
    let mut sent = canned.sent.ids();
    sent.sort();
    assert_eq!(queued.len(), 3, "moto holds one message per event");
    assert_eq!(
        sent, queued,
        "the canned SQS took the same messages, under the same deduplication ids"
    );
    // Every call a deployment makes reached the canned endpoints: both secrets and the queue
    // check at init, a claim and a commit per queued event.
    let calls = &canned.sent;
    assert_eq!(calls.calls("secretsmanager.GetSecretValue"), 2);
    assert_eq!(calls.calls("AmazonSQS.GetQueueAttributes"), 1);
    assert_eq!(calls.calls("AmazonSQS.SendMessage"), 3);
    assert!(
        calls.calls("DynamoDB_") >= 6,
        "a claim and a commit for each of the three events, got {}",
        calls.calls("DynamoDB_")
    );
    let _ = std::fs::remove_dir_all(&tls);
}

/// The deduplication ids of the messages in `queue_url`, sorted (read, not deleted).
async fn local_sqs_ids(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let messages = hookrelay_devtools::local_sqs::collect(
        sqs,
        queue_url,
        3,
        Duration::from_secs(10),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let mut ids: Vec<String> = messages
        .iter()
        .filter_map(|message| {
            message
                .attributes()
                .and_then(|attributes| {
                    attributes.get(
                        &aws_sdk_sqs::types::MessageSystemAttributeName::MessageDeduplicationId,
                    )
                })
                .cloned()
        })
        .collect();
    ids.sort();
    ids
}
