//! The life of a webhook, top-down in [`Pipeline::handle`]: route the path to a sender, verify
//! the signature (`hookrelay::signature`), read the routing fields (`hookrelay_ingest::webhooks`),
//! check the replay window, dedupe (`hookrelay_ingest::dedupe`), build the queue message
//! (`hookrelay_ingest::routed`) and publish. Each stage is called once, here, and no stage calls
//! another. Also the one [`Rejection`] enum of this boundary and the one place rejections map to
//! HTTP status codes and error codes. I/O only through [`Publisher`]; time only through
//! [`Clock`].
//!
//! Nothing is answered `accepted` before SQS has accepted the message: a Lambda may be frozen as
//! soon as it responds, so "respond first, publish later" would lose events.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookrelay::relay::RelaySigner;
use hookrelay::senders::Sender;
use hookrelay::signature::{self, Headers, SecretSet, SignedRequest, VerifyError};
use hookrelay_ingest::dedupe::{DedupeDecision, DedupeKey, DedupeWindow};
use hookrelay_ingest::queue::{PublishError, Publisher};
use hookrelay_ingest::routed::{ParseError, SQS_MAX_MESSAGE_BYTES};
use hookrelay_ingest::webhooks::WebhookRoute;
use time::OffsetDateTime;

use crate::config::{Config, WEBHOOK_ROUTES};

/// Where the pipeline gets the time from (injected so tests can fix it).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// A request body as the Function URL delivered it.
#[derive(Debug)]
pub enum RequestBody {
    /// Text, as sent.
    Text(String),
    /// Base64 of the bytes sent (Lambda encodes non-text content types this way).
    Base64(String),
}

/// An HTTP request, before anything is trusted.
#[derive(Debug)]
pub struct InboundRequest {
    /// The HTTP method, as sent.
    pub method: String,
    /// The URL path, which picks the sender.
    pub path: String,
    /// The request headers.
    pub headers: Headers,
    /// The body.
    pub body: RequestBody,
}

/// A delivery the pipeline took care of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// Who sent it.
    pub provider: Sender,
    /// The event's dedupe key.
    pub dedupe_key: DedupeKey,
    /// The sender's delivery id, if any.
    pub delivery_id: Option<String>,
    /// What was done.
    pub outcome: Outcome,
}

/// What was done with a valid delivery; both are answered 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SQS accepted the envelope.
    Accepted {
        /// How long the SQS send took (monotonic clock).
        publish_latency: Duration,
    },
    /// Already published within the dedupe window; nothing was sent.
    Duplicate,
}

impl Outcome {
    /// `accepted` or `duplicate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Why a request was not accepted. Messages never contain a secret, a signature or the body.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No enabled sender has this path.
    #[error("no webhook route at this path")]
    UnknownRoute,
    /// The route takes POST only.
    #[error("webhook routes accept POST only")]
    MethodNotAllowed,
    /// The body exceeds the configured limit.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body fits the limit, but with its envelope and attributes it would not fit in an SQS
    /// message (only possible with very long routing fields).
    #[error("the event with its envelope would exceed the {limit}-byte SQS message limit")]
    MessageTooLarge {
        /// SQS's limit, in bytes.
        limit: usize,
    },
    /// The body claims base64 transport encoding but isn't base64.
    #[error("the body is marked base64-encoded but is not valid base64")]
    UndecodableBody,
    /// Signature verification failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The verified body lacks or mistypes a routing field.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The signed timestamp is outside the replay window.
    #[error("the signed timestamp is more than {tolerance_secs} s from now")]
    StaleTimestamp {
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// SQS did not accept the message; the sender should retry.
    #[error("{error}")]
    QueueUnavailable {
        /// What SQS (or the connection to it) said.
        #[source]
        error: PublishError,
        /// How long the failed send took, retries included.
        after: Duration,
    },
}

impl Rejection {
    /// The HTTP status and the stable error code of the response contract.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Self::UnknownRoute => (404, "unknown_route"),
            Self::MethodNotAllowed => (405, "method_not_allowed"),
            Self::PayloadTooLarge { .. } | Self::MessageTooLarge { .. } => {
                (413, "payload_too_large")
            }
            Self::UndecodableBody | Self::Parse(_) => (400, "malformed_payload"),
            Self::Verify(VerifyError::MissingSignedHeader { .. }) => (400, "malformed_payload"),
            Self::Verify(VerifyError::MissingSignature { .. }) => (401, "missing_signature"),
            Self::Verify(VerifyError::InvalidSignature(_)) => (401, "invalid_signature"),
            Self::StaleTimestamp { .. } => (401, "stale_timestamp"),
            Self::QueueUnavailable { .. } => (503, "queue_unavailable"),
        }
    }

    /// The message for the sender. For queue failures this hides SQS's details (they are
    /// logged instead).
    pub fn public_message(&self) -> String {
        match self {
            Self::QueueUnavailable { .. } => {
                "the event could not be queued; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// A route and, when its sender is enabled, the secrets it verifies with: resolved once, at
/// construction, so the request path only looks through this list.
#[derive(Debug)]
struct ServedRoute {
    route: WebhookRoute,
    secrets: Option<SecretSet>,
}

/// The receiver: configuration, per-instance dedupe memory, the queue, and the clock.
#[derive(Debug)]
pub struct Pipeline<P, C> {
    routes: Vec<ServedRoute>,
    replay_tolerance: Duration,
    max_body_bytes: usize,
    published: Mutex<DedupeWindow>,
    relay_signer: RelaySigner,
    publisher: P,
    clock: C,
    metrics_namespace: String,
}

impl<P: Publisher, C: Clock> Pipeline<P, C> {
    /// A pipeline for `config`, publishing through `publisher`, reading time from `clock`.
    pub fn new(config: &Config, publisher: P, clock: C) -> Self {
        let routes = WEBHOOK_ROUTES
            .into_iter()
            .map(|route| ServedRoute {
                route,
                secrets: config.secrets.of(route.sender).cloned(),
            })
            .collect();
        Self {
            routes,
            replay_tolerance: config.replay_tolerance,
            max_body_bytes: config.max_body_bytes,
            published: Mutex::new(DedupeWindow::new(
                config.dedupe_capacity,
                config.dedupe_window,
            )),
            relay_signer: config.relay_signer.clone(),
            publisher,
            clock,
            metrics_namespace: config.metrics_namespace.clone(),
        }
    }

    /// The CloudWatch namespace the HTTP edge writes this pipeline's metrics under.
    pub fn metrics_namespace(&self) -> &str {
        &self.metrics_namespace
    }

    /// Takes one request from arrival to a queued (or refused) event. Also says which sender the
    /// path routes to (`None` for no route; a disabled sender is still named), for the edge's log
    /// line and metrics.
    pub async fn handle(
        &self,
        request: InboundRequest,
    ) -> (Option<Sender>, Result<Handled, Rejection>) {
        let served = self.served_route(&request.path);
        (
            served.map(|served| served.route.sender),
            self.handle_routed(served, request).await,
        )
    }

    async fn handle_routed(
        &self,
        served: Option<&ServedRoute>,
        request: InboundRequest,
    ) -> Result<Handled, Rejection> {
        let served = served.ok_or(Rejection::UnknownRoute)?;
        let route = served.route;
        // A sender without secrets is disabled, and looks exactly like an unknown path.
        let secrets = served.secrets.as_ref().ok_or(Rejection::UnknownRoute)?;
        if request.method != "POST" {
            return Err(Rejection::MethodNotAllowed);
        }
        let body = self.body_bytes(request.body)?;
        let signed = SignedRequest {
            headers: request.headers,
            body,
        };

        let verified = signature::verify(route.sender.scheme, secrets, signed)?;
        let event = (route.route)(&verified)?;

        let now = self.clock.now();
        // Webhook routing always reads a signed time; without one, fail closed.
        let stale = event
            .signed_at()
            .is_none_or(|signed_at| (now - signed_at).unsigned_abs() > self.replay_tolerance);
        if stale {
            return Err(Rejection::StaleTimestamp {
                tolerance_secs: self.replay_tolerance.as_secs(),
            });
        }

        let handled = |outcome| Handled {
            provider: route.sender,
            dedupe_key: event.dedupe_key().clone(),
            delivery_id: event.delivery_id().map(str::to_owned),
            outcome,
        };
        if self.dedupe().check(event.dedupe_key(), now) == DedupeDecision::AlreadyPublished {
            return Ok(handled(Outcome::Duplicate));
        }

        // Seal: the relay signature over the whole message, so consumers can refuse anything
        // hookrelay did not write.
        let message = event.queue_message(now, &self.relay_signer);
        if message.size() > SQS_MAX_MESSAGE_BYTES {
            return Err(Rejection::MessageTooLarge {
                limit: SQS_MAX_MESSAGE_BYTES,
            });
        }
        let started = Instant::now();
        let published = self.publisher.publish(&message).await;
        let publish_latency = started.elapsed();
        published.map_err(|error| Rejection::QueueUnavailable {
            error,
            after: publish_latency,
        })?;
        self.dedupe().record(event.dedupe_key().clone(), now);
        Ok(handled(Outcome::Accepted { publish_latency }))
    }

    /// The route serving `path`: `/{sender name}`, a trailing `/` tolerated.
    fn served_route(&self, path: &str) -> Option<&ServedRoute> {
        let name = path.strip_suffix('/').unwrap_or(path).strip_prefix('/')?;
        self.routes
            .iter()
            .find(|served| served.route.sender.name == name)
    }

    fn body_bytes(&self, body: RequestBody) -> Result<Vec<u8>, Rejection> {
        let too_large = Rejection::PayloadTooLarge {
            limit: self.max_body_bytes,
        };
        let bytes = match body {
            RequestBody::Text(text) => text.into_bytes(),
            RequestBody::Base64(encoded) => {
                // Refuse before decoding anything that cannot fit.
                if encoded.len() / 4 * 3 > self.max_body_bytes + 3 {
                    return Err(too_large);
                }
                BASE64
                    .decode(encoded.trim())
                    .map_err(|_| Rejection::UndecodableBody)?
            }
        };
        if bytes.len() > self.max_body_bytes {
            return Err(too_large);
        }
        Ok(bytes)
    }

    fn dedupe(&self) -> std::sync::MutexGuard<'_, DedupeWindow> {
        // The lock is never held across an await or a panic point, so it can't be poisoned in
        // practice; if it were, the window's data is still consistent, so recover it.
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use hookrelay::senders::REKKO;
    use hookrelay::signature::SigningSecret;
    use hookrelay_devtools::memory::MemoryPublisher as RecordingPublisher;

    use super::*;

    const SECRET: &str = "rekko-unit-test-secret";
    const T0: i64 = 1_771_455_600; // 2026-02-18T23:00:00Z

    fn config(vars: &[(&str, &str)]) -> Config {
        let relay = hookrelay_devtools::relay_keys::env();
        let mut all = vec![
            ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:1/q.fifo"),
            ("HOOKRELAY_REKKO_SECRETS", SECRET),
            (relay[0].0, relay[0].1.as_str()),
            (relay[1].0, relay[1].1.as_str()),
        ];
        all.extend_from_slice(vars);
        Config::from_lookup(|name| {
            all.iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn pipeline(
        publisher: RecordingPublisher,
        now: i64,
    ) -> Pipeline<RecordingPublisher, FixedClock> {
        Pipeline::new(
            &config(&[]),
            publisher,
            FixedClock(OffsetDateTime::from_unix_timestamp(now).unwrap()),
        )
    }

    fn rekko_body(market: &str) -> String {
        format!(
            r#"{{"type":"price_shift","market_id":"{market}","timestamp":"2026-02-18T23:00:00Z"}}"#
        )
    }

    fn signed(body: &str) -> InboundRequest {
        let secret = SigningSecret::from_key_bytes(SECRET.as_bytes());
        let headers = REKKO.scheme.sign(&secret, None, body.as_bytes());
        InboundRequest {
            method: "POST".into(),
            path: "/rekko".into(),
            headers: headers.into_iter().collect(),
            body: RequestBody::Text(body.into()),
        }
    }

    fn status((_, result): (Option<Sender>, Result<Handled, Rejection>)) -> (u16, &'static str) {
        match result {
            Ok(handled) => (200, handled.outcome.as_str()),
            Err(rejection) => rejection.status_and_code(),
        }
    }

    #[tokio::test]
    async fn a_repeat_is_a_duplicate_and_is_not_sent_again() {
        let publisher = RecordingPublisher::default();
        let p = pipeline(publisher.clone(), T0);
        assert_eq!(
            status(p.handle(signed(&rekko_body("m"))).await),
            (200, "accepted")
        );
        assert_eq!(
            status(p.handle(signed(&rekko_body("m"))).await),
            (200, "duplicate")
        );
        assert_eq!(
            status(p.handle(signed(&rekko_body("n"))).await),
            (200, "accepted")
        );
        assert_eq!(publisher.len(), 2);
    }

    #[tokio::test]
    async fn a_failed_publish_is_503_and_the_retry_is_published() {
        let publisher = RecordingPublisher::failing_first(1);
        let p = pipeline(publisher.clone(), T0);
        let first = p.handle(signed(&rekko_body("m"))).await;
        assert_eq!(status(first), (503, "queue_unavailable"));
        assert_eq!(
            status(p.handle(signed(&rekko_body("m"))).await),
            (200, "accepted"),
            "not recorded as published"
        );
        assert_eq!(publisher.len(), 1);
    }

    #[tokio::test]
    async fn the_replay_window_is_checked_against_the_injected_clock_both_ways() {
        for (now, expected) in [
            (T0 + 300, (200, "accepted")),
            (T0 - 300, (200, "accepted")),
            (T0 + 301, (401, "stale_timestamp")),
            (T0 - 301, (401, "stale_timestamp")),
        ] {
            let publisher = RecordingPublisher::default();
            let p = pipeline(publisher.clone(), now);
            assert_eq!(
                status(p.handle(signed(&rekko_body("m"))).await),
                expected,
                "now = T0 {:+}",
                now - T0
            );
            assert_eq!(publisher.len(), usize::from(expected.0 == 200));
        }
    }

    #[tokio::test]
    async fn routes_methods_sizes_and_signatures_map_to_the_contract() {
        let p = pipeline(RecordingPublisher::default(), T0);
        let body = rekko_body("m");

        let mut r = signed(&body);
        r.path = "/engine".into(); // configured without engine secrets: disabled
        assert_eq!(status(p.handle(r).await), (404, "unknown_route"));
        let mut r = signed(&body);
        r.path = "/nope".into();
        assert_eq!(status(p.handle(r).await), (404, "unknown_route"));
        let mut r = signed(&body);
        r.method = "GET".into();
        assert_eq!(status(p.handle(r).await), (405, "method_not_allowed"));
        let mut r = signed(&body);
        r.headers.clear();
        assert_eq!(status(p.handle(r).await), (401, "missing_signature"));
        let mut r = signed(&body);
        r.body = RequestBody::Text(body.replace("\"m\"", "\"x\""));
        assert_eq!(status(p.handle(r).await), (401, "invalid_signature"));
        let mut r = signed(&body);
        r.body = RequestBody::Text("x".repeat(262_145));
        assert_eq!(status(p.handle(r).await), (413, "payload_too_large"));
        let mut r = signed(&body);
        r.body = RequestBody::Base64("A".repeat(400_000));
        assert_eq!(status(p.handle(r).await), (413, "payload_too_large"));
        let mut r = signed(&body);
        r.body = RequestBody::Base64("not base64!".into());
        assert_eq!(status(p.handle(r).await), (400, "malformed_payload"));
        assert_eq!(
            status(p.handle(signed("[1]")).await),
            (400, "malformed_payload")
        );
    }

    #[tokio::test]
    async fn an_envelope_that_would_not_fit_in_sqs_is_413_not_a_retry_loop() {
        let publisher = RecordingPublisher::default();
        let clock = FixedClock(OffsetDateTime::from_unix_timestamp(T0).unwrap());
        let config = config(&[("HOOKRELAY_MAX_BODY_BYTES", "1000000")]);
        let p = Pipeline::new(&config, publisher.clone(), clock);
        // The type is repeated in the envelope and the attributes: 3 x 400 kB > 1 MiB.
        let long_type = "t".repeat(400_000);
        let body = format!(r#"{{"type":"{long_type}","timestamp":"2026-02-18T23:00:00Z"}}"#);
        let rejection = p.handle(signed(&body)).await.1.unwrap_err();
        assert_eq!(rejection.status_and_code(), (413, "payload_too_large"));
        assert!(
            rejection.to_string().contains("SQS message limit"),
            "{rejection}"
        );
        assert!(publisher.is_empty());
    }

    #[tokio::test]
    async fn a_base64_transported_body_is_verified_as_its_decoded_bytes() {
        let publisher = RecordingPublisher::default();
        let p = pipeline(publisher.clone(), T0);
        let body = rekko_body("m");
        let mut r = signed(&body);
        r.body = RequestBody::Base64(BASE64.encode(&body));
        assert_eq!(status(p.handle(r).await), (200, "accepted"));
        let sent = publisher.sent();
        assert!(sent[0].body.ends_with(&format!("\"data\":{body}}}")));
    }

    #[test]
    fn paths_route_to_senders() {
        let p = pipeline(RecordingPublisher::default(), T0);
        let sender = |path| p.served_route(path).map(|served| served.route.sender.name);
        assert_eq!(sender("/engine"), Some("engine"));
        assert_eq!(sender("/rekko/"), Some("rekko"));
        assert_eq!(sender("/standard"), Some("standard"));
        for other in [
            "/",
            "",
            "/Engine",
            "/engine/x",
            "/engine//",
            "/webhook",
            "engine",
        ] {
            assert_eq!(sender(other), None, "{other}");
        }
    }

    #[test]
    fn queue_failures_do_not_leak_details_to_the_sender() {
        let rejection = Rejection::QueueUnavailable {
            after: Duration::from_secs(5),
            error: PublishError::new("dispatch failure: connection refused to 10.1.2.3"),
        };
        assert!(!rejection.public_message().contains("10.1.2.3"));
        assert!(
            rejection.to_string().contains("connection refused"),
            "the log keeps the cause"
        );
    }
}
