//! A proxy between the receiver (or the bridge) and an AWS endpoint (SQS, DynamoDB) that fails
//! a chosen fraction of calls, in each way those services really fail:
//!
//! | fault | what the client sees | did the call take effect? |
//! |---|---|---|
//! | `Http500` | 500 `InternalError` | no |
//! | `Throttled` | 400 `ThrottlingException` | no |
//! | `ResetBefore` | the connection closes without a response | no |
//! | `ResetAfter` | the connection closes without a response | yes: forwarded first |
//! | `Slow` | the response arrives after the client's timeout | yes: forwarded first |
//! | `Late` | no response: the client times out | yes, *after* the client gave up: forwarded `slow_for` later |
//! | `NoMessageId` | 200, an answer without a `MessageId` | no: a stand-in answered, nothing was forwarded |
//! | `WrongMd5` | 200, the answer's `MD5OfMessageBody` altered (an answer that is not for this message) | yes |
//!
//! The ambiguous ones are the dangerous ones: the service has the call, the client sees a failure
//! (or an answer that proves nothing) and the sender retries. Which calls fail is decided by a
//! seeded hash of the call number over the plan's kinds, so a run is repeatable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::seeded;

/// The kinds of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 InternalError, not forwarded.
    Http500,
    /// 400 ThrottlingException, not forwarded.
    Throttled,
    /// Connection closed without a response, not forwarded.
    ResetBefore,
    /// Forwarded (queued), then the connection closed without a response.
    ResetAfter,
    /// Forwarded (queued), answered only after `slow_for`.
    Slow,
    /// Held for `slow_for` (past the client's timeout), then forwarded: it takes effect after the
    /// client gave up on it. Never answered.
    Late,
    /// Not forwarded, answered 200 with an answer that has no `MessageId`.
    NoMessageId,
    /// Forwarded, answered 200 with a wrong `MD5OfMessageBody`. (A body altered on the way would
    /// fail SQS's SigV4 check, which signs the payload, and never be stored; so an answer that
    /// doesn't match is the answer's fault, not the message's.)
    WrongMd5,
}

impl Fault {
    /// Refusals and the two ambiguous transport faults, in the order the draw picks them: the
    /// plan of the tests that script calls.
    pub const TRANSPORT: &'static [Fault] = ALL.split_at(5).0;

    /// [`Fault::TRANSPORT`] and a request delivered late: every way a call can be refused or
    /// take effect unseen (DynamoDB's faults in the audit).
    pub const AMBIGUOUS: &'static [Fault] = ALL.split_at(6).0;

    /// [`Fault::AMBIGUOUS`] and answers that prove nothing (SQS's faults in the audit).
    pub const SQS: &'static [Fault] = &ALL;

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Http500 => "HTTP 500",
            Fault::Throttled => "throttled",
            Fault::ResetBefore => "reset before forwarding",
            Fault::ResetAfter => "reset after forwarding",
            Fault::Slow => "slower than the client timeout",
            Fault::Late => "delivered late",
            Fault::NoMessageId => "200 without a MessageId",
            Fault::WrongMd5 => "200 with a wrong MD5",
        }
    }
}

const ALL: [Fault; 8] = [
    Fault::Http500,
    Fault::Throttled,
    Fault::ResetBefore,
    Fault::ResetAfter,
    Fault::Slow,
    Fault::Late,
    Fault::NoMessageId,
    Fault::WrongMd5,
];

/// Which calls fail, and how.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    /// The fraction of calls that fail, 0.0 to 1.0.
    pub fraction: f64,
    /// Seed of the per-call draw.
    pub seed: u64,
    /// How long a `Slow` response, or a `Late` request, is held (longer than the client's
    /// attempt timeout).
    pub slow_for: Duration,
    /// The faults drawn from, evenly ([`Fault::TRANSPORT`], [`Fault::AMBIGUOUS`],
    /// [`Fault::SQS`]).
    pub kinds: &'static [Fault],
}

impl FaultPlan {
    /// The fault the proxy injects into call number `call` (from 0), if any: a pure function of
    /// the plan, so a test can pick a seed that scripts the calls it needs.
    pub fn fault_for(&self, call: u64) -> Option<Fault> {
        let roll = seeded::draw(self.seed, call);
        let kinds = self.kinds;
        (roll < self.fraction && !kinds.is_empty()).then(|| {
            let index = ((roll / self.fraction) * kinds.len() as f64) as usize;
            kinds[index.min(kinds.len() - 1)]
        })
    }
}

/// Calls seen and faults injected, by kind.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Calls that reached the proxy.
    pub calls: AtomicU64,
    /// Per `Fault`, in declaration order.
    pub injected: [AtomicU64; ALL.len()],
}

impl FaultCounts {
    /// Faults injected of `kind`.
    pub fn of(&self, kind: Fault) -> u64 {
        self.injected[kind as usize].load(Ordering::Relaxed)
    }

    /// All faults injected.
    pub fn total(&self) -> u64 {
        self.injected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// A running proxy.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: use as the SQS endpoint.
    pub url: String,
    /// What it has done so far.
    pub counts: Arc<FaultCounts>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. moto's endpoint) failing calls per `plan`.
    pub async fn start(upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(FaultCounts::default());
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let server_counts = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream, counts) =
                    (client.clone(), upstream.clone(), server_counts.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        handle(
                            client.clone(),
                            upstream.clone(),
                            counts.clone(),
                            plan,
                            request,
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, counts })
    }
}

#[derive(Debug)]
struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for DroppedConnection {}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"__type": kind, "message": message}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.0".parse().unwrap(),
    );
    response
}

async fn handle(
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Arc<str>,
    counts: Arc<FaultCounts>,
    plan: FaultPlan,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let call = counts.calls.fetch_add(1, Ordering::Relaxed);
    let fault = plan.fault_for(call);
    if let Some(kind) = fault {
        counts.injected[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        Some(Fault::Http500) => {
            return Ok(aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "fault injected",
            ));
        }
        Some(Fault::Throttled) => {
            return Ok(aws_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
            ));
        }
        Some(Fault::ResetBefore) => return Err(DroppedConnection),
        Some(Fault::NoMessageId) => {
            let mut answer = aws_error(StatusCode::OK, "", "");
            *answer.body_mut() = Full::new(Bytes::from_static(
                br#"{"MD5OfMessageBody":"00000000000000000000000000000000"}"#,
            ));
            return Ok(answer);
        }
        _ => {}
    }

    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut forward = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != "host" {
            forward = forward.header(name, value);
        }
    }
    let Ok(forward) = forward.body(Full::new(body)) else {
        return Err(DroppedConnection);
    };
    if fault == Some(Fault::Late) {
        // Taken effect after the client gave up: forwarded later, on its own, never answered.
        tokio::spawn(async move {
            tokio::time::sleep(plan.slow_for).await;
            let _ = client.request(forward).await;
        });
        tokio::time::sleep(plan.slow_for * 2).await;
        return Err(DroppedConnection);
    }
    let upstream_response = match client.request(forward).await {
        Ok(response) => response,
        Err(_) => {
            return Ok(aws_error(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                "upstream unreachable",
            ));
        }
    };
    let (parts, body) = upstream_response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    match fault {
        Some(Fault::ResetAfter) => Err(DroppedConnection),
        Some(Fault::Slow) => {
            tokio::time::sleep(plan.slow_for).await;
            Ok(Response::from_parts(parts, Full::new(body)))
        }
        Some(Fault::WrongMd5) => {
            let body = wrong_md5(&body);
            let mut parts = parts;
            parts.headers.remove("content-length");
            Ok(Response::from_parts(parts, Full::new(body)))
        }
        _ => Ok(Response::from_parts(parts, Full::new(body))),
    }
}

/// A JSON answer (SQS's `SendMessage`) with a wrong `MD5OfMessageBody`; any other unchanged.
fn wrong_md5(body: &Bytes) -> Bytes {
    let Ok(serde_json::Value::Object(mut answer)) = serde_json::from_slice(body) else {
        return body.clone();
    };
    let Some(md5) = answer.get_mut("MD5OfMessageBody") else {
        return body.clone();
    };
    *md5 = "0123456789abcdef0123456789abcdef".into();
    Bytes::from(serde_json::Value::Object(answer).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_hits_the_fraction_and_covers_every_kind() {
        let fraction = 0.2;
        let mut kinds = [0u32; 5];
        assert_eq!(Fault::TRANSPORT.len(), 5);
        assert!(!Fault::TRANSPORT.contains(&Fault::Late));
        assert_eq!(Fault::AMBIGUOUS.last(), Some(&Fault::Late));
        assert_eq!(Fault::SQS.len(), 8);
        let mut faults = 0;
        for call in 0..100_000 {
            let roll = seeded::draw(42, call);
            assert!((0.0..1.0).contains(&roll));
            if roll < fraction {
                faults += 1;
                kinds[(((roll / fraction) * 5.0) as usize).min(4)] += 1;
            }
        }
        assert!((19_000..21_000).contains(&faults), "{faults}");
        assert!(
            kinds.iter().all(|k| (3_500..4_500).contains(k)),
            "{kinds:?}"
        );
    }
}
