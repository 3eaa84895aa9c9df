//! Stream events: a routed event that owns its text so it can wait in the bridge's buffer, and
//! the providers' long-lived streams it comes from. Pure: no I/O.

use std::borrow::Cow;

use hookrelay::senders::{HEISENBERG, REKKO};

use crate::dedupe::{ContentDigest, DedupeKey};
use crate::event::{DigestScope, Origin, ParseError, RoutedEvent};
use crate::json_safety::consumers_can_read;
use crate::queue::can_carry_body;

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
            Self::Heisenberg => HEISENBERG,
            Self::Rekko => REKKO.name,
        }
    }
}
