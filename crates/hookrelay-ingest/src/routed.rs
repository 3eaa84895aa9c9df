//! A routed event: the facts routing reads from a verified webhook body or a stream frame (type,
//! identity, market, sequence, time), the field readers every provider's routing uses, and the
//! SQS message the event becomes (the envelope with the body spliced in verbatim, its attributes
//! and FIFO ids, within SQS's rules for what a message may carry). Pure: no I/O.
//!
//! Field readers capture each routing field as raw JSON, then type it one by one so an error
//! names the field without echoing its value, while checking that the whole body is one
//! well-formed JSON object. The body itself is never re-serialised: the envelope copies it.

use std::borrow::Cow;
use std::fmt::Write as _;

use hookrelay::envelope::{ENVELOPE_VERSION, Via, attributes};
use hookrelay::relay::{self, RelaySignature, RelaySigner};
use hookrelay::senders::Sender;
use hookrelay::signature::{SignedRequest, Verified};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dedupe::{ContentDigest, DedupeKey};
use crate::sequence::SequenceStream;

/// The largest message SQS accepts (body plus attributes), in bytes.
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;
/// The most entries one `SendMessageBatch` call may carry.
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;
/// SQS's limit on `MessageGroupId` and `MessageDeduplicationId`.
pub const SQS_MAX_ID_CHARS: usize = 128;

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

/// The envelope's `provider` of hookrelay's own events.
pub const HOOKRELAY_PROVIDER: &str = "hookrelay";

impl Origin {
    /// The envelope's `provider`.
    pub fn provider(self) -> &'static str {
        match self {
            Self::Webhook(sender) => sender.name,
            Self::Stream(source) => source.provider(),
            Self::Hookrelay => HOOKRELAY_PROVIDER,
        }
    }
}

/// An event routed and ready for the envelope: from a verified webhook (borrowing the request's
/// body and signature) or from a stream (owning its text, a [`StreamEvent`]). Only routing makes
/// one: a webhook's from a `Verified<SignedRequest>`, a stream's through [`RoutedEvent::stream`],
/// which the bridge calls on text its authenticated connection delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedEvent<'a> {
    origin: Origin,
    event_type: String,
    dedupe_key: DedupeKey,
    market_id: Option<String>,
    sequence: Option<u64>,
    delivery_id: Option<String>,
    occurred_at: Option<String>,
    signed_at: Option<OffsetDateTime>,
    signature: Option<&'a str>,
    body: Cow<'a, str>,
    digest_scope: DigestScope,
    /// The engine's sequence stream: its operator, and which configured secret verified it.
    sequence_stream: Option<(String, usize)>,
}

/// What of an event's body its content digest ([`RoutedEvent::content_digest`]) covers: the
/// parts a sender keeps identical across the retries of one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DigestScope {
    /// The whole body (senders that re-send the same body under the same key).
    #[default]
    Body,
    /// These byte ranges of the body, in order (`None`: the part is absent), e.g. the engine's
    /// `eventType`, `marketId`, `timestamp` and `payload`, not its `id`, which the seed does not
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

/// A stream event: a routed event that owns its text, so it can wait in the bridge's buffer, and
/// knows its stream. Reads as the [`RoutedEvent`] it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    source: StreamSource,
    event: RoutedEvent<'static>,
}

impl std::ops::Deref for StreamEvent {
    type Target = RoutedEvent<'static>;

    fn deref(&self) -> &Self::Target {
        &self.event
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

/// The verified body as text: webhook bodies must be UTF-8 JSON.
pub fn webhook_body(verified: &Verified<SignedRequest>) -> Result<&str, ParseError> {
    std::str::from_utf8(&verified.get().body).map_err(|_| ParseError::NotUtf8)
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

impl StreamEvent {
    /// An event `source` delivered, `body` exactly as received.
    pub fn stream(
        source: StreamSource,
        event_type: String,
        dedupe_key: DedupeKey,
        market_id: Option<String>,
        occurred_at: Option<String>,
        body: String,
    ) -> Result<Self, ParseError> {
        if !can_carry_body(&body) {
            return Err(ParseError::NotQueueSafe);
        }
        consumers_can_read(&body)?;
        let event = RoutedEvent {
            origin: Origin::Stream(source),
            event_type,
            dedupe_key,
            market_id,
            sequence: None,
            delivery_id: None,
            occurred_at,
            signed_at: None,
            signature: None,
            body: Cow::Owned(body),
            digest_scope: DigestScope::Body,
            sequence_stream: None,
        };
        Ok(Self { source, event })
    }

    /// Which stream.
    pub fn source(&self) -> StreamSource {
        self.source
    }

    /// This event with its content digest over the bytes `part` of its body only: for a stream
    /// whose frames carry a delivery time that changes on a redelivery (Heisenberg's frame
    /// `timestamp`), so a redelivered event is a duplicate, not a conflict. A range outside the
    /// body leaves the digest over the whole body.
    pub fn digesting_only(mut self, part: std::ops::Range<usize>) -> Self {
        if part.start <= part.end && part.end <= self.event.body.len() {
            self.event.digest_scope = DigestScope::Parts(vec![Some(part)]);
        }
        self
    }

    /// This event under its content key ([`RoutedEvent::rekeyed_by_content`]).
    pub fn rekeyed_by_content(self, digest: &ContentDigest) -> Self {
        Self {
            source: self.source,
            event: self.event.rekeyed_by_content(digest),
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
        self.dedupe_key = self.dedupe_key.with_digest(digest);
        self
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

    /// The SQS message for this event, received at `received_at`: the envelope with the body
    /// spliced in as `data`, its attributes (a `signature` attribute for webhooks only), FIFO
    /// ids, and sealed by `signer` at `received_at` (the relay attributes). No message is built
    /// without a seal. Computes the content digest; [`RoutedEvent::queue_message_with`] takes
    /// one already computed.
    pub fn queue_message(&self, received_at: OffsetDateTime, signer: &RelaySigner) -> QueueMessage {
        self.queue_message_with(&self.content_digest(), received_at, signer)
    }

    /// [`RoutedEvent::queue_message`] for an event whose content digest is `digest`
    /// ([`RoutedEvent::content_digest`]): the FIFO deduplication id names the key *and* the
    /// content ([`deduplication_id`]).
    pub fn queue_message_with(
        &self,
        digest: &ContentDigest,
        received_at: OffsetDateTime,
        signer: &RelaySigner,
    ) -> QueueMessage {
        let sealed_at = received_at.unix_timestamp();
        let received_at = rfc3339_millis(received_at);
        let head = EnvelopeHead {
            version: ENVELOPE_VERSION,
            id: self.dedupe_key.as_str(),
            provider: self.origin.provider(),
            via: match self.origin {
                Origin::Webhook(_) => Via::Webhook,
                Origin::Stream(_) => Via::Stream,
                Origin::Hookrelay => Via::Hookrelay,
            },
            event_type: &self.event_type,
            market_id: self.market_id.as_deref(),
            sequence: self.sequence,
            delivery_id: self.delivery_id.as_deref(),
            occurred_at: self.occurred_at.as_deref(),
            received_at: &received_at,
        };
        let deduplication_id = deduplication_id(head.provider, &self.dedupe_key, digest);
        message(
            &head,
            &self.body,
            self.signature,
            deduplication_id,
            |body| signer.sign(head.id, sealed_at, body),
        )
    }
}

/// The FIFO `MessageDeduplicationId` of the event under `key` with content `digest`: the key and
/// the digest, `{key}#{digest}` (a conflict key, which ends in its digest already, as it is),
/// hashed by [`fifo_id`] when SQS can't take it. SQS drops a second send under an id within
/// five minutes *whatever it carries*, so an id of the key alone would let one event's send (one
/// whose answer was lost, say) silently stand for another event reusing the key; with the digest
/// in it, only the same content is ever dropped (docs/contract.md, "Exactly once").
pub fn deduplication_id(provider: &str, key: &DedupeKey, digest: &ContentDigest) -> String {
    if key.names_content(digest) {
        fifo_id(provider, key.as_str())
    } else {
        fifo_id(provider, key.with_digest(digest).as_str())
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

/// A provider's long-lived stream, which `hookrelay-bridge` reads into the queue.
///
/// Stream events carry no per-message signature: they are authentic because they arrive over a
/// TLS connection the bridge opened to the provider and authenticated with its API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamSource {
    /// Heisenberg's WebSocket gateway (docs/contract.md, "The senders").
    Heisenberg,
    /// Rekko's SSE feed, `GET /v1/stream` (docs/contract.md, "The senders").
    Rekko,
}

impl StreamSource {
    /// Both streams.
    pub const ALL: [StreamSource; 2] = [StreamSource::Heisenberg, StreamSource::Rekko];

    /// The envelope's `provider` for this stream's events (`rekko` is the same sender as the
    /// webhook route, so consumers see one provider whichever way its events came).
    pub fn provider(self) -> &'static str {
        match self {
            Self::Heisenberg => "heisenberg",
            Self::Rekko => "rekko",
        }
    }
}

/// The envelope's fields before `data`, in contract order, borrowing from the parsed event.
#[derive(Serialize)]
struct EnvelopeHead<'a> {
    version: u32,
    id: &'a str,
    provider: &'a str,
    via: Via,
    #[serde(rename = "type")]
    event_type: &'a str,
    market_id: Option<&'a str>,
    sequence: Option<u64>,
    delivery_id: Option<&'a str>,
    occurred_at: Option<&'a str>,
    received_at: &'a str,
}

/// The message for `head` with `body` spliced in as `data`, its attributes (the relay attributes
/// from `seal` over the finished text) and FIFO ids.
fn message(
    head: &EnvelopeHead<'_>,
    body: &str,
    signature: Option<&str>,
    deduplication_id: String,
    seal: impl FnOnce(&str) -> RelaySignature,
) -> QueueMessage {
    // Serialising a struct of strings and integers into a String cannot fail.
    let mut text = serde_json::to_string(head).unwrap_or_default();
    // Splice the body in verbatim: `{head...}` becomes `{head...,"data":<body>}`.
    text.pop();
    text.reserve(body.len() + 9);
    text.push_str(",\"data\":");
    text.push_str(body);
    text.push('}');

    let mut attributes = vec![
        (attributes::PROVIDER, head.provider.to_owned()),
        (attributes::EVENT_TYPE, head.event_type.to_owned()),
    ];
    if let Some(market) = head.market_id {
        attributes.push((attributes::MARKET_ID, market.to_owned()));
    }
    if let Some(delivery_id) = head.delivery_id {
        attributes.push((attributes::DELIVERY_ID, delivery_id.to_owned()));
    }
    if let Some(signature) = signature {
        attributes.push((attributes::SIGNATURE, signature.to_owned()));
    }
    let relay = seal(&text);
    attributes.extend([
        (relay::attributes::RELAY_ID, relay.id),
        (relay::attributes::RELAY_TIMESTAMP, relay.timestamp),
        (relay::attributes::RELAY_SIGNATURE, relay.signatures),
    ]);

    // One FIFO group per provider and market, so two providers' markets never share a group
    // (and never hold each other back); the provider alone when there is no market.
    let group_id = match head.market_id {
        Some(market) => fifo_id(head.provider, &format!("{}:{market}", head.provider)),
        None => head.provider.to_owned(),
    };
    QueueMessage {
        body: text,
        attributes,
        group_id,
        deduplication_id,
    }
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-02-18T23:00:01.250Z`.
fn rfc3339_millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let whole = at.replace_nanosecond(0).unwrap_or(at);
    let text = whole.format(&Rfc3339).unwrap_or_default();
    // `text` ends in `Z`; insert the milliseconds before it.
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str(text.trim_end_matches('Z'));
    let _ = write!(out, ".{:03}Z", at.millisecond());
    out
}

/// One message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The JSON envelope.
    pub body: String,
    /// String message attributes, by name.
    pub attributes: Vec<(&'static str, String)>,
    /// FIFO `MessageGroupId`: ordering is kept within a group.
    pub group_id: String,
    /// FIFO `MessageDeduplicationId`.
    pub deduplication_id: String,
}

impl QueueMessage {
    /// The value of the attribute `name`, if the message has it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.as_str())
    }

    /// The size SQS counts against its limit: body, plus each attribute's name, type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }
}

/// Whether SQS can carry `text` in a message body or attribute: XML 1.0 characters only
/// (tab, newline, carriage return, U+0020..U+D7FF, U+E000..U+FFFD, U+10000 and above).
pub fn can_carry_text(text: &str) -> bool {
    text.chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
}

/// Whether SQS can carry a JSON body. Valid JSON cannot hold raw control characters, so only the
/// two noncharacters need looking for. Two single-character searches, because each runs as a
/// byte search (memchr on the character's last UTF-8 byte, which ASCII never contains), while a
/// search for either of two characters decodes every character: 16 KiB in ~1 µs instead of ~15.
pub fn can_carry_body(json: &str) -> bool {
    !json.contains('\u{FFFE}') && !json.contains('\u{FFFF}')
}

/// The marker of a hashed FIFO id: `{prefix}:sha256:{hex}`.
const HASHED_ID_MARKER: &str = ":sha256:";

/// `id` if SQS accepts it as a FIFO group or deduplication id (1 to 128 visible ASCII
/// characters) and it does not contain the hashed form's marker `:sha256:`; otherwise `{prefix}`,
/// the marker and the hex SHA-256 of `id`, which always fits and keeps equal inputs equal. Every
/// hashed id holds the marker and no passed-through id does, so a sender can't choose an id (a
/// `webhook-id` of `sha256:<hex>`, say) that meets another event's hashed one.
pub fn fifo_id(prefix: &str, id: &str) -> String {
    let fits = !id.is_empty()
        && id.len() <= SQS_MAX_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_graphic())
        && !id.contains(HASHED_ID_MARKER);
    if fits {
        id.to_owned()
    } else {
        format!(
            "{prefix}{HASHED_ID_MARKER}{}",
            hex::encode(Sha256::digest(id.as_bytes()))
        )
    }
}

/// How deep a body may nest: the consumers' JSON parsers bound recursion (serde_json at 128
/// levels, the envelope adding one; Python near 1,000), and a message no consumer can read would
/// fail on every receive until it reached the dead-letter queue.
pub const MAX_BODY_DEPTH: usize = 100;

/// Whether every consumer can parse `json` (already known to be well-formed JSON): it nests at
/// most [`MAX_BODY_DEPTH`] levels, holds no unpaired surrogate escape (`"\ud800"`, which
/// JavaScript's `JSON.stringify` can emit and serde_json refuses) and no number beyond an f64's
/// range (`1e400`). One pass; strings are skipped with memchr, so string-heavy bodies cost
/// little.
pub fn consumers_can_read(json: &str) -> Result<(), ParseError> {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at = string_end(bytes, at + 1)?;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_BODY_DEPTH {
                    return Err(ParseError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let end = bytes[at..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(bytes.len(), |len| at + len);
                // Only an exponent, or more digits than any f64 has, can leave its range: other
                // numbers are not parsed at all (most bodies' numbers are short and plain).
                let token = &json[at..end];
                let may_overflow = token.len() > 300 || token.bytes().any(|b| b | 0x20 == b'e');
                if may_overflow && !token.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(ParseError::NumberOutOfRange);
                }
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The index after the closing quote of the string whose content starts at `at`, checking its
/// `\u` escapes pair up.
fn string_end(bytes: &[u8], mut at: usize) -> Result<usize, ParseError> {
    let hex4 = |from: usize| {
        bytes
            .get(from..from + 4)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u16::from_str_radix(digits, 16).ok())
    };
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &bytes[at..]) {
        at += offset;
        if bytes[at] == b'"' {
            return Ok(at + 1);
        }
        // A backslash: `\uXXXX` is checked, any other escape is two bytes.
        if bytes.get(at + 1) != Some(&b'u') {
            at += 2;
            continue;
        }
        match hex4(at + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = (bytes.get(at + 6..at + 8) == Some(b"\\u".as_slice()))
                    .then(|| hex4(at + 8))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Err(ParseError::LoneSurrogate);
                }
                at += 12;
            }
            Some(0xDC00..=0xDFFF) => return Err(ParseError::LoneSurrogate),
            _ => at += 6,
        }
    }
    Ok(bytes.len())
}

/// A dedupe key for `provider` from content alone: the first 32 hex characters (128 bits) of the
/// SHA-256 of `content`, for events that carry no identity of their own.
pub fn content_key(provider: &str, content: &str) -> DedupeKey {
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    DedupeKey::new(provider, &[&digest[..32]])
}

/// Deserializes the body into a struct of raw routing fields, mapping serde's errors to ones
/// that never quote the body.
pub fn raw_fields<'b, T: serde::Deserialize<'b>>(body: &'b str) -> Result<T, ParseError> {
    // Derived struct deserializers also accept a JSON array (fields by position): refuse
    // anything but an object before serde sees it.
    if !body
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return match serde_json::from_str::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(ParseError::NotAnObject("")),
            Err(error) => Err(ParseError::NotJson(format!(
                "line {} column {}",
                error.line(),
                error.column()
            ))),
        };
    }
    serde_json::from_str(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => {
            if error.to_string().starts_with("duplicate field") {
                ParseError::NotAnObject(" with each routing field at most once")
            } else {
                ParseError::NotAnObject("")
            }
        }
        _ => ParseError::NotJson(format!("line {} column {}", error.line(), error.column())),
    })
}

/// The text of optional string field `field`: `None` when absent, null or empty; an error when it
/// is not a string or holds characters SQS cannot carry.
pub fn text(field: &'static str, raw: Option<&RawValue>) -> Result<Option<String>, ParseError> {
    let Some(raw) = raw else { return Ok(None) };
    let value: String = serde_json::from_str(raw.get()).map_err(|_| ParseError::InvalidField {
        field,
        expected: "a string",
    })?;
    if !can_carry_text(&value) {
        return Err(ParseError::InvalidField {
            field,
            expected: "text without control characters",
        });
    }
    Ok((!value.is_empty()).then_some(value))
}

/// [`text`], required.
pub fn required_text(field: &'static str, raw: Option<&RawValue>) -> Result<String, ParseError> {
    text(field, raw)?.ok_or(ParseError::MissingField(field))
}

/// A required non-negative integer field.
pub fn required_sequence(field: &'static str, raw: Option<&RawValue>) -> Result<u64, ParseError> {
    let raw = raw.ok_or(ParseError::MissingField(field))?;
    serde_json::from_str(raw.get()).map_err(|_| ParseError::InvalidField {
        field,
        expected: "a non-negative integer",
    })
}

/// A required RFC 3339 timestamp field.
pub fn rfc3339_timestamp(
    field: &'static str,
    raw: Option<&RawValue>,
) -> Result<SenderTimestamp, ParseError> {
    let as_sent = required_text(field, raw)?;
    let instant =
        OffsetDateTime::parse(&as_sent, &Rfc3339).map_err(|_| ParseError::InvalidField {
            field,
            expected: "an RFC 3339 timestamp",
        })?;
    Ok(SenderTimestamp { as_sent, instant })
}

#[cfg(test)]
pub(crate) mod test_support {
    use hookrelay::senders::Sender;
    use hookrelay::signature::{SecretSet, SignedRequest, SigningSecret, Verified, verify};

    use super::{ParseError, RoutedEvent};
    use crate::webhooks;

    /// A delivery verified the honest way: signed with the sender's scheme, then verified.
    pub struct TestDelivery {
        sender: Sender,
        verified: Verified<SignedRequest>,
    }

    impl TestDelivery {
        /// The sender's routing of it.
        pub fn parse(&self) -> Result<RoutedEvent<'_>, ParseError> {
            let route = webhooks::ROUTES
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

#[cfg(test)]
#[path = "routed_tests.rs"]
mod tests;
