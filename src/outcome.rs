//! What one request came to: [`Handled`] (accepted or duplicate, with what the dedupe layers
//! noticed on the way) or a [`Rejection`], the one error enum of the receiver's boundary, and the
//! one place rejections map to HTTP status codes and the contract's error codes.

use std::time::Duration;

use hookrelay::senders::Sender;
use hookrelay::signature::VerifyError;
use hookrelay_ingest::claims::{Settled, StoreCalls};
use hookrelay_ingest::dedupe::{ContentDigest, DedupeKey};
use hookrelay_ingest::event::ParseError;
use hookrelay_ingest::queue::PublishError;
use hookrelay_ingest::sequence::Arrival;

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
    pub(crate) fn settled(&mut self, settled: Settled) {
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
