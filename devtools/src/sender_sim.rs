//! A sender simulator, the load generator for the delivery audit and the benchmarks (usable by
//! hand through `hookrelay-audit`). It builds deliveries signed exactly as each seed document
//! describes, sends them concurrently across receiver instances, and behaves like the providers'
//! senders under failure:
//!
//! - retries a non-2xx answer or a timeout on the engine's schedule: immediately, then after
//!   5 s, then after 30 s (three attempts; the delays scale for tests), each attempt with the
//!   engine's 10 s timeout and possibly to a different instance, as Lambda would route it;
//! - sends in a shuffled order;
//! - re-sends a fraction of acknowledged deliveries once more, as a sender that missed the 2xx;
//! - sends *twins* when asked: an engine event's `operatorId` and `sequence` reused by a second
//!   webhook registration (its own secret, its own counter) for other content, with the
//!   original or a few seconds after it (docs/contract.md, "Dedupe, in layers": both must be
//!   delivered, once each).
//!
//! A delivery is signed when first sent, so its timestamp is fresh, and retried with the same
//! bytes, as real senders retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookrelay::senders;
use hookrelay::signature::SigningSecret;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::seeded;

/// The senders' signing secrets.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    /// The engine secret (used as its text's bytes).
    pub engine: String,
    /// A second engine registration's secret, which signs twins.
    pub engine_twin: String,
    /// The Rekko secret (used as its text's bytes).
    pub rekko: String,
    /// The Standard Webhooks secret, `whsec_<base64>`.
    pub standard: String,
}

/// Which sender an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The prediction-engine operator API.
    Engine,
    /// Rekko.
    Rekko,
    /// A Standard Webhooks sender.
    Standard,
}

/// One event to send: the `n`th of its sender, or the twin of the engine's `n`th.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    /// Its sender.
    pub sender: Sender,
    /// Its number, unique per sender.
    pub n: u64,
    /// The twin of engine event `n`: the same `operatorId` and `sequence` from a second
    /// registration, with other content (another event type; the same market for even `n`,
    /// another for odd), signed with [`SigningKeys::engine_twin`].
    pub twin: bool,
    /// How long after the start its first attempt waits.
    pub delay: Duration,
}

/// A delivery, signed.
#[derive(Debug, Clone)]
pub struct SignedDelivery {
    /// The route.
    pub path: &'static str,
    /// Headers, as the sender sends them.
    pub headers: Vec<(&'static str, String)>,
    /// The body bytes signed.
    pub body: Vec<u8>,
    /// The dedupe key hookrelay will give it.
    pub dedupe_key: String,
}

impl SignedDelivery {
    /// The Function URL event Lambda would hand the function for this delivery (JSON bytes).
    pub fn function_url_event(&self) -> Vec<u8> {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
            .collect();
        let body = String::from_utf8_lossy(&self.body).into_owned();
        crate::lambda_emulator::function_url_event("POST", self.path, headers, body, false)
    }
}

/// The headers that sign `body` as `sender` signs, with the secret written as in configuration
/// (`whsec_<base64>` for Standard Webhooks, the text itself for the hex schemes): the library's
/// `Scheme::sign`, the one implementation of each scheme. `id_and_timestamp` are Standard
/// Webhooks' `webhook-id` and `webhook-timestamp`.
pub fn sign(
    sender: senders::Sender,
    secret: &str,
    id_and_timestamp: Option<(&str, &str)>,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let key = sender
        .scheme
        .key_from_text(secret)
        .expect("a test secret in its configuration form");
    sender
        .scheme
        .sign(&SigningSecret::from_key_bytes(&key), id_and_timestamp, body)
}

/// The signature header's value alone, as [`sign`] writes it.
pub fn signature(
    sender: senders::Sender,
    secret: &str,
    id_and_timestamp: Option<(&str, &str)>,
    body: &[u8],
) -> String {
    let signature_header = sender.scheme.signature_header();
    sign(sender, secret, id_and_timestamp, body)
        .into_iter()
        .find(|(name, _)| *name == signature_header)
        .map(|(_, value)| value)
        .unwrap_or_default()
}

fn rfc3339(unix_seconds: f64, millis: bool) -> String {
    let nanos = (unix_seconds * 1e9) as i128;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let whole = at.replace_nanosecond(0).unwrap_or(at);
    let text = whole
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    if millis {
        format!("{}.{:03}Z", text.trim_end_matches('Z'), at.millisecond())
    } else {
        text
    }
}

impl EventSpec {
    /// The `n`th event of `sender`, sent at once.
    pub fn of(sender: Sender, n: u64) -> Self {
        Self {
            sender,
            n,
            twin: false,
            delay: Duration::ZERO,
        }
    }

    /// The twin of engine event `n`, first sent `delay` after the start.
    pub fn twin_of(n: u64, delay: Duration) -> Self {
        Self {
            twin: true,
            delay,
            ..Self::of(Sender::Engine, n)
        }
    }

    /// The delivery for this event, signed at `now` (Unix seconds) as its sender signs.
    pub fn sign(&self, keys: &SigningKeys, now: f64) -> SignedDelivery {
        self.sign_body(keys, now, self.body(now))
    }

    /// [`EventSpec::sign`] with the body padded to exactly `body_len` bytes (when it is shorter)
    /// by a `trail` array of small objects and a `memo` string, as a sender with a larger event
    /// would send it: the benchmarks' bodies. No sender routes on those fields, so only a Rekko
    /// dedupe key (a digest of the whole body) differs from the unpadded event's.
    pub fn sign_padded(&self, keys: &SigningKeys, now: f64, body_len: usize) -> SignedDelivery {
        let mut body = self.body(now);
        // `,"trail":[...]` with items `{"seq":N,"price":0.65,"shares":10,"venue":"clob"}`, then
        // `,"memo":"mmm"` to reach the exact length (when the unpadded body leaves room).
        let memo_overhead = r#","memo":"""#.len();
        let mut len = body.to_string().len() + r#","trail":[]"#.len() + memo_overhead;
        let mut trail = Vec::new();
        for seq in 0u64.. {
            let item =
                serde_json::json!({"seq": seq, "price": 0.65, "shares": 10, "venue": "clob"});
            let item_len = item.to_string().len() + usize::from(seq > 0);
            if len + item_len > body_len {
                break;
            }
            len += item_len;
            trail.push(item);
        }
        if let Some(room) = body_len.checked_sub(len)
            && let Some(object) = body.as_object_mut()
        {
            object.insert("trail".into(), trail.into());
            object.insert("memo".into(), "m".repeat(room).into());
        }
        self.sign_body(keys, now, body)
    }

    fn body(&self, now: f64) -> serde_json::Value {
        let n = self.n;
        match self.sender {
            Sender::Engine if self.twin => {
                let market = format!("mkt-{}", (n + n % 2) % 7);
                serde_json::json!({
                    "id": format!("dlv-b-{n:06}"), "sequence": n, "eventType": "ORDER_CANCELED",
                    "marketId": market, "operatorId": "op-audit",
                    "payload": {"orderId": format!("ord-b-{n}"), "marketId": market,
                        "operatorId": "op-audit", "status": "CANCELED",
                        "timestamp": (now * 1000.0) as i64},
                    "timestamp": rfc3339(now, true),
                })
            }
            Sender::Engine => serde_json::json!({
                "id": format!("dlv-{n:06}"), "sequence": n, "eventType": "ORDER_MATCHED",
                "marketId": format!("mkt-{}", n % 7), "operatorId": "op-audit",
                "payload": {"orderId": format!("ord-{n}"), "marketId": format!("mkt-{}", n % 7),
                    "outcomeId": "yes", "operatorId": "op-audit", "tradeId": format!("trd-{n}"), "side": "BUY",
                    "price": 0.65, "shares": 50, "filledShares": 50, "remainingShares": 0, "status": "FILLED",
                    "timestamp": (now * 1000.0) as i64},
                "timestamp": rfc3339(now, true),
            }),
            Sender::Rekko => serde_json::json!({
                "type": "price_shift", "market_id": format!("KX-{}", n % 5), "platform": "kalshi",
                "old_yes": 0.62, "new_yes": 0.62 + (n % 30) as f64 / 100.0, "change_pct": 9.7,
                "shift_id": n, "timestamp": rfc3339(now, false),
            }),
            Sender::Standard => serde_json::json!(
                {"type": "invoice.paid", "timestamp": rfc3339(now, false), "data": {"n": n}}
            ),
        }
    }

    /// The same body signed again at `now`: a sender's late retry (Standard Webhooks signs each
    /// attempt's own `webhook-timestamp`; the engine and Rekko sign the body alone).
    pub fn sign_again(&self, keys: &SigningKeys, now: f64, body: &[u8]) -> SignedDelivery {
        let body = serde_json::from_slice(body).unwrap_or_default();
        self.sign_body(keys, now, body)
    }

    fn sign_body(&self, keys: &SigningKeys, now: f64, body: serde_json::Value) -> SignedDelivery {
        let n = self.n;
        let body = body.to_string().into_bytes();
        match self.sender {
            Sender::Engine => {
                // X-Webhook-Signature: sha256=<hex HMAC-SHA256(body, secret)>; a twin is signed
                // by its own registration's secret.
                let (secret, event, delivery) = if self.twin {
                    (&keys.engine_twin, "ORDER_CANCELED", format!("dlv-b-{n:06}"))
                } else {
                    (&keys.engine, "ORDER_MATCHED", format!("dlv-{n:06}"))
                };
                let signature = signature(senders::ENGINE, secret, None, &body);
                SignedDelivery {
                    path: "/engine",
                    headers: vec![
                        ("content-type", "application/json".into()),
                        ("x-webhook-signature", signature),
                        ("x-webhook-event", event.into()),
                        ("x-webhook-id", delivery),
                    ],
                    body,
                    dedupe_key: format!("engine:op-audit:{n}"),
                }
            }
            Sender::Rekko => {
                // Rekko: x-webhook-signature: <hex HMAC-SHA256(body, secret)>.
                let signature = signature(senders::REKKO, &keys.rekko, None, &body);
                let digest = hex::encode(Sha256::digest(&body));
                SignedDelivery {
                    path: "/rekko",
                    headers: vec![
                        ("content-type", "application/json".into()),
                        ("x-webhook-signature", signature),
                    ],
                    body,
                    dedupe_key: format!("rekko:{}", &digest[..32]),
                }
            }
            Sender::Standard => {
                // Standard Webhooks: v1,<base64 HMAC-SHA256(id.timestamp.body)> with the whsec key.
                let id = format!("msg_audit_{n}");
                let timestamp = (now as i64).to_string();
                let mut headers = vec![("content-type", "application/json".to_owned())];
                headers.extend(sign(
                    senders::STANDARD,
                    &keys.standard,
                    Some((&id, &timestamp)),
                    &body,
                ));
                SignedDelivery {
                    path: "/standard",
                    headers,
                    body,
                    dedupe_key: format!("standard:{id}"),
                }
            }
        }
    }
}

/// How the simulated senders behave.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Waits before the 2nd, 3rd, … attempt (the engine: 5 s, 30 s).
    pub retry_delays: Vec<Duration>,
    /// Per-attempt timeout (the engine: 10 s).
    pub attempt_timeout: Duration,
    /// Fraction of acknowledged deliveries sent once more.
    pub duplicate_fraction: f64,
    /// Seed for the order and the re-sends.
    pub seed: u64,
}

impl SimConfig {
    /// The engine's schedule (immediate, +5 s, +30 s, 10 s timeout), delays scaled by `scale`.
    pub fn engine_schedule(
        scale: f64,
        concurrency: usize,
        duplicate_fraction: f64,
        seed: u64,
    ) -> Self {
        Self {
            concurrency,
            retry_delays: [5.0, 30.0]
                .iter()
                .map(|s| Duration::from_secs_f64(s * scale))
                .collect(),
            attempt_timeout: Duration::from_secs(10),
            duplicate_fraction,
            seed,
        }
    }
}

/// One HTTP attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// The answer's status, `None` for a timeout or connection failure.
    pub status: Option<u16>,
    /// Whether the answer said `duplicate` (nothing sent: the receiver found it published).
    pub duplicate: bool,
    /// Time to the answer.
    pub latency: Duration,
    /// A re-send of an acknowledged delivery.
    pub resend: bool,
}

/// What happened to one event.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    /// The event.
    pub spec: EventSpec,
    /// The dedupe key hookrelay gives it.
    pub dedupe_key: String,
    /// The signed body.
    pub body: Vec<u8>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Whether some attempt got a 2xx.
    pub acknowledged: bool,
}

/// Sends every event to `targets` (instance base URLs) as configured; returns one log per event.
pub async fn run(
    targets: Vec<String>,
    mut specs: Vec<EventSpec>,
    keys: SigningKeys,
    config: SimConfig,
) -> Vec<DeliveryLog> {
    seeded::shuffle(&mut specs, config.seed);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let shared = Arc::new((targets, keys, config, AtomicUsize::new(0), client));
    let permits = Arc::new(Semaphore::new(shared.2.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(specs.len());
    for spec in specs {
        let (shared, permits) = (shared.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(spec.delay).await;
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let (targets, keys, config, next_target, client) = &*shared;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let delivery = spec.sign(keys, now.as_secs_f64());
            let mut log = DeliveryLog {
                spec,
                dedupe_key: delivery.dedupe_key.clone(),
                body: delivery.body.clone(),
                attempts: Vec::new(),
                acknowledged: false,
            };
            let pick = || &targets[next_target.fetch_add(1, Ordering::Relaxed) % targets.len()];
            for attempt in 0..=config.retry_delays.len() {
                if attempt > 0 {
                    tokio::time::sleep(config.retry_delays[attempt - 1]).await;
                }
                let result = send(client, pick(), &delivery, config.attempt_timeout, false).await;
                log.attempts.push(result);
                if result.status.is_some_and(|s| (200..300).contains(&s)) {
                    log.acknowledged = true;
                    break;
                }
            }
            if log.acknowledged
                && seeded::draw(
                    config.seed ^ 0xD0B1E,
                    spec.n * 4 + if spec.twin { 3 } else { spec.sender as u64 },
                ) < config.duplicate_fraction
            {
                let result = send(client, pick(), &delivery, config.attempt_timeout, true).await;
                log.attempts.push(result);
            }
            log
        }));
    }
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(log) = task.await {
            logs.push(log);
        }
    }
    logs
}

/// Sends each of `logs`' events again, signed anew now, with the senders' retry rules (until a
/// 2xx or the schedule ends), and adds the attempts to its log as re-sends: the late retries
/// of a long retry horizon.
pub async fn resend_late(
    targets: Vec<String>,
    logs: &mut [DeliveryLog],
    keys: &SigningKeys,
    config: &SimConfig,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(logs.len());
    for (index, log) in logs.iter().enumerate() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let delivery = log.spec.sign_again(keys, now, &log.body);
        let (client, permits, next, targets, config) = (
            client.clone(),
            permits.clone(),
            next.clone(),
            targets.clone(),
            config.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let mut attempts = Vec::new();
            for attempt in 0..=config.retry_delays.len() {
                if attempt > 0 {
                    tokio::time::sleep(config.retry_delays[attempt - 1]).await;
                }
                let target = &targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
                let result = send(&client, target, &delivery, config.attempt_timeout, true).await;
                attempts.push(result);
                if result.status.is_some_and(|s| (200..300).contains(&s)) {
                    break;
                }
            }
            (index, attempts)
        }));
    }
    for task in tasks {
        if let Ok((index, attempts)) = task.await {
            logs[index].attempts.extend(attempts);
        }
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: &str,
    delivery: &SignedDelivery,
    timeout: Duration,
    resend: bool,
) -> Attempt {
    let mut request = Request::post(format!("{target}{}", delivery.path));
    for (name, value) in &delivery.headers {
        request = request.header(*name, value);
    }
    let started = Instant::now();
    let answer = match request.body(Full::new(Bytes::from(delivery.body.clone()))) {
        Ok(request) => tokio::time::timeout(timeout, async {
            let response = client.request(request).await.ok()?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            let duplicate = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|answer| answer["status"] == "duplicate");
            Some((status, duplicate))
        })
        .await
        .unwrap_or_default(),
        Err(_) => None,
    };
    Attempt {
        status: answer.map(|(status, _)| status),
        duplicate: answer.is_some_and(|(_, duplicate)| duplicate),
        latency: started.elapsed(),
        resend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_keys;

    #[test]
    fn padded_bodies_have_the_exact_length_and_keep_their_routing() {
        for sender in [Sender::Engine, Sender::Rekko, Sender::Standard] {
            for n in 0..40 {
                let spec = EventSpec::of(sender, n);
                let plain = spec.sign(&test_keys(), 1_771_455_600.0);
                for len in [1024, 16 * 1024] {
                    let padded = spec.sign_padded(&test_keys(), 1_771_455_600.0, len);
                    assert_eq!(padded.body.len(), len, "{sender:?} #{n}");
                    assert_eq!(padded.path, plain.path);
                    let body: serde_json::Value = serde_json::from_slice(&padded.body).unwrap();
                    assert!(body["trail"].as_array().is_some_and(|t| !t.is_empty()));
                    if sender != Sender::Rekko {
                        // Rekko's key is a digest of the body, so it changes with the padding.
                        assert_eq!(padded.dedupe_key, plain.dedupe_key);
                    }
                }
            }
        }
    }
}
