//! `hookrelay-dev send`'s smoke test against the local pipeline: the shipped binary under the
//! Lambda emulator's Function URL front end, a real local SQS queue. The delivery is accepted,
//! the queue check finds and verifies its own message, a message that isn't its own is handed
//! back and left in the queue, and the consumer API acknowledges a smoke test without handing it
//! to the handler. With the optional front's origin check on, only requests carrying its header
//! get through.

use std::time::Duration;

use hookrelay::config::Env;
use hookrelay::consumer::{Consumer, Processed};
use hookrelay::secret::SenderSecrets;
use hookrelay::senders::{REKKO, STANDARD};
use hookrelay_devtools::memory::RecordingHandler;
use hookrelay_devtools::relay_keys;
use hookrelay_devtools::smoke;
use time::OffsetDateTime;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_test_is_accepted_found_checked_and_skipped_by_consumers() {
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    // Somebody else's message, already in the queue: it must survive the check untouched.
    client
        .send_message()
        .queue_url(&queue_url)
        .message_body(r#"{"not":"ours"}"#)
        .message_group_id("someone-else")
        .message_deduplication_id("someone-else-1")
        .send()
        .await
        .unwrap();
    let instance = start_receiver(
        &queue_url,
        &[
            ("HOOKRELAY_REKKO_SECRETS", REKKO_SECRET),
            ("HOOKRELAY_STANDARD_SECRETS", STANDARD_SECRET),
        ],
    )
    .await;

    let now = OffsetDateTime::now_utc();
    let rekko = smoke::delivery(REKKO, REKKO_SECRET, now, 1);
    let (status, body) = smoke::send(&smoke::route_url(&instance.url, REKKO), &rekko)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\""), "{body}");
    let found = smoke::check_queue(
        &client,
        &queue_url,
        &rekko,
        REKKO_SECRET,
        &relay_keys::trust(),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(found.id, rekko.dedupe_key);
    // The foreign message is still there, and visible again at once.
    let left = receive_all(&client, &queue_url).await;
    assert_eq!(left.len(), 1, "only the foreign message remains");
    assert_eq!(left[0].body(), Some(r#"{"not":"ours"}"#));

    // A wrong secret fails the check instead of passing it.
    let standard = smoke::delivery(STANDARD, STANDARD_SECRET, now, 2);
    let (status, _) = smoke::send(&smoke::route_url(&instance.url, STANDARD), &standard)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let wrong = "whsec_YS1jb21wbGV0ZWx5LWRpZmZlcmVudC1zZWNyZXQ=";
    assert!(
        smoke::check_queue(
            &client,
            &queue_url,
            &standard,
            wrong,
            &relay_keys::trust(),
            Duration::from_secs(5)
        )
        .await
        .unwrap_err()
        .contains("does not verify")
    );

    // Consumers acknowledge a smoke test without acting on it (it is verified like any other).
    let message = receive_all(&client, &queue_url)
        .await
        .into_iter()
        .find(|m| m.body().is_some_and(|b| b.contains("hookrelay.smoke_test")))
        .expect("the standard smoke test is back in the queue after the failed check");
    let secrets = SenderSecrets::from_env(&Env::new(|name: &str| {
        (name == "HOOKRELAY_STANDARD_SECRETS").then(|| STANDARD_SECRET.to_owned())
    }))
    .unwrap();
    let handled = RecordingHandler::default();
    let consumer = Consumer::new(relay_keys::trust(), &handled).with_sender_secrets(secrets);
    let attributes: std::collections::HashMap<String, String> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
        .collect();
    assert_eq!(
        consumer.process(message.body(), &attributes).unwrap(),
        Processed::SkippedSmokeTest
    );
    assert!(handled.ids().is_empty());
}

#[tokio::test]
async fn the_smoke_test_reads_its_secret_from_the_environment_or_secrets_manager() {
    let arn = crate::startup::create_secret(&format!(
        r#"{{"rekko": "{REKKO_SECRET}, a-second-rekko-secret-in-rotation"}}"#
    ))
    .await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto().endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    assert_eq!(
        smoke::secret(REKKO, None, Some(&arn), &sdk).await.unwrap(),
        REKKO_SECRET,
        "the first of the secret's list"
    );
    assert_eq!(
        smoke::secret(REKKO, Some(" env-secret-first , x"), Some(&arn), &sdk)
            .await
            .unwrap(),
        "env-secret-first",
        "the environment wins"
    );
    assert!(
        smoke::secret(STANDARD, None, Some(&arn), &sdk)
            .await
            .unwrap_err()
            .contains("no \"standard\" key")
    );
    assert!(smoke::secret(REKKO, None, None, &sdk).await.is_err());
}

/// The optional front's origin check, as the shipped receiver runs it: once origin values are
/// configured, a delivery without the front's header (sent straight to the Function URL) or
/// with a wrong one is refused 403 before its signature is read; with one of the values it goes
/// through. docs/security.md, "The optional front".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_front_on_only_requests_through_it_reach_the_pipeline() {
    const ORIGIN: &str = "front-origin-value-0123456789abcdef";
    const NEXT: &str = "front-origin-value-fedcba9876543210";
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    let instance = start_receiver(
        &queue_url,
        &[
            ("HOOKRELAY_REKKO_SECRETS", REKKO_SECRET),
            ("HOOKRELAY_ORIGIN_SECRETS", &format!("{ORIGIN},{NEXT}")),
        ],
    )
    .await;
    let url = smoke::route_url(&instance.url, REKKO);
    let now = OffsetDateTime::now_utc();
    let send = |nonce: u64, origin: Option<&str>| {
        let mut delivery = smoke::delivery(REKKO, REKKO_SECRET, now, nonce);
        if let Some(origin) = origin {
            delivery
                .headers
                .push(("x-hookrelay-origin", origin.to_owned()));
        }
        let url = url.clone();
        async move { smoke::send(&url, &delivery).await.unwrap() }
    };
    for (nonce, origin) in [(1, None), (2, Some("front-origin-value-0123456789abcdeX"))] {
        let (status, body) = send(nonce, origin).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("\"origin_refused\""), "{body}");
        assert!(!body.contains(ORIGIN), "{body}");
    }
    for (nonce, origin) in [(3, ORIGIN), (4, NEXT)] {
        let (status, body) = send(nonce, Some(origin)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(receive_all(&client, &queue_url).await.len(), 2);
}
