//! The HTTP edge: a Lambda Function URL event (API Gateway v2 payload) in, a JSON response out,
//! and one structured log line per request. No I/O of its own; the pipeline does the work.
//!
//! Why not lambda_http's `Request` conversion: it decodes base64 bodies with `expect`, so one
//! event with `isBase64Encoded: true` and a body that isn't base64 would panic the runtime (and
//! kill the process outright under `panic = "abort"`, which `cargo lambda build --release` uses).
//! Taking the event as data and decoding the body ourselves turns that case into a 400.

use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::header::{ALLOW, CONTENT_TYPE};
use lambda_http::http::{HeaderMap, HeaderValue};
use serde::Serialize;

use crate::pipeline::{Clock, Handled, InboundRequest, Pipeline, Rejection, RequestBody};
use crate::queue::Publisher;

/// Handles one Function URL invocation. Never fails: every outcome is an HTTP response.
pub async fn handle<P: Publisher, C: Clock>(
    pipeline: &Pipeline<P, C>,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let request = inbound_request(event);
    let route = request.path.clone();
    let result = pipeline.handle(request).await;
    log_result(&route, &result);
    response(&result)
}

fn inbound_request(event: ApiGatewayV2httpRequest) -> InboundRequest {
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
        headers: event.headers,
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
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    // Serialising these two small structs cannot fail.
    response.body = Some(Body::Text(json.unwrap_or_default()));
    response
}

fn log_result(route: &str, result: &Result<Handled, Rejection>) {
    match result {
        Ok(handled) => tracing::info!(
            provider = handled.provider.as_str(),
            route,
            dedupe_key = handled.dedupe_key.as_str(),
            delivery_id = handled.delivery_id.as_deref(),
            outcome = handled.outcome.as_str(),
            "webhook handled"
        ),
        Err(rejection @ Rejection::QueueUnavailable(_)) => {
            tracing::error!(route, outcome = "queue_unavailable", error = %rejection, "webhook not queued")
        }
        Err(rejection) => {
            let (status, code) = rejection.status_and_code();
            tracing::warn!(route, outcome = code, status, reason = %rejection, "webhook rejected")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> ApiGatewayV2httpRequest {
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
        assert_eq!(r.headers.get("x-webhook-signature").unwrap(), "sha256=ab");
        assert!(matches!(r.body, RequestBody::Base64(ref b) if b == "e30="));
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
