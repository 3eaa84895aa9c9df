//! No event can take the process down: the shipped binary, running under the Lambda Runtime API
//! emulator, answers a crafted event whose `isBase64Encoded` body is not base64 (lambda_http's
//! own conversion would panic on it) and one with headers the `http` crate refuses, and then
//! serves the next invocation from the same process.

use hookrelay_devtools::lambda_emulator::Invocation;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_base64_event_is_answered_and_the_process_lives_on() {
    let client = sqs_client(&moto().endpoint);
    let queue_url = create_queue(&client, &unique_queue_name(true)).await;
    let mut instance =
        start_receiver(&queue_url, &[("HOOKRELAY_REKKO_SECRETS", REKKO_SECRET)]).await;
    let pid = instance.pid();

    let mut crafted = serde_json::to_value(fixture("rekko-base64")).unwrap();
    crafted["body"] = "%%% this is not base64 %%%".into();
    crafted["isBase64Encoded"] = true.into();
    let Invocation::Response(answer) = instance
        .invoke_raw(serde_json::to_vec(&crafted).unwrap())
        .await
    else {
        panic!("the function reported an error (a panic would do that) instead of answering");
    };
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["statusCode"], 400, "{answer}");
    assert!(
        answer["body"]
            .as_str()
            .unwrap()
            .contains("malformed_payload")
    );

    // Headers the `http` crate refuses (a control character, a trailing CR/LF, a name that is
    // not a token): before, the runtime failed the invocation on them; now the request is
    // answered in JSON like any other (here the fixture's stale signed time).
    let mut odd_headers = serde_json::to_value(fixture("rekko-valid")).unwrap();
    odd_headers["headers"]["x-note"] = "a\u{1}b".into();
    odd_headers["headers"]["x-trailing"] = "v\r\n".into();
    odd_headers["headers"]["not a token"] = "v".into();
    let Invocation::Response(answer) = instance
        .invoke_raw(serde_json::to_vec(&odd_headers).unwrap())
        .await
    else {
        panic!("the invocation failed on headers the edge should read leniently");
    };
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["statusCode"], 401, "{answer}");
    assert!(answer["body"].as_str().unwrap().contains("stale_timestamp"));

    // Garbage that isn't even an event: the runtime reports it, the process stays.
    assert!(matches!(
        instance.invoke_raw(b"{not json".to_vec()).await,
        Invocation::Error(_)
    ));

    // The same process then handles a real delivery (signed now, through the Function URL).
    let body = format!(
        r#"{{"type":"whale_alert","market_id":"KX","timestamp":"{}"}}"#,
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let mut valid = fixture("rekko-valid");
    valid.body = Some(body.clone());
    valid.headers.insert(
        "x-webhook-signature".into(),
        rekko_signature(body.as_bytes()),
    );
    let Invocation::Response(answer) = instance
        .invoke_raw(serde_json::to_vec(&valid).unwrap())
        .await
    else {
        panic!("no answer to the valid delivery");
    };
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert!(instance.is_running(), "the process must survive");
    assert_eq!(instance.pid(), pid, "and be the same process");
    assert_eq!(receive_all(&client, &queue_url).await.len(), 1);
}
