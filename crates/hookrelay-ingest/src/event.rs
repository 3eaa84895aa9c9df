//! A routed event: the facts a provider's routing reads from a verified webhook body or a stream
//! frame (type, identity, market, sequence, time, what its content digest covers), and why a body
//! can't be routed ([`ParseError`]). Pure: no I/O. The readers routing uses are in
//! [`crate::fields`]; the queue message an event becomes, in [`crate::queue`].

use std::borrow::Cow;

use hookrelay::senders::{HOOKRELAY, Sender};
use hookrelay::signature::{SignedRequest, Verified};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::dedupe::{ContentDigest, DedupeKey};
use crate::json_safety::{MAX_BODY_DEPTH, consumers_can_read};
use crate::queue::can_carry_body;
use crate::sequence::SequenceStream;
use crate::stream::StreamSource;

/// A sender's timestamp: the text as sent and the instant it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderTimestamp {
    /// Exactly as the sender wrote it (RFC 3339 for engine and Rekko, Unix seconds for Standard).
    pub as_sent: String,
    /// The instant, for the replay-window check.
    pub instant: OffsetDateTime,
}

/// Where a routed event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A webhook whose signature was verified.
    Webhook(Sender),
    /// A provider's stream, read by the bridge.
    Stream(StreamSource),
    /// hookrelay itself (a sequence-gap report).
    Hookrelay,
}

impl Origin {
    /// The envelope's `provider`.
    pub fn provider(self) -> &'static str {
        match self {
            Self::Webhook(sender) => sender.name,
            Self::Stream(source) => source.provider(),
            Self::Hookrelay => HOOKRELAY,
        }
    }
}

/// An event routed and ready for the envelope: from a verified webhook (borrowing the request's
/// body and signature) or from a stream (owning its text, a [`StreamEvent`]). Only routing makes
/// one: a webhook's from a `Verified<SignedRequest>`, a stream's through [`RoutedEvent::stream`],
/// which the bridge calls on text its authenticated connection delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedEvent<'a> {
    pub(crate) origin: Origin,
    pub(crate) event_type: String,
    pub(crate) dedupe_key: DedupeKey,
    pub(crate) market_id: Option<String>,
    pub(crate) sequence: Option<u64>,
    pub(crate) delivery_id: Option<String>,
    pub(crate) occurred_at: Option<String>,
    pub(crate) signed_at: Option<OffsetDateTime>,
    pub(crate) signature: Option<&'a str>,
    pub(crate) body: Cow<'a, str>,
    pub(crate) digest_scope: DigestScope,
    /// The engine's sequence stream: its operator, and which configured secret verified it.
    pub(crate) sequence_stream: Option<(String, usize)>,
}

/// What of an event's body its content digest ([`RoutedEvent::content_digest`]) covers: the
/// parts a sender keeps identical across the retries of one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DigestScope {
    /// The whole body (senders that re-send the same body under the same key).
    #[default]
    Body,
    /// These byte ranges of the body, in order (`None`: the part is absent), e.g. the engine's
    /// `eventType`, `marketId`, `timestamp` and `payload`, not its `id`, which the engine does not
    /// promise to keep across attempts.
    Parts(Vec<Option<std::ops::Range<usize>>>),
}

impl DigestScope {
    /// The scope of `parts`, raw JSON values read from `body` (each a slice of it; a value that
    /// is not counts as absent).
    pub(crate) fn of_parts(body: &str, parts: &[Option<&RawValue>]) -> Self {
        let start = body.as_ptr() as usize;
        Self::Parts(
            parts
                .iter()
                .map(|part| {
                    let raw = (*part)?.get();
                    let from = (raw.as_ptr() as usize).checked_sub(start)?;
                    Some(from..from + raw.len()).filter(|range| range.end <= body.len())
                })
                .collect(),
        )
    }
}

/// What a provider's webhook routing reads from a verified body.
#[derive(Debug)]
pub struct WebhookFields {
    /// The sender's event type.
    pub event_type: String,
    /// The event's identity for deduplication.
    pub dedupe_key: DedupeKey,
    /// The market, when the sender names one.
    pub market_id: Option<String>,
    /// The sender's sequence number.
    pub sequence: Option<u64>,
    /// The sender's delivery id.
    pub delivery_id: Option<String>,
    /// The signed timestamp the replay window is checked against.
    pub occurred_at: SenderTimestamp,
    /// What the content digest covers.
    pub digest_scope: DigestScope,
    /// For a sender whose `sequence` counts its deliveries (the engine): the operator the
    /// sequence belongs to (empty when the body names none), for the sequence-gap streams.
    pub sequence_operator: Option<String>,
}

impl<'a> RoutedEvent<'a> {
    /// The event `sender`'s routing read from `verified` (whose body is `body`).
    pub fn webhook(
        sender: Sender,
        verified: &'a Verified<SignedRequest>,
        body: &'a str,
        fields: WebhookFields,
    ) -> Result<Self, ParseError> {
        if !can_carry_body(body) {
            return Err(ParseError::NotQueueSafe);
        }
        consumers_can_read(body)?;
        Ok(Self {
            origin: Origin::Webhook(sender),
            event_type: fields.event_type,
            dedupe_key: fields.dedupe_key,
            market_id: fields.market_id,
            sequence: fields.sequence,
            delivery_id: fields.delivery_id,
            occurred_at: Some(fields.occurred_at.as_sent),
            signed_at: Some(fields.occurred_at.instant),
            signature: Some(verified.signature()),
            body: Cow::Borrowed(body),
            digest_scope: fields.digest_scope,
            sequence_stream: fields
                .sequence_operator
                .map(|operator| (operator, verified.secret_index())),
        })
    }
}

impl RoutedEvent<'static> {
    /// One of hookrelay's own events (provider and FIFO group `hookrelay`, no market, no sender
    /// signature): `body` under `dedupe_key`, built by hookrelay, so never unreadable.
    pub fn hookrelay(event_type: &str, dedupe_key: DedupeKey, body: String) -> Self {
        RoutedEvent {
            origin: Origin::Hookrelay,
            event_type: event_type.to_owned(),
            dedupe_key,
            market_id: None,
            sequence: None,
            delivery_id: None,
            occurred_at: None,
            signed_at: None,
            signature: None,
            body: Cow::Owned(body),
            digest_scope: DigestScope::Body,
            sequence_stream: None,
        }
    }
}

impl RoutedEvent<'_> {
    /// Where it came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The event type as sent (`unknown` for a Standard Webhooks body without `type`).
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The sequence stream this event counts in and its sequence, given the registration
    /// fingerprints of its sender's secrets (in configuration order): engine deliveries only.
    pub fn sequence_in_stream(&self, fingerprints: &[String]) -> Option<(SequenceStream, u64)> {
        let (operator, secret_index) = self.sequence_stream.as_ref()?;
        let stream = SequenceStream {
            registration: fingerprints.get(*secret_index)?.clone(),
            operator: operator.clone(),
        };
        Some((stream, self.sequence?))
    }

    /// The event's identity for deduplication.
    pub fn dedupe_key(&self) -> &DedupeKey {
        &self.dedupe_key
    }

    /// This event under its content key: its key with its digest appended
    /// ([`DedupeKey::with_digest`]), when either dedupe layer found the key taken by other
    /// content, or the store could not confirm this event's claim of it. The envelope `id` and
    /// the FIFO deduplication id follow it.
    pub fn rekeyed_by_content(mut self, digest: &ContentDigest) -> Self {
        self.rekey_by_content(digest);
        self
    }

    /// Moves this event under its content key, in place ([`RoutedEvent::rekeyed_by_content`]).
    pub fn rekey_by_content(&mut self, digest: &ContentDigest) {
        self.dedupe_key = self.dedupe_key.with_digest(digest);
    }

    /// The market, when the event names one.
    pub fn market_id(&self) -> Option<&str> {
        self.market_id.as_deref()
    }

    /// The sender's sequence number (engine).
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// The sender's delivery id, when it gives one.
    pub fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_deref()
    }

    /// The event's timestamp exactly as sent, when it has one.
    pub fn occurred_at(&self) -> Option<&str> {
        self.occurred_at.as_deref()
    }

    /// The signed instant the replay window is checked against (webhooks only).
    pub fn signed_at(&self) -> Option<OffsetDateTime> {
        self.signed_at
    }

    /// The signature header value as verified (webhooks only).
    pub fn signature(&self) -> Option<&str> {
        self.signature
    }

    /// The body: the verified webhook body, or the frame (Heisenberg) or event object (Rekko)
    /// exactly as received.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The digest of this event's content, as the idempotency store keeps it with the key: the
    /// same for every retry of one event, different for another event under the same key.
    pub fn content_digest(&self) -> ContentDigest {
        match &self.digest_scope {
            DigestScope::Body => ContentDigest::of(&[self.body.as_bytes()]),
            DigestScope::Parts(ranges) => {
                let parts: Vec<&[u8]> = ranges
                    .iter()
                    .map(|range| {
                        range
                            .clone()
                            .and_then(|r| self.body.as_bytes().get(r))
                            .unwrap_or_default()
                    })
                    .collect();
                ContentDigest::of(&parts)
            }
        }
    }
}

/// Why a verified delivery can't be routed. Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not UTF-8 (so it is not JSON).
    #[error("the body is not valid UTF-8 JSON")]
    NotUtf8,
    /// The body is not a single well-formed JSON value.
    #[error("the body is not valid JSON ({0})")]
    NotJson(String),
    /// The body is JSON but not an object, or repeats a routing field.
    #[error("the body must be a JSON object{0}")]
    NotAnObject(&'static str),
    /// A required routing field is absent or null.
    #[error("the body has no `{0}` field")]
    MissingField(&'static str),
    /// A routing field has the wrong type or form.
    #[error("the `{field}` field must be {expected}")]
    InvalidField {
        /// The field's name in the sender's payload.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A routing header has the wrong form.
    #[error("the {header} header must be {expected}")]
    InvalidHeader {
        /// The header's name.
        header: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The body holds characters an SQS message cannot carry.
    #[error("the body contains U+FFFE or U+FFFF, which SQS messages cannot carry")]
    NotQueueSafe,
    /// The body nests deeper than consumers' JSON parsers go.
    #[error(
        "the body is nested deeper than {MAX_BODY_DEPTH} levels, which consumers' JSON parsers refuse"
    )]
    TooDeep,
    /// The body holds an unpaired UTF-16 surrogate escape.
    #[error(
        "the body holds an unpaired surrogate escape (\\uD800 to \\uDFFF alone), which consumers' JSON parsers refuse"
    )]
    LoneSurrogate,
    /// The body holds a number no IEEE 754 double can hold.
    #[error(
        "the body holds a number no IEEE 754 double can hold (such as 1e400), which consumers' JSON parsers refuse"
    )]
    NumberOutOfRange,
}

#[cfg(test)]
pub(crate) mod test_support {
    use hookrelay::senders::Sender;
    use hookrelay::signature::{SecretSet, SignedRequest, SigningSecret, Verified, verify};

    use super::{ParseError, RoutedEvent};
    use crate::providers;

    /// A delivery verified the honest way: signed with the sender's scheme, then verified.
    pub struct TestDelivery {
        sender: Sender,
        verified: Verified<SignedRequest>,
    }

    impl TestDelivery {
        /// The sender's routing of it.
        pub fn parse(&self) -> Result<RoutedEvent<'_>, ParseError> {
            let route = providers::WEBHOOKS
                .iter()
                .find(|route| route.sender == self.sender)
                .expect("a registered sender");
            (route.route)(&self.verified)
        }
    }

    pub const KEY: &[u8] = b"unit-test-key";

    /// The relay signer of the unit tests.
    pub fn signer() -> hookrelay::relay::RelaySigner {
        hookrelay::relay::RelaySigner::new(vec![hookrelay::relay::RelaySigningKey::from_seed(
            [11; 32],
        )])
        .unwrap()
    }

    /// `body` from `sender` with `headers`, signed with [`KEY`] and verified.
    pub fn verified(
        sender: Sender,
        headers: &[(&'static str, &str)],
        body: impl AsRef<[u8]>,
    ) -> TestDelivery {
        let body = body.as_ref();
        let secret = SigningSecret::from_key_bytes(KEY);
        let find = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let id_and_timestamp = find("webhook-id").zip(find("webhook-timestamp"));
        let mut request = SignedRequest {
            headers: headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect(),
            body: body.to_vec(),
        };
        for (name, value) in sender.scheme.sign(&secret, id_and_timestamp, body) {
            request.headers.insert(name, value);
        }
        let secrets = SecretSet::new(vec![secret]).unwrap();
        let verified = verify(sender.scheme, &secrets, request).expect("test delivery verifies");
        TestDelivery { sender, verified }
    }
}
