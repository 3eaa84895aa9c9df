//! The local lab's SQS tap: a proxy in front of the lab's AWS endpoint (moto) that passes every
//! call through unchanged and records each message SQS accepted (`SendMessage`,
//! `SendMessageBatch`), so `hookrelay-dev watch` and `trigger` can show what the receiver and
//! the bridge published without receiving it from the queue.
//!
//! Why a tap and not a peek: receiving a message, even with a visibility timeout of 0, counts
//! toward the queue's redrive policy, hides it from the bot for that moment, and in a FIFO queue
//! returns only the head of each message group, so a watcher would see a backlog's first ten
//! messages and nothing after them. The tap sees every accepted send, in order, whether or not a
//! bot has already deleted it, and any number of watchers can read it.
//!
//! What it records mirrors what the queue holds: for a FIFO queue, a send whose deduplication id
//! (in its message group) was first sent less than 5 minutes ago is not recorded again (SQS drops
//! it; unlike moto, SQS deduplicates even after the first copy was deleted). It keeps the latest
//! [`TAP_CAPACITY`] messages, and at most [`TAP_CAPACITY_BYTES`] of bodies. Read it with `GET /hookrelay-tap/messages?after=N&wait_ms=M`: the messages after
//! number `N` (all it holds for `N = 0`), waiting up to `M` ms (at most 20 s) for one to arrive.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::http_client::HttpClient;

/// How many messages the tap keeps (the oldest go first)...
pub const TAP_CAPACITY: usize = 10_000;
/// ... and how many bytes of bodies at most.
pub const TAP_CAPACITY_BYTES: usize = 256 << 20;
/// The path the tap answers on; everything else goes to the upstream endpoint.
pub const TAP_PATH: &str = "/hookrelay-tap/messages";
/// SQS FIFO's deduplication interval.
const FIFO_DEDUP_INTERVAL: Duration = Duration::from_secs(300);
/// The longest a reader may wait for a new message.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// One message SQS accepted, as a consumer would receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TappedMessage {
    /// Its number in the tap, from 1.
    pub number: u64,
    /// The queue it went to.
    pub queue_url: String,
    /// The `MessageId` SQS answered with.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// The string message attributes.
    pub attributes: BTreeMap<String, String>,
    /// The FIFO message group.
    pub group_id: Option<String>,
    /// The FIFO deduplication id.
    pub deduplication_id: Option<String>,
    /// When SQS accepted it, Unix milliseconds.
    pub accepted_at_ms: u64,
}

/// A page of the tap: the messages after the number asked for, and the latest number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TapPage {
    /// The messages, oldest first.
    pub messages: Vec<TappedMessage>,
    /// The number of the latest message recorded (0 before the first).
    pub latest: u64,
}

#[derive(Default)]
struct Recorded {
    messages: VecDeque<TappedMessage>,
    bytes: usize,
    latest: u64,
    /// FIFO deduplication ids seen, per queue and message group (the lab's queue deduplicates
    /// per group, as the template's does), with when each was first sent.
    fifo_ids: HashMap<(String, Option<String>, String), Instant>,
}

#[derive(Default)]
struct Tap {
    recorded: Mutex<Recorded>,
    arrived: Notify,
}

/// A running tap.
pub struct SqsTap {
    /// `http://127.0.0.1:<port>`: the endpoint for every AWS client of the lab.
    pub url: String,
}

impl SqsTap {
    /// Listens on `address` and forwards every call to `upstream` (moto's endpoint).
    pub async fn start(address: SocketAddr, upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let tap = Arc::new(Tap::default());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream, tap) = (client.clone(), upstream.clone(), tap.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        handle(client.clone(), upstream.clone(), tap.clone(), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url })
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("a header"),
    );
    response
}

async fn handle(
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Arc<str>,
    tap: Arc<Tap>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if request.method() == Method::GET && request.uri().path() == TAP_PATH {
        let (after, wait) = page_query(request.uri().query().unwrap_or(""));
        let page = read_page(&tap, after, wait).await;
        let body = serde_json::to_string(&page).unwrap_or_default();
        return Ok(json_response(StatusCode::OK, body));
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            r#"{"__type":"InvalidRequest","message":"the request body did not arrive"}"#.to_owned(),
        ));
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    // The Host header goes along, so moto writes queue URLs with the tap's address.
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let unreachable = || {
        json_response(
            StatusCode::BAD_GATEWAY,
            r#"{"__type":"InternalError","message":"the lab's AWS endpoint (moto) is unreachable"}"#
                .to_owned(),
        )
    };
    let Ok(forward) = forward.body(Full::new(body.clone())) else {
        return Ok(unreachable());
    };
    let Ok(answer) = client.request(forward).await else {
        return Ok(unreachable());
    };
    let (answer_parts, answer_body) = answer.into_parts();
    let Ok(answer_body) = answer_body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(unreachable());
    };
    if answer_parts.status == StatusCode::OK
        && let Some(target) = target.as_deref()
    {
        record(&tap, target, &body, &answer_body);
    }
    Ok(Response::from_parts(answer_parts, Full::new(answer_body)))
}

/// `after` and `wait_ms` from the query string.
fn page_query(query: &str) -> (u64, Duration) {
    let mut after = 0;
    let mut wait = Duration::ZERO;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("after", n)) => after = n.parse().unwrap_or(0),
            Some(("wait_ms", n)) => wait = Duration::from_millis(n.parse().unwrap_or(0)),
            _ => {}
        }
    }
    (after, wait.min(MAX_WAIT))
}

async fn read_page(tap: &Tap, after: u64, wait: Duration) -> TapPage {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let arrived = tap.arrived.notified();
        {
            let recorded = tap.recorded.lock().expect("the tap's lock");
            let messages: Vec<TappedMessage> = recorded
                .messages
                .iter()
                .filter(|m| m.number > after)
                .cloned()
                .collect();
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline {
                return TapPage {
                    messages,
                    latest: recorded.latest,
                };
            }
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            let recorded = tap.recorded.lock().expect("the tap's lock");
            return TapPage {
                messages: Vec::new(),
                latest: recorded.latest,
            };
        }
    }
}

/// The messages a successful `SendMessage` or `SendMessageBatch` put in the queue.
fn sent_messages(target: &str, request: &[u8], answer: &[u8]) -> Vec<(String, TappedMessage)> {
    let (Ok(request), Ok(answer)) = (
        serde_json::from_slice::<Value>(request),
        serde_json::from_slice::<Value>(answer),
    ) else {
        return Vec::new();
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let queue_url = text(&request, "QueueUrl").unwrap_or_default();
    let message = |entry: &Value, message_id: String| TappedMessage {
        number: 0,
        queue_url: queue_url.clone(),
        message_id,
        body: text(entry, "MessageBody").unwrap_or_default(),
        attributes: entry
            .get("MessageAttributes")
            .and_then(Value::as_object)
            .map(|attributes| {
                attributes
                    .iter()
                    .filter_map(|(name, a)| Some((name.clone(), text(a, "StringValue")?)))
                    .collect()
            })
            .unwrap_or_default(),
        group_id: text(entry, "MessageGroupId"),
        deduplication_id: text(entry, "MessageDeduplicationId"),
        accepted_at_ms: 0,
    };
    match target {
        "AmazonSQS.SendMessage" => text(&answer, "MessageId")
            .map(|id| vec![(queue_url.clone(), message(&request, id))])
            .unwrap_or_default(),
        "AmazonSQS.SendMessageBatch" => {
            let entries = request.get("Entries").and_then(Value::as_array);
            let successful = answer.get("Successful").and_then(Value::as_array);
            let (Some(entries), Some(successful)) = (entries, successful) else {
                return Vec::new();
            };
            successful
                .iter()
                .filter_map(|ok| {
                    let id = text(ok, "Id")?;
                    let entry = entries
                        .iter()
                        .find(|e| text(e, "Id").as_deref() == Some(&id))?;
                    Some((queue_url.clone(), message(entry, text(ok, "MessageId")?)))
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn record(tap: &Tap, target: &str, request: &[u8], answer: &[u8]) {
    let sent = sent_messages(target, request, answer);
    if sent.is_empty() {
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut recorded = tap.recorded.lock().expect("the tap's lock");
    let now = Instant::now();
    recorded
        .fifo_ids
        .retain(|_, at| now.duration_since(*at) < FIFO_DEDUP_INTERVAL);
    for (queue_url, mut message) in sent {
        if queue_url.ends_with(".fifo")
            && let Some(id) = &message.deduplication_id
        {
            let key = (queue_url.clone(), message.group_id.clone(), id.clone());
            if recorded.fifo_ids.contains_key(&key) {
                continue; // within 5 minutes of the first send: SQS dropped it
            }
            recorded.fifo_ids.insert(key, now);
        }
        recorded.latest += 1;
        message.number = recorded.latest;
        message.accepted_at_ms = now_ms;
        recorded.bytes += message.body.len();
        recorded.messages.push_back(message);
        while recorded.messages.len() > TAP_CAPACITY || recorded.bytes > TAP_CAPACITY_BYTES {
            let Some(oldest) = recorded.messages.pop_front() else {
                break;
            };
            recorded.bytes -= oldest.body.len();
        }
    }
    drop(recorded);
    tap.arrived.notify_waiters();
}

/// Reads a tap at `tap_url` (the lab's endpoint) with `client`: the messages after `after`,
/// waiting up to `wait` for one.
pub async fn read(
    client: &HttpClient,
    tap_url: &str,
    after: u64,
    wait: Duration,
) -> Result<TapPage, String> {
    let url = format!(
        "{}{TAP_PATH}?after={after}&wait_ms={}",
        tap_url.trim_end_matches('/'),
        wait.as_millis()
    );
    let gone = |e: &dyn std::fmt::Display| {
        format!("the lab's tap at {tap_url} does not answer ({e}): is `hookrelay-dev up` running?")
    };
    match client
        .request("GET", &url, &[], "", wait + Duration::from_secs(10))
        .await
    {
        Ok((200, body)) => serde_json::from_str(&body).map_err(|e| gone(&e)),
        Ok((status, _)) => Err(gone(&status)),
        Err(problem) => Err(gone(&problem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: &str = r#"{"QueueUrl":"http://q/123/events.fifo","MessageBody":"{\"id\":\"a\"}","MessageGroupId":"g","MessageDeduplicationId":"d1","MessageAttributes":{"provider":{"DataType":"String","StringValue":"engine"}}}"#;

    #[test]
    fn a_send_is_recorded_once_per_fifo_deduplication_id() {
        let tap = Tap::default();
        record(
            &tap,
            "AmazonSQS.SendMessage",
            SEND.as_bytes(),
            br#"{"MessageId":"m1"}"#,
        );
        record(
            &tap,
            "AmazonSQS.SendMessage",
            SEND.as_bytes(),
            br#"{"MessageId":"m2"}"#,
        );
        let other = SEND.replace("d1", "d2");
        record(
            &tap,
            "AmazonSQS.SendMessage",
            other.as_bytes(),
            br#"{"MessageId":"m3"}"#,
        );
        let recorded = tap.recorded.lock().unwrap();
        let ids: Vec<_> = recorded
            .messages
            .iter()
            .map(|m| (m.number, m.message_id.as_str()))
            .collect();
        assert_eq!(ids, [(1, "m1"), (2, "m3")]);
        let first = &recorded.messages[0];
        assert_eq!(first.body, r#"{"id":"a"}"#);
        assert_eq!(first.attributes["provider"], "engine");
        assert_eq!(first.group_id.as_deref(), Some("g"));
    }

    #[test]
    fn a_batch_records_only_its_successful_entries() {
        let request = r#"{"QueueUrl":"http://q/123/std","Entries":[{"Id":"0","MessageBody":"x"},{"Id":"1","MessageBody":"y"}]}"#;
        let answer = r#"{"Successful":[{"Id":"1","MessageId":"m-y"}],"Failed":[{"Id":"0","Code":"InternalError"}]}"#;
        let sent = sent_messages(
            "AmazonSQS.SendMessageBatch",
            request.as_bytes(),
            answer.as_bytes(),
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.body, "y");
        assert_eq!(sent[0].1.message_id, "m-y");
        assert!(
            sent_messages(
                "AmazonSQS.ReceiveMessage",
                request.as_bytes(),
                answer.as_bytes()
            )
            .is_empty()
        );
        assert!(sent_messages("AmazonSQS.SendMessage", b"not json", b"{}").is_empty());
    }

    #[test]
    fn the_query_is_bounded() {
        assert_eq!(
            page_query("after=7&wait_ms=500"),
            (7, Duration::from_millis(500))
        );
        assert_eq!(page_query("wait_ms=999999"), (0, MAX_WAIT));
        assert_eq!(page_query("after=x"), (0, Duration::ZERO));
    }
}
