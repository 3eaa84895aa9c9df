//! What the queue side promises: dedupe across instances through FIFO ids, 503 (and a clean
//! retry) when SQS fails or hangs, every attempt SQS may have queued counted, and contract errors
//! for requests that never reach the queue.

use hookrelay_aws::SqsPublisher;
use hookrelay_devtools::fault_proxy::{Fault, FaultProxy};
use hookrelay_ingest::queue::{Publisher, SQS_SEND_BOUND};
use hookrelay_receiver::function_url;

use crate::helpers::*;

#[tokio::test]
async fn a_repeat_at_another_instance_is_absorbed_by_fifo_deduplication() {
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    // Two warm instances, each with its own in-memory window.
    let first = pipeline(&client, &queue_url, 2);
    let second = pipeline(&client, &queue_url, 7);
    for instance in [&first, &second] {
        let (status, body) =
            read_response(&function_url::handle(instance, fixture("engine-valid")).await);
        assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    }
    let messages = receive_all(&client, &queue_url).await;
    assert_eq!(
        messages.len(),
        1,
        "SQS FIFO dedup must drop the second send"
    );
}

#[tokio::test]
async fn a_failed_publish_answers_503_and_the_senders_retry_is_accepted() {
    let client = sqs_client(&moto().endpoint);
    let name = unique_queue_name(true);
    // The queue does not exist yet, so SQS refuses the send.
    let queue_url = format!("{}/123456789012/{name}", moto().endpoint);
    let receiver = pipeline(&client, &queue_url, 2);

    let (status, body) =
        read_response(&function_url::handle(&receiver, fixture("rekko-valid")).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("queue_unavailable")),
        "{body}"
    );
    assert!(
        !body["message"].as_str().unwrap().contains("123456789012"),
        "no SQS internals to the sender"
    );

    let created = create_queue(&client, &name).await;
    assert_eq!(created, queue_url);
    let (status, body) =
        read_response(&function_url::handle(&receiver, fixture("rekko-valid")).await);
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "the failed attempt was not recorded"
    );
    assert_eq!(receive_all(&client, &queue_url).await.len(), 1);
}

#[tokio::test]
async fn an_sqs_that_never_answers_is_a_503_not_a_hang() {
    // The publisher is built the way main.rs builds it, so this exercises the shipped timeouts:
    // without them the SDK would wait on the silent socket indefinitely and this test would hang.
    let (_listener, endpoint) = black_hole();
    let queue_url = format!("{endpoint}/123456789012/events.fifo");
    let receiver = production_pipeline(&endpoint, &queue_url).await;
    let (status, body) =
        read_response(&function_url::handle(&receiver, fixture("engine-valid")).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("queue_unavailable")),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_at_the_size_limit_is_queued_whole() {
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    let receiver = pipeline(&client, &queue_url, 2);
    let head = r#"{"type":"analysis_complete","timestamp":"2026-02-18T23:00:00Z","pad":""#;
    let pad = "x".repeat(262_144 - head.len() - 2);
    let body = format!("{head}{pad}\"}}");
    assert_eq!(body.len(), 262_144, "exactly HOOKRELAY_MAX_BODY_BYTES");

    let mut event = fixture("rekko-valid");
    event.headers.insert(
        "x-webhook-signature".into(),
        rekko_signature(body.as_bytes()),
    );
    event.body = Some(body.clone());
    let (status, answer) = read_response(&function_url::handle(&receiver, event).await);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );

    let messages = receive_all(&client, &queue_url).await;
    assert_eq!(messages.len(), 1);
    let envelope = hookrelay::Envelope::from_json(messages[0].body().unwrap()).unwrap();
    assert_eq!(envelope.signed_data(), body);
}

#[tokio::test]
async fn requests_outside_the_contract_get_json_errors_and_send_nothing() {
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    let receiver = pipeline(&client, &queue_url, 2);

    let mut get = fixture("engine-valid");
    get.request_context.http.method = "GET".into();
    let response = function_url::handle(&receiver, get).await;
    assert_eq!(response.headers.get("allow").unwrap(), "POST");
    assert_eq!(read_response(&response).1["error"], "method_not_allowed");
    assert_eq!(read_response(&response).0, 405);

    let mut elsewhere = fixture("engine-valid");
    elsewhere.raw_path = Some("/admin".into());
    assert_eq!(
        read_response(&function_url::handle(&receiver, elsewhere).await).0,
        404
    );

    // Lambda's base64 flag on a body that is not base64: lambda_http's own conversion would
    // panic here; the receiver answers 400.
    let mut bad_base64 = fixture("engine-base64");
    bad_base64.body = Some("%%% not base64 %%%".into());
    let (status, body) = read_response(&function_url::handle(&receiver, bad_base64).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("malformed_payload"))
    );

    let mut unsigned = fixture("rekko-valid");
    unsigned.headers.remove("x-webhook-signature");
    let (status, body) = read_response(&function_url::handle(&receiver, unsigned).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_signature"))
    );

    let mut huge = fixture("rekko-valid");
    huge.body = Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(262_144)));
    let (status, body) = read_response(&function_url::handle(&receiver, huge).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    assert!(receive_all(&client, &queue_url).await.is_empty());
}

/// The SDK's retries inside one send can queue a message more than once on a standard queue:
/// an attempt SQS took whose answer was lost, then the retry. Every such attempt is counted,
/// whether the send then succeeded or failed, so `AmbiguousPublish` bounds the copies. An answer
/// that does not prove receipt (no `MessageId`, a wrong MD5) is never taken as accepted.
#[tokio::test]
async fn every_attempt_sqs_may_have_queued_is_counted_whether_the_send_succeeds_or_fails() {
    let endpoint = &moto().endpoint;
    let client = sqs_client(endpoint);
    for (calls, copies, outcome) in [
        // Queued, answer lost; queued again and answered: two copies, one counted attempt.
        (vec![Some(Fault::ResetAfter), None], 2, Ok(1)),
        // Throttled (a definite refusal, not counted), then answered: one copy.
        (vec![Some(Fault::Throttled), None], 1, Ok(0)),
        // Queued, answered after the attempt timed out; then answered: two copies, one counted.
        (vec![Some(Fault::Slow), None], 2, Ok(1)),
        // Three attempts queued and lost: three copies, a failed send counting all three.
        (vec![Some(Fault::ResetAfter); 3], 3, Err(3)),
        // A stand-in answered 200 without a MessageId (nothing queued, no proof of receipt):
        // sent again and confirmed; one copy, one attempt counted (an upper bound).
        (vec![Some(Fault::NoMessageId), None], 1, Ok(1)),
        // Queued twice, both answers with a wrong MD5: never `accepted`, both counted.
        (vec![Some(Fault::WrongMd5); 2], 2, Err(2)),
    ] {
        let queue_url = create_queue(&client, &unique_queue_name(false)).await;
        let proxy = FaultProxy::start(endpoint, plan_scripting(&calls))
            .await
            .unwrap();
        let publisher =
            SqsPublisher::from_sdk_config(&local_sdk_config(&proxy.url).await, &queue_url);
        let message = hookrelay_ingest::queue::QueueMessage {
            body: r#"{"v":1,"id":"probe"}"#.to_owned(),
            attributes: Vec::new(),
            group_id: "g".to_owned(),
            deduplication_id: "d".to_owned(),
        };
        let sent = publisher.publish(&message, SQS_SEND_BOUND).await;
        let counted = sent
            .as_ref()
            .map(|sent| sent.ambiguous_attempts)
            .map_err(|error| error.ambiguous_attempts());
        assert_eq!(counted, outcome, "{calls:?}: {sent:?}");
        assert_eq!(
            receive_all(&client, &queue_url).await.len(),
            copies,
            "{calls:?}"
        );
    }
}
