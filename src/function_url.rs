//! The HTTP edge: a Lambda Function URL event (API Gateway v2 payload) in, a JSON response out,
//! one structured log line and one EMF metrics line per request; and [`serve`], the Lambda
//! runtime loop that hands each event here. The pipeline does the work.
//!
//! Why not lambda_http's `Request` conversion: it decodes base64 bodies with `expect`, so one
//! event with `isBase64Encoded: true` and a body that isn't base64 would panic the runtime (and
//! kill the process outright under `panic = "abort"`, which `cargo lambda build --release` uses).
//! Taking the event as data and decoding the body ourselves turns that case into a 400.
//!
//! Why not aws_lambda_events' `ApiGatewayV2httpRequest` either: it reads headers into an `http`
//! `HeaderMap`, which refuses a value with a control character (or a trailing CR/LF) and a name
//! that is not an HTTP token, even in a header nobody reads. The runtime then fails the
//! invocation before this code runs: no JSON answer, no log line, no metric, and a Lambda error
//! on the alarm. [`FunctionUrlRequest`] keeps every header as the text Lambda sent; a header the
//! pipeline never reads is ignored, and one it does read is judged there: a signature header, or
//! a signed Standard Webhooks id or timestamp, that is not visible ASCII is
//! `401 invalid_signature` (the signed content can't be read); an unsigned engine
//! `X-Webhook-Id` that isn't is ignored, as if absent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookrelay::signature::Headers;
use hookrelay_ingest::queue::Publisher;
use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::http::header::{ALLOW, CONTENT_TYPE};
use lambda_http::http::{HeaderMap, HeaderValue};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

use hookrelay_ingest::budget::{ANSWER_MARGIN, Budget};
use hookrelay_ingest::idempotency::IdempotencyStore;
use hookrelay_ingest::sequence::{Arrival, SequenceStore};
use lambda_http::http::header::RETRY_AFTER;

use crate::metrics::{self, RequestMetrics, StoreMetrics};
use crate::outcome::{Handled, Outcome, Rejection, StoreNotes};
use crate::pipeline::{Clock, FUNCTION_TIMEOUT, InboundRequest, Pipeline, RequestBody};

/// A Function URL invocation (the API Gateway v2 payload, version 2.0) as plain data: the fields
/// hookrelay reads, with every header kept as the text Lambda sent (see the module docs for why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlRequest {
    /// The request path.
    #[serde(default)]
    pub raw_path: Option<String>,
    /// Headers by (lowercase) name; Lambda joins a repeated header's values with commas. Read
    /// leniently: `null` is no headers, a list of values is joined with commas, a non-string
    /// value is its JSON text.
    #[serde(default, deserialize_with = "lenient_headers")]
    pub headers: BTreeMap<String, String>,
    /// The request context (method, path).
    #[serde(default)]
    pub request_context: RequestContext,
    /// The body, as text or as base64 (`is_base64_encoded`).
    #[serde(default)]
    pub body: Option<String>,
    /// Whether Lambda base64-encoded the body (it does for non-text content types).
    #[serde(default)]
    pub is_base64_encoded: bool,
}

fn lenient_headers<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(deserializer)?;
    let text = |value: serde_json::Value| match value {
        serde_json::Value::String(text) => Some(text),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    };
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| {
            let value = match value {
                serde_json::Value::Array(values) => Some(
                    values
                        .into_iter()
                        .filter_map(text)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                other => text(other),
            };
            value.map(|value| (name, value))
        })
        .collect())
}

/// The part of the request context hookrelay reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RequestContext {
    /// The HTTP facts.
    #[serde(default)]
    pub http: HttpContext,
}

/// The request's method and path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct HttpContext {
    /// The HTTP method.
    #[serde(default)]
    pub method: String,
    /// The path (also in `raw_path`).
    #[serde(default)]
    pub path: Option<String>,
}

/// Serves Function URL invocations through `pipeline` until the runtime stops.
pub async fn serve<P, C, S, Q>(pipeline: &Pipeline<P, C, S, Q>) -> Result<(), lambda_runtime::Error>
where
    P: Publisher + Sync,
    C: Clock,
    S: IdempotencyStore + Sync,
    Q: SequenceStore + Sync,
{
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<FunctionUrlRequest>| async move {
            let budget = budget_of(&event.context);
            Ok::<_, lambda_runtime::Error>(handle_within(pipeline, event.payload, budget).await)
        },
    ))
    .await
}

/// The time budget of an invocation: until its deadline (the Runtime API's
/// `Lambda-Runtime-Deadline-Ms`, wall-clock milliseconds), as a monotonic instant. A deadline
/// no Lambda gives (already past, or beyond Lambda's 15-minute maximum: a local emulator's, or a
/// clock that jumped) is not trusted: the template's timeout from now is used instead.
pub fn budget_of(context: &lambda_runtime::Context) -> Budget {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let left = Duration::from_millis(context.deadline.saturating_sub(now_ms));
    if left <= ANSWER_MARGIN || left > LAMBDA_MAX_TIMEOUT {
        return default_budget();
    }
    Budget::until_deadline(Instant::now() + left)
}

/// Lambda's longest function timeout.
const LAMBDA_MAX_TIMEOUT: Duration = Duration::from_secs(900);

/// [`handle_within`] the budget of an invocation that started now under the template's timeout
/// (for callers without a Lambda context).
pub async fn handle<P: Publisher, C: Clock, S: IdempotencyStore, Q: SequenceStore>(
    pipeline: &Pipeline<P, C, S, Q>,
    event: FunctionUrlRequest,
) -> ApiGatewayV2httpResponse {
    handle_within(pipeline, event, default_budget()).await
}

/// The budget of an invocation that started now under the template's timeout.
pub fn default_budget() -> Budget {
    Budget::from_timeout(Instant::now(), FUNCTION_TIMEOUT)
}

/// Handles one Function URL invocation within `budget` and writes its metrics to stdout. Never
/// fails: every outcome is an HTTP response.
pub async fn handle_within<P: Publisher, C: Clock, S: IdempotencyStore, Q: SequenceStore>(
    pipeline: &Pipeline<P, C, S, Q>,
    event: FunctionUrlRequest,
    budget: Budget,
) -> ApiGatewayV2httpResponse {
    let (response, request_metrics, store_metrics) = handle_measured(pipeline, event, budget).await;
    metrics::emit(
        pipeline.metrics_namespace(),
        &request_metrics,
        &store_metrics,
    );
    response
}

/// [`handle`], returning the request's metrics instead of writing them.
pub async fn handle_measured<P: Publisher, C: Clock, S: IdempotencyStore, Q: SequenceStore>(
    pipeline: &Pipeline<P, C, S, Q>,
    event: FunctionUrlRequest,
    budget: Budget,
) -> (ApiGatewayV2httpResponse, RequestMetrics, StoreMetrics) {
    let request = inbound_request(event);
    let route = loggable_path(&request.path);
    let (sender, result) = pipeline.handle_within(request, budget).await;
    let routed_to = sender.map_or("none", |sender| sender.name);
    log_result(&route, routed_to, &result);
    (
        response(&result),
        request_metrics(routed_to, &result),
        store_metrics(&result),
    )
}

fn store_metrics(result: &Result<Handled, Rejection>) -> StoreMetrics {
    let from_notes = |notes: &StoreNotes| StoreMetrics {
        latency: (notes.calls.count > 0).then_some(notes.calls.latency),
        failures: notes.calls.failures.len() as u32,
        conflict: notes.conflict.is_some(),
        out_of_order: notes.arrival == Some(Arrival::OutOfOrder),
        unrecorded: notes.unrecorded,
        ..StoreMetrics::default()
    };
    match result {
        Ok(handled) => StoreMetrics {
            ambiguous_attempts: handled.outcome.ambiguous_attempts(),
            possible_copy: handled.store.possible_copy_of.is_some()
                && handled.outcome != Outcome::Duplicate,
            ..from_notes(&handled.store)
        },
        Err(Rejection::QueueUnavailable { error, store, .. }) => StoreMetrics {
            ambiguous_attempts: error.ambiguous_attempts(),
            // Counted when the event is published, so a retried conflict counts once.
            conflict: false,
            ..from_notes(store)
        },
        Err(Rejection::InProgress { .. }) => StoreMetrics {
            in_progress: true,
            ..StoreMetrics::default()
        },
        Err(_) => StoreMetrics::default(),
    }
}

fn request_metrics(routed_to: &'static str, result: &Result<Handled, Rejection>) -> RequestMetrics {
    match result {
        Ok(handled) => match handled.outcome {
            Outcome::Accepted {
                publish_latency, ..
            } => RequestMetrics::Accepted {
                provider: handled.provider.name,
                publish_latency,
            },
            Outcome::Duplicate => RequestMetrics::Duplicate {
                provider: handled.provider.name,
            },
        },
        Err(Rejection::QueueUnavailable { after, .. }) => RequestMetrics::PublishFailed {
            provider: routed_to,
            publish_latency: *after,
        },
        Err(rejection) => RequestMetrics::Rejected {
            provider: routed_to,
            reason: rejection.status_and_code().1,
        },
    }
}

/// The request path for a log line: any sender can choose it, so it is cut to 128 characters
/// and control characters are escaped (no forged log lines in plain-text log format).
fn loggable_path(path: &str) -> String {
    let cut = path
        .char_indices()
        .nth(128)
        .map_or(path, |(end, _)| &path[..end]);
    cut.escape_debug().to_string()
}

fn inbound_request(event: FunctionUrlRequest) -> InboundRequest {
    let http = event.request_context.http;
    let path = event.raw_path.or(http.path).unwrap_or_default();
    let body = match event.body {
        Some(body) if event.is_base64_encoded => RequestBody::Base64(body),
        Some(body) => RequestBody::Text(body),
        None => RequestBody::Text(String::new()),
    };
    InboundRequest {
        method: http.method,
        path,
        headers: event.headers.into_iter().collect::<Headers>(),
        body,
    }
}

#[derive(Serialize)]
struct HandledBody<'a> {
    status: &'static str,
    id: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
}

fn response(result: &Result<Handled, Rejection>) -> ApiGatewayV2httpResponse {
    let (status, json) = match result {
        Ok(handled) => {
            let body = HandledBody {
                status: handled.outcome.as_str(),
                id: handled.dedupe_key.as_str(),
            };
            (200, serde_json::to_string(&body))
        }
        Err(rejection) => {
            let (status, code) = rejection.status_and_code();
            (
                status,
                serde_json::to_string(&ErrorBody {
                    error: code,
                    message: &rejection.public_message(),
                }),
            )
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if matches!(result, Err(Rejection::MethodNotAllowed)) {
        headers.insert(ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(seconds) = result.as_ref().err().and_then(Rejection::retry_after_secs) {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    // Serialising these two small structs cannot fail.
    response.body = Some(Body::Text(json.unwrap_or_default()));
    response
}

/// One line per request, and one more for each thing the dedupe layers noticed: a conflict
/// (both digests) and each failed store call. `routed_to` is the route's sender (`none` for
/// unknown paths).
fn log_result(route: &str, routed_to: &str, result: &Result<Handled, Rejection>) {
    let notes = match result {
        Ok(handled) => Some(&handled.store),
        Err(Rejection::QueueUnavailable { store, .. }) => Some(store.as_ref()),
        Err(_) => None,
    };
    if let Some(notes) = notes {
        log_store_notes(routed_to, notes);
    }
    if let Ok(handled) = result {
        if handled.store.unconfirmed_claim && handled.outcome != Outcome::Duplicate {
            tracing::warn!(
                provider = handled.provider.name,
                dedupe_key = handled.dedupe_key.as_str(),
                unconfirmed_claims = 1,
                "published without a confirmed claim (the store did not answer): an earlier attempt of this content more than five minutes ago would make this a second copy"
            );
        }
        match (
            handled.store.possible_copy_of,
            handled.store.earlier_attempt_at,
        ) {
            (Some(since), _) => tracing::warn!(
                provider = handled.provider.name,
                dedupe_key = handled.dedupe_key.as_str(),
                possible_copies = 1,
                possible_copy_of = since,
                "published again: an earlier attempt of this content (claimed at possible_copy_of) may have queued it already, where SQS will not drop a copy (same id)"
            ),
            // Within FIFO's window: SQS drops a copy. Logged (a warning, as the earlier
            // attempt's fault was) so a copy can still be traced to that attempt should the
            // window have passed after all (a clock off by minutes).
            (None, Some(since)) => tracing::warn!(
                provider = handled.provider.name,
                dedupe_key = handled.dedupe_key.as_str(),
                earlier_attempts = 1,
                earlier_attempt_at = since,
                "published again within SQS FIFO's deduplication window of an earlier attempt that may have queued it (SQS drops the copy)"
            ),
            (None, None) => {}
        }
    }
    match result {
        // SQS may hold more than one copy of this one (a standard queue keeps them): say which
        // event, as the failed send below does, so a copy can be traced to its count.
        Ok(handled) if handled.outcome.ambiguous_attempts() > 0 => tracing::warn!(
            provider = handled.provider.name,
            route,
            dedupe_key = handled.dedupe_key.as_str(),
            outcome = "accepted",
            ambiguous_attempts = handled.outcome.ambiguous_attempts(),
            "webhook handled; an earlier attempt of its send may have queued a copy (same id)"
        ),
        Ok(handled) => tracing::info!(
            provider = handled.provider.name,
            route,
            dedupe_key = handled.dedupe_key.as_str(),
            delivery_id = handled.delivery_id.as_deref(),
            outcome = handled.outcome.as_str(),
            "webhook handled"
        ),
        Err(
            rejection @ Rejection::QueueUnavailable {
                error, dedupe_key, ..
            },
        ) => {
            tracing::error!(
                provider = routed_to,
                route,
                dedupe_key = dedupe_key.as_str(),
                outcome = "queue_unavailable",
                ambiguous_attempts = error.ambiguous_attempts(),
                error = %rejection,
                "webhook not queued"
            )
        }
        Err(rejection) => {
            let (status, code) = rejection.status_and_code();
            tracing::warn!(
                provider = routed_to,
                route,
                outcome = code,
                status,
                reason = %rejection,
                "webhook rejected"
            )
        }
    }
}

fn log_store_notes(routed_to: &str, notes: &StoreNotes) {
    if notes.unrecorded {
        tracing::error!(
            provider = routed_to,
            "the event may be in the queue, but the store recorded nothing for it (its calls went unanswered or ran out of time): a later attempt of this content could be queued again"
        );
    }
    if let Some(conflict) = &notes.conflict {
        tracing::error!(
            provider = routed_to,
            dedupe_key = conflict.key.as_str(),
            recorded_digest = %conflict.recorded,
            this_digest = %conflict.this,
            "dedupe conflict: the key already holds other content; published under its own key instead of refused, since refusing would lose a real event"
        );
    }
    for (operation, error) in &notes.calls.failures {
        tracing::error!(
            provider = routed_to,
            operation = operation.as_str(),
            %error,
            "idempotency store call failed; the delivery went on without it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> FunctionUrlRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_function_url_event_becomes_a_request() {
        let e = event(serde_json::json!({
            "version": "2.0", "rawPath": "/engine", "rawQueryString": "",
            "headers": {"X-Webhook-Signature": "sha256=ab", "content-type": "application/octet-stream"},
            "requestContext": {"http": {"method": "POST", "path": "/engine", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}},
            "body": "e30=", "isBase64Encoded": true
        }));
        let r = inbound_request(e);
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/engine"));
        assert_eq!(
            r.headers.get("content-type"),
            Ok("application/octet-stream")
        );
        assert_eq!(r.headers.get("x-webhook-signature"), Ok("sha256=ab"));
        assert!(matches!(r.body, RequestBody::Base64(ref b) if b == "e30="));
    }

    #[tokio::test]
    async fn log_lines_carry_outcomes_but_never_bodies_signatures_or_secrets() {
        use hookrelay::senders::REKKO;
        use hookrelay::signature::SigningSecret;
        use hookrelay_devtools::memory::DiscardingPublisher as AcceptAll;
        use hookrelay_ingest::telemetry::{self, test_support::CapturedLogs};
        use tracing_subscriber::util::SubscriberInitExt;

        use crate::config::Config;
        use crate::pipeline::{FixedClock, Stores};

        const SECRET: &str = "log-test-secret-0123456789";
        let relay = hookrelay_devtools::relay_keys::env();
        let vars = [
            ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:9/q"),
            ("HOOKRELAY_REKKO_SECRETS", SECRET),
            (relay[0].0, relay[0].1.as_str()),
            (relay[1].0, relay[1].1.as_str()),
        ];
        let config = Config::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let now = time::OffsetDateTime::from_unix_timestamp(1_771_455_600).unwrap();
        let pipeline = Pipeline::new(&config, AcceptAll, FixedClock(now), Stores::NONE);
        let sign = |body: &str| {
            let secret = SigningSecret::from_key_bytes(SECRET.as_bytes());
            REKKO
                .scheme
                .sign(&secret, None, body.as_bytes())
                .remove(0)
                .1
        };
        let request = |body: &str, signature: &str| {
            event(serde_json::json!({
                "rawPath": "/rekko",
                "headers": {"x-webhook-signature": signature},
                "requestContext": {"http": {"method": "POST"}},
                "body": body, "isBase64Encoded": false
            }))
        };

        let logs = CapturedLogs::default();
        let _guard = telemetry::subscriber("trace", true, logs.clone(), &[]).set_default();
        let valid = r#"{"type":"price_shift","timestamp":"2026-02-18T23:00:00Z","note":"BODY-MARKER-valid"}"#;
        let valid_signature = sign(valid);
        let malformed = r#"["BODY-MARKER-array"]"#;
        let malformed_signature = sign(malformed);
        for (body, signature, status) in [
            (valid, valid_signature.as_str(), 200),
            (
                &valid.replace("valid\"", "forged\""),
                valid_signature.as_str(),
                401,
            ),
            (malformed, malformed_signature.as_str(), 400),
        ] {
            assert_eq!(
                handle(&pipeline, request(body, signature))
                    .await
                    .status_code,
                status
            );
        }

        let text = logs.text();
        for expected in [
            "\"outcome\":\"accepted\"",
            "invalid_signature",
            "malformed_payload",
            r#""provider":"rekko","route":"/rekko","outcome":"invalid_signature""#,
            "rekko:",
        ] {
            assert!(text.contains(expected), "missing {expected}: {text}");
        }
        for secret in [
            SECRET,
            &relay[0].1["whsk_".len()..],
            &valid_signature,
            &malformed_signature,
            "BODY-MARKER",
        ] {
            assert!(!text.contains(secret), "logs leak {secret}: {text}");
        }
    }

    #[tokio::test]
    async fn headers_the_http_crate_refuses_get_a_json_answer_not_a_failed_invocation() {
        use hookrelay_devtools::memory::MemoryPublisher;

        use crate::config::Config;
        use crate::pipeline::{FixedClock, Stores};

        // A subscriber of this test's own: tracing caches each log line's interest per
        // callsite, so logging here with none installed could disable the lines for the test
        // above that captures them on another thread.
        let logs = hookrelay_ingest::telemetry::test_support::CapturedLogs::default();
        let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(
            hookrelay_ingest::telemetry::subscriber("trace", true, logs, &[]),
        );
        let relay = hookrelay_devtools::relay_keys::env();
        let config = Config::from_lookup(|name| match name {
            "HOOKRELAY_QUEUE_URL" => Some("http://127.0.0.1:9/q".into()),
            name if name == relay[0].0 => Some(relay[0].1.clone()),
            name if name == relay[1].0 => Some(relay[1].1.clone()),
            "HOOKRELAY_REKKO_SECRETS" | "HOOKRELAY_STANDARD_SECRETS" => {
                Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
            }
            _ => None,
        })
        .unwrap();
        let now = time::OffsetDateTime::from_unix_timestamp(1_771_455_600).unwrap();
        let publisher = MemoryPublisher::default();
        let pipeline = Pipeline::new(&config, publisher.clone(), FixedClock(now), Stores::NONE);
        // Raw event JSON as the runtime receives it: `http` refuses each of these headers.
        let raw = |path: &str, headers: &str| {
            format!(
                r#"{{"rawPath":"{path}","headers":{{{headers}}},"requestContext":{{"http":{{"method":"POST"}}}},"body":"{{}}","isBase64Encoded":false}}"#
            )
        };
        for (path, headers, status, code) in [
            // A control character in a header nobody reads: ignored, the request is judged as usual.
            ("/rekko", r#""x-note":"a\u0001b""#, 401, "missing_signature"),
            // A trailing CR/LF and a name that is not a token, likewise.
            (
                "/rekko",
                r#""x-trailing":"v\r\n","bad name":"v""#,
                401,
                "missing_signature",
            ),
            // In the signature header itself: an unreadable signature.
            (
                "/rekko",
                r#""x-webhook-signature":"ab\u0000""#,
                401,
                "invalid_signature",
            ),
            // In a signed Standard Webhooks header: the signed content cannot be read.
            (
                "/standard",
                r#""webhook-id":"msg\u0007","webhook-timestamp":"1771455600","webhook-signature":"v1,AAAA""#,
                401,
                "invalid_signature",
            ),
        ] {
            let event: FunctionUrlRequest = serde_json::from_str(&raw(path, headers))
                .expect("the edge decodes any header text");
            let response = handle(&pipeline, event).await;
            assert_eq!(response.status_code, status, "{headers}");
            let Some(Body::Text(text)) = response.body else {
                panic!("a JSON body")
            };
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["error"], code, "{headers}: {text}");
        }
        assert!(publisher.is_empty());
        // Shapes Lambda doesn't send but a test harness might: still an answer, not a failure.
        for headers in [
            r#""headers":null"#,
            r#""headers":{"x":["a","b"],"y":7,"z":null}"#,
        ] {
            let raw = format!(
                r#"{{"rawPath":"/rekko",{headers},"requestContext":{{"http":{{"method":"POST"}}}},"body":"{{}}"}}"#
            );
            let event: FunctionUrlRequest = serde_json::from_str(&raw).expect(headers);
            assert_eq!(handle(&pipeline, event).await.status_code, 401, "{headers}");
        }
        let listed: FunctionUrlRequest =
            serde_json::from_str(r#"{"headers":{"x":["a","b"],"y":7,"z":null}}"#).unwrap();
        assert_eq!(listed.headers.get("x").map(String::as_str), Some("a,b"));
        assert_eq!(listed.headers.get("y").map(String::as_str), Some("7"));
        assert!(!listed.headers.contains_key("z"));
        // The old event type refuses the same JSON outright (what failed the invocation).
        let refused = serde_json::from_str::<
            lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest,
        >(&raw("/rekko", r#""x-note":"a\u0001b""#));
        assert!(
            refused.is_err(),
            "aws_lambda_events now accepts it: revisit the edge"
        );
    }

    #[test]
    fn logged_paths_are_bounded_and_escaped() {
        assert_eq!(loggable_path("/engine"), "/engine");
        assert_eq!(
            loggable_path("/x\n{\"level\":\"INFO\"}"),
            r#"/x\n{\"level\":\"INFO\"}"#
        );
        assert_eq!(loggable_path(&"é".repeat(500)).chars().count(), 128);
    }

    #[test]
    fn the_budget_follows_the_invocations_deadline_and_distrusts_impossible_ones() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let within = |deadline: u64| {
            let mut context = lambda_runtime::Context::default();
            context.deadline = deadline;
            budget_of(&context)
                .answer_by()
                .saturating_duration_since(Instant::now())
        };
        // 3 s left: answer 500 ms before it.
        let three = within(now_ms + 3_000);
        assert!(three <= Duration::from_millis(2_500) && three > Duration::from_secs(2));
        // Past, or beyond Lambda's 15 minutes: the template's timeout from now.
        for impossible in [0, now_ms - 1, now_ms + 901_000] {
            let fallback = within(impossible);
            assert!(fallback > Duration::from_secs(7) && fallback <= Duration::from_millis(7_500));
        }
    }

    #[test]
    fn responses_are_json_with_the_contract_codes() {
        let r = response(&Err(Rejection::MethodNotAllowed));
        assert_eq!(r.status_code, 405);
        assert_eq!(r.headers.get(ALLOW).unwrap(), "POST");
        let Some(Body::Text(text)) = r.body else {
            panic!()
        };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["error"], "method_not_allowed");
        assert!(json["message"].as_str().unwrap().contains("POST"));
    }
}
