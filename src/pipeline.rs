//! The life of a webhook, top-down in [`Pipeline::handle`]: the optional front's origin header
//! (`crate::origin`, when it is on), route the path to a sender, verify
//! the signature (`hookrelay::signature`), read the routing fields (`hookrelay_ingest::providers`),
//! check the replay window, dedupe in this instance's memory (`hookrelay_ingest::dedupe`), claim
//! the key in the durable store when there is one (`hookrelay_ingest::idempotency`), build the
//! queue message (`hookrelay_ingest::queue`), publish, and commit the claim (or release it when
//! the publish failed). Each stage is called once, here, and no stage calls another. Also the one
//! [`Rejection`] enum of this boundary and the one place rejections map to HTTP status codes and
//! error codes. I/O only through [`Publisher`] and [`IdempotencyStore`]; time only through
//! [`Clock`], and the invocation's deadline through its [`Budget`] (how long the claim, the send
//! and the commit may take: `hookrelay_ingest::budget`).
//!
//! Nothing is answered `accepted` before SQS has accepted the message: a Lambda may be frozen as
//! soon as it responds, so "respond first, publish later" would lose events. The store never
//! refuses a delivery: when it fails, the event is published anyway (FIFO deduplication and the
//! consumers' id checks still guard it) and [`StoreNotes`] says so, for the metrics and the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookrelay::relay::RelaySigner;
use hookrelay::senders::Sender;
use hookrelay::signature::{self, Headers, SecretSet, SignedRequest, VerifyError};
use hookrelay_ingest::budget::Budget;
use hookrelay_ingest::dedupe::{ContentDigest, DedupeDecision, DedupeKey, DedupeWindow};
use hookrelay_ingest::event::{ParseError, RoutedEvent};
use hookrelay_ingest::idempotency::{
    Claim, HeldClaim, Idempotency, IdempotencyStore, NoStore, Settled, StoreCalls, StoreOperation,
};
use hookrelay_ingest::providers::{self, WebhookRoute};
use hookrelay_ingest::queue::{
    FIFO_DEDUPLICATION_WINDOW, PublishError, Publisher, QueueKind, SQS_MAX_MESSAGE_BYTES,
};
use hookrelay_ingest::sequence::{self, Arrival, NoSequences, SequenceStore};
use time::OffsetDateTime;

use crate::config::Config;
use crate::origin::OriginSecrets;

/// template.yaml's `ReceiverFunction` timeout: the budget of a delivery handled without an
/// invocation deadline ([`Pipeline::handle`]; tests and benchmarks).
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(8);

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
    /// What the idempotency layers noticed on the way.
    pub store: StoreNotes,
}

/// What the dedupe layers noticed while handling one delivery, for its log line and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreNotes {
    /// The store calls made, their time, and the ones that failed (the delivery went on
    /// without them).
    pub calls: StoreCalls,
    /// The key was already taken by other content: this event went out under
    /// [`DedupeKey::with_digest`].
    pub conflict: Option<Conflict>,
    /// How its engine sequence arrived, when gap detection recorded it.
    pub arrival: Option<Arrival>,
    /// When an earlier attempt of this content may have sent it (its send failed ambiguously,
    /// or its claim lapsed unreleased): Unix seconds of that attempt's claim. A FIFO queue drops
    /// this publish if it comes within five minutes of that send.
    pub earlier_attempt_at: Option<i64>,
    /// Since when (Unix seconds) another attempt of this content may have sent it where SQS
    /// won't drop this publish as a copy (docs/contract.md, "Exactly once"):
    /// [`StoreNotes::earlier_attempt_at`] past FIFO's window or on a standard queue, or, on a
    /// standard queue, this attempt's own time when the store did not answer its claim (an
    /// attempt it would have shown can't be ruled out).
    pub possible_copy_of: Option<i64>,
    /// The store answered no claim call: published without knowing whether an earlier attempt
    /// of this content was published too (then this is a copy, if that was past SQS FIFO's five
    /// minutes; counted as `StoreFailures`).
    pub unconfirmed_claim: bool,
    /// The event may be in the queue, but the store answered none of the calls that would
    /// record it, and its claim was never confirmed: a later attempt of this content could be
    /// published again (docs/contract.md, "Exactly once").
    pub unrecorded: bool,
}

impl StoreNotes {
    /// Notes what the store holds for the event once its claim is settled.
    fn settled(&mut self, settled: Settled) {
        self.unrecorded |= settled == Settled::Unrecorded;
    }
}

/// A dedupe conflict: the same key, two contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key both events claimed.
    pub key: DedupeKey,
    /// The digest already recorded under it.
    pub recorded: ContentDigest,
    /// This event's digest.
    pub this: ContentDigest,
}

/// What was done with a valid delivery; both are answered 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SQS accepted the envelope.
    Accepted {
        /// How long the SQS send took (monotonic clock).
        publish_latency: Duration,
        /// Attempts inside the send that SQS may have queued although their answer was lost
        /// (`Sent`): possible copies on a standard queue, counted as `AmbiguousPublish`.
        ambiguous_attempts: u32,
    },
    /// Already published (this instance's window or the durable store said so); nothing was
    /// sent.
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

    /// The send's attempts SQS may have queued although their answer was lost (0 for a
    /// duplicate, which sent nothing).
    pub fn ambiguous_attempts(self) -> u32 {
        match self {
            Self::Accepted {
                ambiguous_attempts, ..
            } => ambiguous_attempts,
            Self::Duplicate => 0,
        }
    }
}

/// Why a request was not accepted. Messages never contain a secret, a signature or the body.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The optional front is on and the request did not come through it (no valid origin
    /// header): refused before anything else is read.
    #[error("requests must come through the configured front")]
    OriginRefused,
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
    /// Another attempt of the same event holds the durable claim and is publishing now; the
    /// sender should retry after `retry_after_secs` (not 200: should that attempt fail, the
    /// event would be lost).
    #[error("another attempt of this event is being published; retry after {retry_after_secs} s")]
    InProgress {
        /// Seconds until the other claim lapses, for `Retry-After`.
        retry_after_secs: u64,
    },
    /// SQS did not accept the message; the sender should retry.
    #[error("{error}")]
    QueueUnavailable {
        /// What SQS (or the connection to it) said.
        #[source]
        error: PublishError,
        /// The event's key (its envelope `id`), for the log line: an ambiguous failure may have
        /// queued a copy under it.
        dedupe_key: DedupeKey,
        /// How long the failed send took, retries included.
        after: Duration,
        /// What the store calls around the send did (boxed: the failure path only).
        store: Box<StoreNotes>,
    },
}

impl Rejection {
    /// The HTTP status and the stable error code of the response contract.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Self::OriginRefused => (403, "origin_refused"),
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
            Self::InProgress { .. } => (503, "in_progress"),
            Self::QueueUnavailable { .. } => (503, "queue_unavailable"),
        }
    }

    /// The `Retry-After` header's seconds, for the rejections that know when to retry.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::InProgress { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
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

/// The [`Handled`] for `event` from `sender`.
fn handled(
    sender: Sender,
    event: &RoutedEvent<'_>,
    outcome: Outcome,
    store: StoreNotes,
) -> Handled {
    Handled {
        provider: sender,
        dedupe_key: event.dedupe_key().clone(),
        delivery_id: event.delivery_id().map(str::to_owned),
        outcome,
        store,
    }
}

/// A route and, when its sender is enabled, the secrets it verifies with and their registration
/// fingerprints (sequence-gap streams): resolved once, at construction, so the request path
/// only looks through this list.
#[derive(Debug)]
struct ServedRoute {
    route: WebhookRoute,
    secrets: Option<SecretSet>,
    fingerprints: Vec<String>,
}

/// The receiver: configuration, per-instance dedupe memory, the durable idempotency store (none
/// by default: [`NoStore`]), the queue, and the clock.
#[derive(Debug)]
pub struct Pipeline<P, C, S = NoStore, Q = NoSequences> {
    origin: Option<OriginSecrets>,
    routes: Vec<ServedRoute>,
    replay_tolerance: Duration,
    max_body_bytes: usize,
    published: Mutex<DedupeWindow>,
    relay_signer: RelaySigner,
    publisher: P,
    store: Option<Idempotency<S>>,
    sequences: Option<Sequences<Q>>,
    clock: C,
    metrics_namespace: String,
    queue_kind: QueueKind,
}

/// Where published engine sequences are recorded, and for how long.
#[derive(Debug)]
struct Sequences<Q> {
    store: Q,
    retention: Duration,
}

impl<P: Publisher, C: Clock> Pipeline<P, C, NoStore> {
    /// A pipeline for `config`, publishing through `publisher`, reading time from `clock`, with
    /// no durable store (add one with [`Pipeline::with_store`]).
    pub fn new(config: &Config, publisher: P, clock: C) -> Self {
        let routes = providers::WEBHOOKS
            .into_iter()
            .map(|route| {
                let secrets = config.secrets.of(route.sender).cloned();
                let fingerprints = secrets
                    .iter()
                    .flat_map(SecretSet::iter)
                    .map(sequence::registration_fingerprint)
                    .collect();
                ServedRoute {
                    route,
                    secrets,
                    fingerprints,
                }
            })
            .collect();
        Self {
            origin: config.origin.clone(),
            routes,
            replay_tolerance: config.replay_tolerance,
            max_body_bytes: config.max_body_bytes,
            published: Mutex::new(DedupeWindow::new(
                config.dedupe_capacity,
                config.dedupe_window,
            )),
            relay_signer: config.relay_signer.clone(),
            publisher,
            store: None,
            sequences: None,
            clock,
            metrics_namespace: config.metrics_namespace.clone(),
            queue_kind: QueueKind::of_url(&config.queue_url),
        }
    }

    /// This pipeline with `store` as the durable idempotency store, claims lasting
    /// `config.idempotency.claim_for` and published records `config.idempotency.ttl`.
    pub fn with_store<S: IdempotencyStore>(self, config: &Config, store: S) -> Pipeline<P, C, S> {
        Pipeline {
            origin: self.origin,
            routes: self.routes,
            replay_tolerance: self.replay_tolerance,
            max_body_bytes: self.max_body_bytes,
            published: self.published,
            relay_signer: self.relay_signer,
            publisher: self.publisher,
            store: Some(Idempotency::new(
                store,
                config.idempotency.claim_for,
                config.idempotency.ttl,
            )),
            sequences: None,
            clock: self.clock,
            metrics_namespace: self.metrics_namespace,
            queue_kind: self.queue_kind,
        }
    }
}

impl<P: Publisher, C: Clock, S: IdempotencyStore> Pipeline<P, C, S, NoSequences> {
    /// This pipeline recording each published engine sequence in `store` (sequence gaps), kept
    /// for the store's TTL.
    pub fn with_sequences<Q: SequenceStore>(
        self,
        config: &Config,
        store: Q,
    ) -> Pipeline<P, C, S, Q> {
        Pipeline {
            origin: self.origin,
            routes: self.routes,
            replay_tolerance: self.replay_tolerance,
            max_body_bytes: self.max_body_bytes,
            published: self.published,
            relay_signer: self.relay_signer,
            publisher: self.publisher,
            store: self.store,
            sequences: Some(Sequences {
                store,
                retention: config.idempotency.ttl,
            }),
            clock: self.clock,
            metrics_namespace: self.metrics_namespace,
            queue_kind: self.queue_kind,
        }
    }
}

impl<P: Publisher, C: Clock, S: IdempotencyStore, Q: SequenceStore> Pipeline<P, C, S, Q> {
    /// The CloudWatch namespace the HTTP edge writes this pipeline's metrics under.
    pub fn metrics_namespace(&self) -> &str {
        &self.metrics_namespace
    }

    /// [`Pipeline::handle_within`] the budget of a delivery that arrived now under the template's
    /// [`FUNCTION_TIMEOUT`] (for callers without an invocation deadline).
    pub async fn handle(
        &self,
        request: InboundRequest,
    ) -> (Option<Sender>, Result<Handled, Rejection>) {
        self.handle_within(
            request,
            Budget::from_timeout(Instant::now(), FUNCTION_TIMEOUT),
        )
        .await
    }

    /// Takes one request from arrival to a queued (or refused) event within `budget` (from the
    /// invocation's deadline). Also says which sender the path routes to (`None` for no route; a
    /// disabled sender is still named), for the edge's log line and metrics.
    pub async fn handle_within(
        &self,
        request: InboundRequest,
        budget: Budget,
    ) -> (Option<Sender>, Result<Handled, Rejection>) {
        let served = self.served_route(&request.path);
        (
            served.map(|served| served.route.sender),
            self.handle_routed(served, request, budget).await,
        )
    }

    async fn handle_routed(
        &self,
        served: Option<&ServedRoute>,
        request: InboundRequest,
        budget: Budget,
    ) -> Result<Handled, Rejection> {
        // The front's origin header first: with the front on, nothing else is read otherwise.
        if let Some(origin) = &self.origin
            && !origin.admits(&request.headers)
        {
            return Err(Rejection::OriginRefused);
        }
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

        // Layer one: this instance's memory. The same key with other content is another event
        // (two registrations counting their own sequence, say): it goes out under a key of its
        // own.
        let digest = event.content_digest();
        let mut notes = StoreNotes::default();
        let mut event = event;
        let window_says = self.dedupe().check(event.dedupe_key(), &digest, now);
        match window_says {
            DedupeDecision::AlreadyPublished => {
                return Ok(handled(route.sender, &event, Outcome::Duplicate, notes));
            }
            DedupeDecision::Conflict { published } => {
                event = self.rekey(event, published, &digest, &mut notes);
                if self.dedupe().check(event.dedupe_key(), &digest, now)
                    == DedupeDecision::AlreadyPublished
                {
                    return Ok(handled(route.sender, &event, Outcome::Duplicate, notes));
                }
            }
            DedupeDecision::Publish => {}
        }

        // Layer two: the durable store, shared by every instance and the bridge.
        let mut held = None;
        // The key an unconfirmed claim was of, when the event goes out under its content key.
        let mut unconfirmed_key = None;
        if let Some(store) = &self.store {
            let outcome = store
                .claim(
                    event.dedupe_key(),
                    &digest,
                    now.unix_timestamp(),
                    budget.claims_end_by(),
                    &mut notes.calls,
                )
                .await;
            if let Some(recorded) = outcome.conflict {
                event = self.rekey(event, recorded, &digest, &mut notes);
            }
            match outcome.claim {
                Claim::Held(claim) => held = Some(claim),
                // The store did not answer: published anyway, and recorded after the send if
                // the store answers by then. The key may be another event's, so the envelope
                // `id` names this content alone.
                Claim::Unclaimed(claim) => {
                    notes.unconfirmed_claim = true;
                    if claim.goes_out_under_content_key() {
                        unconfirmed_key = Some(event.dedupe_key().clone());
                        event = event.rekeyed_by_content(&digest);
                    }
                    held = Some(claim);
                }
                Claim::Duplicate => {
                    self.dedupe()
                        .record(event.dedupe_key().clone(), digest, now);
                    // Recorded again (an idempotent put): the first attempt's record may have
                    // been lost with its instance, and a sequence never recorded would be
                    // reported as a gap. Its arrival says nothing new.
                    let mut record_calls = StoreCalls::default();
                    self.record_sequence(served, &event, now, &mut record_calls)
                        .await;
                    notes.calls.count += record_calls.count;
                    notes.calls.latency += record_calls.latency;
                    notes.calls.failures.extend(record_calls.failures);
                    return Ok(handled(route.sender, &event, Outcome::Duplicate, notes));
                }
                Claim::InProgress { retry_after_secs } => {
                    return Err(Rejection::InProgress { retry_after_secs });
                }
            }
        }

        // An earlier attempt of this content may have sent it: SQS drops this send only on a FIFO
        // queue within five minutes of that one. Counted from 10 s before that, as the send
        // comes a few seconds after `now` (claim calls) and the claim times are whole seconds.
        // A claim the store did not answer can't rule out another attempt either, earlier or at
        // once, which a standard queue keeps as a second copy: counted from this one's time.
        notes.earlier_attempt_at = held.as_ref().and_then(HeldClaim::maybe_sent_since);
        let standard = self.queue_kind == QueueKind::Standard;
        notes.possible_copy_of = notes
            .earlier_attempt_at
            .filter(|since| {
                standard
                    || now.unix_timestamp().saturating_sub(*since)
                        >= FIFO_DEDUPLICATION_WINDOW.as_secs() as i64 - 10
            })
            .or((standard && notes.unconfirmed_claim).then(|| now.unix_timestamp()));

        // Seal: the relay signature over the whole message, so consumers can refuse anything
        // hookrelay did not write.
        let message = event.queue_message_with(&digest, now, &self.relay_signer);
        if message.size() > SQS_MAX_MESSAGE_BYTES {
            self.release(held.as_ref(), false, now, budget, &mut notes)
                .await;
            return Err(Rejection::MessageTooLarge {
                limit: SQS_MAX_MESSAGE_BYTES,
            });
        }
        let started = Instant::now();
        let Some(within) = budget.send_within(started) else {
            // Less than one SQS attempt left: nothing is sent, the sender retries.
            self.release(held.as_ref(), false, now, budget, &mut notes)
                .await;
            return Err(Rejection::QueueUnavailable {
                error: PublishError::new("the invocation's time ran out before the send"),
                dedupe_key: event.dedupe_key().clone(),
                after: Duration::ZERO,
                store: Box::new(notes),
            });
        };
        let published = self.publisher.publish(&message, within).await;
        let publish_latency = started.elapsed();
        let sent = match published {
            Ok(sent) => sent,
            Err(error) => {
                // The sender's retry must go through in full, so the claim goes, keeping the
                // key's content; after an ambiguous failure the record says the event may be
                // queued, so a retry past FIFO's window counts a possible copy.
                self.release(held.as_ref(), error.is_ambiguous(), now, budget, &mut notes)
                    .await;
                return Err(Rejection::QueueUnavailable {
                    error,
                    dedupe_key: event.dedupe_key().clone(),
                    after: publish_latency,
                    store: Box::new(notes),
                });
            }
        };
        match unconfirmed_key {
            Some(key) => self.dedupe().record_under_content_key(key, digest, now),
            None => self
                .dedupe()
                .record(event.dedupe_key().clone(), digest, now),
        }
        // Commit and record the sequence at once: two store round trips in one's time.
        let mut record_calls = StoreCalls::default();
        let before_commit = notes.calls.latency;
        let commit = async {
            match (&self.store, &held) {
                (Some(store), Some(held)) => {
                    store
                        .commit(
                            held,
                            now.unix_timestamp(),
                            budget.answer_by(),
                            &mut notes.calls,
                        )
                        .await
                }
                _ => Settled::Recorded,
            }
        };
        let record = self.record_sequence(served, &event, now, &mut record_calls);
        let (settled, arrival) = tokio::join!(commit, record);
        notes.settled(settled);
        notes.arrival = arrival;
        notes.calls.count += record_calls.count;
        // They ran side by side: the store time is the longer of the two.
        let commit_latency = notes.calls.latency - before_commit;
        notes.calls.latency = before_commit + commit_latency.max(record_calls.latency);
        notes.calls.failures.extend(record_calls.failures);
        Ok(handled(
            route.sender,
            &event,
            Outcome::Accepted {
                publish_latency,
                ambiguous_attempts: sent.ambiguous_attempts,
            },
            notes,
        ))
    }

    /// `event` under `{key}#{digest}`, with the conflict noted for the metrics and the log.
    fn rekey<'e>(
        &self,
        event: RoutedEvent<'e>,
        recorded: ContentDigest,
        digest: &ContentDigest,
        notes: &mut StoreNotes,
    ) -> RoutedEvent<'e> {
        notes.conflict = Some(Conflict {
            key: event.dedupe_key().clone(),
            recorded,
            this: digest.clone(),
        });
        event.rekeyed_by_content(digest)
    }

    /// Records the event's engine sequence, when gap detection is on and it has one.
    async fn record_sequence(
        &self,
        served: &ServedRoute,
        event: &RoutedEvent<'_>,
        now: OffsetDateTime,
        calls: &mut StoreCalls,
    ) -> Option<Arrival> {
        let (Some(sequences), Some((stream, number))) = (
            &self.sequences,
            event.sequence_in_stream(&served.fingerprints),
        ) else {
            return None;
        };
        let seen_at = now.unix_timestamp();
        let expires_at = (now + sequences.retention).unix_timestamp();
        calls
            .time(
                StoreOperation::Record,
                sequences.store.record(&stream, number, seen_at, expires_at),
            )
            .await
            .ok()
    }

    /// Gives the held claim up, so the sender's retry goes through in full.
    async fn release(
        &self,
        held: Option<&HeldClaim>,
        maybe_sent: bool,
        now: OffsetDateTime,
        budget: Budget,
        notes: &mut StoreNotes,
    ) {
        if let (Some(store), Some(held)) = (&self.store, held) {
            let settled = store
                .release(
                    held,
                    maybe_sent,
                    now.unix_timestamp(),
                    budget.answer_by(),
                    &mut notes.calls,
                )
                .await;
            notes.settled(settled);
        }
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
            dedupe_key: DedupeKey::new("rekko", &["k"]),
            store: Box::default(),
        };
        assert!(!rejection.public_message().contains("10.1.2.3"));
        assert!(
            rejection.to_string().contains("connection refused"),
            "the log keeps the cause"
        );
    }

    mod durable_store {
        //! Every transition of a key's record, through the pipeline as the receiver runs it,
        //! against the store's rules over a map (`MemoryStore`; moto's DynamoDB in
        //! tests/api/idempotency.rs).
        use hookrelay::senders::ENGINE;
        use hookrelay_devtools::memory::MemoryStore;
        use hookrelay_ingest::idempotency::{
            COMMIT_CALLS, RecordState, StoreOperation, StoredRecord,
        };

        use super::*;

        const SECRET_A: &str = "engine-registration-a-secret";
        const SECRET_B: &str = "engine-registration-b-secret";

        type StorePipeline = Pipeline<RecordingPublisher, FixedClock, MemoryStore>;

        /// One receiver instance: its own memory, the shared store and queue.
        fn instance(
            publisher: &RecordingPublisher,
            store: &MemoryStore,
            now: i64,
        ) -> StorePipeline {
            let secrets = format!("{SECRET_A},{SECRET_B}");
            let config = config(&[("HOOKRELAY_ENGINE_SECRETS", &secrets)]);
            Pipeline::new(
                &config,
                publisher.clone(),
                FixedClock(OffsetDateTime::from_unix_timestamp(now).unwrap()),
            )
            .with_store(&config, store.clone())
        }

        fn engine(secret: &str, id: &str, sequence: u64, market: &str) -> InboundRequest {
            let body = format!(
                r#"{{"id":"{id}","sequence":{sequence},"eventType":"ORDER_MATCHED","marketId":"{market}","operatorId":"op-1","payload":{{"price":0.65}},"timestamp":"2026-02-18T23:00:00.000Z"}}"#
            );
            let secret = SigningSecret::from_key_bytes(secret.as_bytes());
            let headers = ENGINE.scheme.sign(&secret, None, body.as_bytes());
            InboundRequest {
                method: "POST".into(),
                path: "/engine".into(),
                headers: headers.into_iter().collect(),
                body: RequestBody::Text(body),
            }
        }

        async fn answer(p: &StorePipeline, request: InboundRequest) -> (u16, &'static str) {
            status(p.handle(request).await)
        }

        fn in_progress(owner: &str, expires_at: i64) -> StoredRecord {
            StoredRecord {
                state: RecordState::InProgress {
                    owner: owner.to_owned(),
                    lapses_at: expires_at,
                },
                digest: ContentDigest::from_stored(String::new()),
                expires_at,
                claimed_at: None,
                maybe_sent_since: None,
            }
        }

        #[tokio::test]
        async fn a_key_published_by_one_instance_is_a_duplicate_on_a_cold_one_even_with_a_new_delivery_id()
         {
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            let first = instance(&publisher, &store, T0);
            assert_eq!(
                answer(&first, engine(SECRET_A, "d-1", 42, "m")).await,
                (200, "accepted")
            );
            let record = store.record("engine:op-1:42").unwrap();
            assert_eq!(record.state, RecordState::Published);
            assert_eq!(record.expires_at, T0 + 604_800, "the 7-day TTL");
            // A cold instance (empty memory), later, with the engine's new delivery id.
            let cold = instance(&publisher, &store, T0 + 200);
            assert_eq!(
                answer(&cold, engine(SECRET_A, "d-2", 42, "m")).await,
                (200, "duplicate")
            );
            assert_eq!(publisher.len(), 1);
            // The same instance answers from memory, without a store call.
            let calls = store.calls();
            assert_eq!(
                answer(&first, engine(SECRET_A, "d-3", 42, "m")).await,
                (200, "duplicate")
            );
            assert_eq!(store.calls(), calls, "the window answers first");
        }

        #[tokio::test]
        async fn a_key_in_progress_elsewhere_is_503_with_retry_after_and_lapses_when_its_owner_died()
         {
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            let p = instance(&publisher, &store, T0);
            // Learn the digest the way the pipeline computes it: publish once elsewhere.
            let scout_publisher = RecordingPublisher::default();
            let scout_store = MemoryStore::default();
            let scout = instance(&scout_publisher, &scout_store, T0);
            answer(&scout, engine(SECRET_A, "d-1", 7, "m")).await;
            let digest = scout_store.record("engine:op-1:7").unwrap().digest;
            let mut claim = in_progress("another-instance", T0 + 6);
            claim.digest = digest;
            store.put("engine:op-1:7", claim);

            let (sender, result) = p.handle(engine(SECRET_A, "d-1", 7, "m")).await;
            assert_eq!(sender.map(|s| s.name), Some("engine"));
            let rejection = result.unwrap_err();
            assert_eq!(rejection.status_and_code(), (503, "in_progress"));
            assert_eq!(rejection.retry_after_secs(), Some(6));
            assert!(publisher.is_empty());

            // The claimant died: past its expiry a retry goes through (on any instance).
            let later = instance(&publisher, &store, T0 + 7);
            assert_eq!(
                answer(&later, engine(SECRET_A, "d-1", 7, "m")).await,
                (200, "accepted")
            );
            assert_eq!(publisher.len(), 1);
        }

        #[tokio::test]
        async fn a_failed_publish_releases_the_claim_so_the_retry_goes_through_in_full() {
            let publisher = RecordingPublisher::failing_first(1);
            let store = MemoryStore::default();
            let p = instance(&publisher, &store, T0);
            assert_eq!(
                answer(&p, engine(SECRET_A, "d-1", 9, "m")).await,
                (503, "queue_unavailable")
            );
            let released = store.record("engine:op-1:9").unwrap();
            assert!(
                matches!(released.state, RecordState::InProgress { lapses_at: 0, .. }),
                "released: lapsed at once, the key kept for its content"
            );
            let other = instance(&publisher, &store, T0 + 5);
            assert_eq!(
                answer(&other, engine(SECRET_A, "d-1", 9, "m")).await,
                (200, "accepted")
            );
            assert_eq!(publisher.len(), 1);
            assert_eq!(
                publisher.sent()[0].deduplication_id,
                format!("engine:op-1:9#{}", released.digest.as_str()),
                "the FIFO id names the content"
            );
        }

        #[tokio::test]
        async fn a_publish_after_an_ambiguous_failure_counts_a_possible_copy_only_past_fifos_window()
         {
            // Both attempts fail after their request may have reached SQS. (The event's signed
            // time is T0; every delivery here is within the replay window around it.)
            let publisher = RecordingPublisher::failing_first_ambiguously(2);
            let store = MemoryStore::default();
            let first = instance(&publisher, &store, T0 - 150);
            for sequence in [21, 22] {
                assert_eq!(
                    answer(&first, engine(SECRET_A, "d", sequence, "m")).await,
                    (503, "queue_unavailable")
                );
            }
            // Well within FIFO's five minutes SQS drops a copy under the same id: nothing counted.
            let soon = instance(&publisher, &store, T0 + 139);
            let (_, within) = soon.handle(engine(SECRET_A, "d", 21, "m")).await;
            let within = within.unwrap().store;
            assert_eq!(within.possible_copy_of, None);
            assert_eq!(
                within.earlier_attempt_at,
                Some(T0 - 150),
                "still noted, for the log"
            );
            // Near or past them it may not: counted (10 s early), with the earlier claim's time.
            let late = instance(&publisher, &store, T0 + 141);
            let (_, past) = late.handle(engine(SECRET_A, "d", 22, "m")).await;
            assert_eq!(past.unwrap().store.possible_copy_of, Some(T0 - 150));
            // A definite failure (nothing sent) leaves nothing to count.
            let refused = RecordingPublisher::failing_first(1);
            let p = instance(&refused, &store, T0 - 150);
            assert_eq!(
                answer(&p, engine(SECRET_A, "d", 23, "m")).await,
                (503, "queue_unavailable")
            );
            let q = instance(&refused, &store, T0 + 151);
            let (_, again) = q.handle(engine(SECRET_A, "d", 23, "m")).await;
            assert_eq!(again.unwrap().store.possible_copy_of, None);
        }

        #[tokio::test]
        async fn an_ambiguous_send_under_an_unanswered_claim_still_keeps_the_key_for_its_content() {
            // Both claim calls go unanswered (never written); the send fails ambiguously. The
            // key is then recorded for this content, so a twin can't take it.
            let publisher = RecordingPublisher::failing_first_ambiguously(1);
            let store = MemoryStore::default();
            store.fail_next(2);
            let first = instance(&publisher, &store, T0);
            let (_, failed) = first.handle(engine(SECRET_A, "a-1", 60, "m")).await;
            let Err(Rejection::QueueUnavailable { store: notes, .. }) = failed else {
                panic!("a 503");
            };
            assert!(!notes.unrecorded, "{notes:?}");
            let (_, twin) = instance(&publisher, &store, T0 + 1)
                .handle(engine(SECRET_B, "b-1", 60, "other"))
                .await;
            let twin = twin.unwrap();
            assert!(twin.dedupe_key.as_str().starts_with("engine:op-1:60#"));
            assert!(twin.store.conflict.is_some());
        }

        /// The envelope `id` of a queued message.
        fn envelope_id(message: &hookrelay_ingest::queue::QueueMessage) -> String {
            let envelope: serde_json::Value = serde_json::from_str(&message.body).unwrap();
            envelope["id"].as_str().unwrap().to_owned()
        }

        #[tokio::test]
        async fn an_unanswered_claim_goes_out_under_its_content_key_which_no_twin_can_share() {
            // Both claim calls go unanswered: the bare key may be a twin's, so the envelope `id`
            // names this content. The record then keeps the bare key for it.
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            store.fail_next(2);
            let first_instance = instance(&publisher, &store, T0);
            let (_, first) = first_instance
                .handle(engine(SECRET_A, "a-1", 70, "m"))
                .await;
            let first = first.unwrap();
            assert_eq!(first.outcome.as_str(), "accepted");
            assert!(
                first.store.conflict.is_none(),
                "not a conflict: counted as store failures"
            );
            assert!(first.dedupe_key.as_str().starts_with("engine:op-1:70#"));
            assert_eq!(envelope_id(&publisher.sent()[0]), first.dedupe_key.as_str());
            assert_eq!(
                store.record("engine:op-1:70").unwrap().state,
                RecordState::Published
            );
            // Its retry on the same instance while the store is still down: this instance's
            // memory says duplicate (it recorded the content under the key, not holding it).
            store.fail_next(2);
            let (_, again) = first_instance
                .handle(engine(SECRET_A, "a-1b", 70, "m"))
                .await;
            assert_eq!(again.unwrap().outcome.as_str(), "duplicate");
            assert_eq!(publisher.len(), 1);
            store.fail_next(0);
            // A twin later takes a key of its own; this content's retry is a duplicate.
            let (_, twin) = instance(&publisher, &store, T0 + 1)
                .handle(engine(SECRET_B, "b-1", 70, "other"))
                .await;
            let twin = twin.unwrap();
            assert!(twin.store.conflict.is_some());
            assert_ne!(twin.dedupe_key, first.dedupe_key);
            let cold = instance(&publisher, &store, T0 + 200);
            let retry = engine(SECRET_A, "a-1-late", 70, "m");
            assert_eq!(answer(&cold, retry).await, (200, "duplicate"));
            let ids: std::collections::HashSet<_> =
                publisher.sent().iter().map(envelope_id).collect();
            assert_eq!((publisher.len(), ids.len()), (2, 2), "two events, two ids");
        }

        #[tokio::test]
        async fn an_unanswered_claim_beside_a_twin_that_holds_the_key_is_recorded_under_its_content_key()
         {
            // The twin holds the bare key; this event's claim goes unanswered, so it can't see
            // that. It goes out under its content key, and is recorded there (the bare key's
            // record is refused), so its late retry is a duplicate, not a second send.
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            let (_, twin) = instance(&publisher, &store, T0)
                .handle(engine(SECRET_B, "b-1", 71, "other"))
                .await;
            assert_eq!(twin.unwrap().dedupe_key.as_str(), "engine:op-1:71");
            store.fail_next(2);
            let (_, this) = instance(&publisher, &store, T0 + 1)
                .handle(engine(SECRET_A, "a-1", 71, "m"))
                .await;
            let this = this.unwrap();
            assert!(!this.store.unrecorded, "{:?}", this.store);
            let content_key = this.dedupe_key.as_str().to_owned();
            assert!(content_key.starts_with("engine:op-1:71#"));
            assert_eq!(
                store.record(&content_key).unwrap().state,
                RecordState::Published
            );
            let cold = instance(&publisher, &store, T0 + 200);
            let retry = engine(SECRET_A, "a-1-late", 71, "m");
            assert_eq!(answer(&cold, retry).await, (200, "duplicate"));
            let ids: Vec<_> = publisher.sent().iter().map(envelope_id).collect();
            assert_eq!(ids, ["engine:op-1:71".to_owned(), content_key]);

            // The same with an ambiguous send (a 503): its released record goes under the
            // content key too, and the retry finds it there (counted as a possible copy).
            let ambiguous = RecordingPublisher::failing_first_ambiguously(1);
            instance(&publisher, &store, T0)
                .handle(engine(SECRET_B, "b-2", 72, "other"))
                .await
                .1
                .unwrap();
            store.fail_next(2);
            let (_, failed) = instance(&ambiguous, &store, T0 - 150)
                .handle(engine(SECRET_A, "a-2", 72, "m"))
                .await;
            let Err(Rejection::QueueUnavailable { store: notes, .. }) = failed else {
                panic!("a 503");
            };
            assert!(!notes.unrecorded, "{notes:?}");
            let (_, retried) = instance(&ambiguous, &store, T0 + 150)
                .handle(engine(SECRET_A, "a-2", 72, "m"))
                .await;
            let retried = retried.unwrap();
            assert!(retried.dedupe_key.as_str().starts_with("engine:op-1:72#"));
            assert_eq!(retried.store.possible_copy_of, Some(T0 - 150));
        }

        #[tokio::test]
        async fn on_a_standard_queue_a_publish_under_an_unanswered_claim_counts_a_possible_copy() {
            // The store could not show another attempt of this content (one sending at the same
            // time under the key, say), which a standard queue would keep.
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            let secrets = format!("{SECRET_A},{SECRET_B}");
            let config = config(&[
                ("HOOKRELAY_ENGINE_SECRETS", &secrets),
                ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:1/q"),
            ]);
            let standard = Pipeline::new(
                &config,
                publisher.clone(),
                FixedClock(OffsetDateTime::from_unix_timestamp(T0).unwrap()),
            )
            .with_store(&config, store.clone());
            store.fail_next(2);
            let (_, unanswered) = standard.handle(engine(SECRET_A, "a-1", 73, "m")).await;
            assert_eq!(unanswered.unwrap().store.possible_copy_of, Some(T0));
            let (_, answered) = standard.handle(engine(SECRET_A, "a-2", 74, "m")).await;
            assert_eq!(answered.unwrap().store.possible_copy_of, None);
            // On FIFO the same publish is dropped by SQS as a copy (one FIFO id): not counted.
            store.fail_next(2);
            let (_, fifo) = instance(&publisher, &store, T0)
                .handle(engine(SECRET_A, "a-3", 75, "m"))
                .await;
            assert_eq!(fifo.unwrap().store.possible_copy_of, None);
        }

        #[tokio::test]
        async fn a_publish_the_store_recorded_nothing_for_is_counted() {
            // Two unanswered claims, then two unanswered records: the event is queued, but its
            // key may hold nothing.
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            store.fail_next(4);
            let (_, handled) = instance(&publisher, &store, T0)
                .handle(engine(SECRET_A, "a-1", 61, "m"))
                .await;
            let handled = handled.unwrap();
            assert_eq!(handled.outcome.as_str(), "accepted");
            assert!(handled.store.unrecorded);
            assert!(store.record("engine:op-1:61").is_none());
            // Answered on the second record call: recorded, nothing to count.
            store.fail_next(3);
            let (_, handled) = instance(&publisher, &store, T0)
                .handle(engine(SECRET_A, "a-2", 62, "m"))
                .await;
            assert!(!handled.unwrap().store.unrecorded);
            assert!(store.record("engine:op-1:62").is_some());
        }

        #[tokio::test]
        async fn a_twin_after_a_failed_publish_goes_out_under_its_own_key_never_behind_the_first() {
            // The first send failed, perhaps ambiguously (it may be in the queue under the key):
            // another event reusing the key, arriving on a cold instance before the first one's
            // retry, must not take the key, or its send would stand behind the first one's.
            let publisher = RecordingPublisher::failing_first(1);
            let store = MemoryStore::default();
            let first = instance(&publisher, &store, T0);
            assert_eq!(
                answer(&first, engine(SECRET_A, "a-1", 40, "m")).await,
                (503, "queue_unavailable")
            );
            let cold = instance(&publisher, &store, T0 + 2);
            let (_, twin) = cold.handle(engine(SECRET_B, "b-1", 40, "other")).await;
            let twin = twin.unwrap();
            assert_eq!(twin.outcome.as_str(), "accepted");
            assert!(twin.store.conflict.is_some(), "a conflict, counted");
            assert!(twin.dedupe_key.as_str().starts_with("engine:op-1:40#"));
            // The first event's retry still goes out under the key, once.
            let retry = instance(&publisher, &store, T0 + 5);
            let (_, again) = retry.handle(engine(SECRET_A, "a-1", 40, "m")).await;
            let again = again.unwrap();
            assert_eq!(again.outcome.as_str(), "accepted");
            assert_eq!(again.dedupe_key.as_str(), "engine:op-1:40");
            let sent = publisher.sent();
            assert_eq!(sent.len(), 2);
            let ids: std::collections::HashSet<_> =
                sent.iter().map(|m| m.deduplication_id.as_str()).collect();
            assert_eq!(ids.len(), 2, "two events, two FIFO ids");
        }

        #[tokio::test]
        async fn a_failing_store_never_refuses_a_delivery_and_still_records_it() {
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            let p = instance(&publisher, &store, T0);
            // The claim fails: published anyway, then recorded, so a late retry on a cold
            // instance (after SQS FIFO's window) is a duplicate.
            store.fail_next(1);
            let (_, result) = p.handle(engine(SECRET_A, "d-1", 11, "m")).await;
            let handled = result.unwrap();
            assert_eq!(handled.outcome.as_str(), "accepted");
            assert_eq!(handled.store.calls.failures.len(), 1);
            assert_eq!(handled.store.calls.failures[0].0, StoreOperation::Claim);
            assert_eq!(publisher.len(), 1);
            let recorded = store.record("engine:op-1:11").unwrap();
            assert_eq!(recorded.state, RecordState::Published);
            let cold = instance(&publisher, &store, T0 + 5);
            let late = engine(SECRET_A, "d-1-late", 11, "m");
            assert_eq!(answer(&cold, late).await, (200, "duplicate"));
            assert_eq!(publisher.len(), 1);

            // A commit the store did not answer is made again.
            store.fail_commits(1);
            let (_, result) = p.handle(engine(SECRET_A, "d-1", 12, "m")).await;
            let handled = result.unwrap();
            assert_eq!(handled.outcome.as_str(), "accepted");
            assert_eq!(handled.store.calls.failures.len(), 1);
            assert_eq!(handled.store.calls.failures[0].0, StoreOperation::Commit);
            let recorded = store.record("engine:op-1:12").unwrap();
            assert_eq!(recorded.state, RecordState::Published);

            // Up to `COMMIT_CALLS` times: then the claim is left to lapse, and the event is
            // still accepted.
            store.fail_commits(COMMIT_CALLS as usize);
            let (_, result) = p.handle(engine(SECRET_A, "d-1", 13, "m")).await;
            let handled = result.unwrap();
            assert_eq!(handled.outcome.as_str(), "accepted");
            assert_eq!(handled.store.calls.failures.len(), COMMIT_CALLS as usize);
            assert!(matches!(
                store.record("engine:op-1:13").unwrap().state,
                RecordState::InProgress { .. }
            ));
            assert_eq!(publisher.len(), 3);
        }

        #[tokio::test]
        async fn two_registrations_reusing_operator_and_sequence_both_reach_the_queue_once() {
            let (publisher, store) = (RecordingPublisher::default(), MemoryStore::default());
            let a = instance(&publisher, &store, T0);
            let b = instance(&publisher, &store, T0 + 1);
            assert_eq!(
                answer(&a, engine(SECRET_A, "a-1", 42, "market-a")).await,
                (200, "accepted")
            );
            let (_, second) = b.handle(engine(SECRET_B, "b-1", 42, "market-b")).await;
            let second = second.unwrap();
            assert_eq!(second.outcome.as_str(), "accepted");
            let conflict = second.store.conflict.expect("counted as a conflict");
            assert_eq!(conflict.key.as_str(), "engine:op-1:42");
            assert_ne!(conflict.recorded, conflict.this);
            assert_eq!(
                second.dedupe_key.as_str(),
                format!("engine:op-1:42#{}", conflict.this)
            );
            // Retries of either, on either instance (its memory or the store), are duplicates.
            for (p, request) in [
                (&a, engine(SECRET_A, "a-2", 42, "market-a")),
                (&a, engine(SECRET_B, "b-2", 42, "market-b")),
                (&b, engine(SECRET_B, "b-3", 42, "market-b")),
                (&b, engine(SECRET_A, "a-3", 42, "market-a")),
            ] {
                assert_eq!(answer(p, request).await, (200, "duplicate"));
            }
            let sent = publisher.sent();
            assert_eq!(sent.len(), 2);
            assert_ne!(sent[0].deduplication_id, sent[1].deduplication_id);
            // The same rule in one instance's memory, without the store's help.
            let alone = RecordingPublisher::default();
            let p = Pipeline::new(
                &config(&[(
                    "HOOKRELAY_ENGINE_SECRETS",
                    &format!("{SECRET_A},{SECRET_B}"),
                )]),
                alone.clone(),
                FixedClock(OffsetDateTime::from_unix_timestamp(T0).unwrap()),
            );
            assert_eq!(
                status(p.handle(engine(SECRET_A, "a-1", 5, "x")).await),
                (200, "accepted")
            );
            assert_eq!(
                status(p.handle(engine(SECRET_B, "b-1", 5, "y")).await),
                (200, "accepted")
            );
            assert_eq!(
                status(p.handle(engine(SECRET_B, "b-2", 5, "y")).await),
                (200, "duplicate")
            );
            assert_eq!(alone.len(), 2);
        }
    }
}
