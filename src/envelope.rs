//! The queue message contract: the versioned JSON envelope every SQS message body holds, its
//! message attributes and FIFO ids, and the consumer-side decoding and re-verification. No I/O.
//!
//! ```json
//! {"version":1,"id":"engine:op-1:42","provider":"engine","type":"ORDER_MATCHED",
//!  "market_id":"m-1","sequence":42,"delivery_id":"d-1","occurred_at":"2026-02-18T23:00:00.000Z",
//!  "received_at":"2026-02-18T23:00:01.250Z","data":{ ...the sender's body, byte for byte... }}
//! ```
//!
//! `data` is the verified request body copied verbatim (never re-serialised), so a consumer
//! holding the secret can re-check the sender's signature over exactly those bytes
//! ([`Envelope::verify_signature`]). Fields may be added within version 1; a change of meaning
//! bumps `version`, and [`Envelope::from_json`] refuses versions it does not know.

use std::fmt::Write as _;

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::delivery::Delivery;
use crate::events::{DecodeError, Event};
use crate::providers::{ParsedDelivery, Provider, StreamEvent};
use crate::queue::{self, QueueMessage};
use crate::secret::SecretSet;
use crate::verify::{self, VerifyError, standard_headers};

/// The envelope version this crate writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// Names of the string message attributes on every queued message.
pub mod attributes {
    /// The sender (`engine`, `rekko`, `standard`).
    pub const PROVIDER: &str = "provider";
    /// The sender's event type.
    pub const EVENT_TYPE: &str = "event_type";
    /// The market, when the sender names one.
    pub const MARKET_ID: &str = "market_id";
    /// The sender's delivery id, when it gives one.
    pub const DELIVERY_ID: &str = "delivery_id";
    /// The signature header exactly as received, for re-verification.
    pub const SIGNATURE: &str = "signature";
}

/// How an event reached hookrelay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A webhook whose signature the receiver verified; the `signature` attribute lets a
    /// consumer re-verify `data`.
    #[default]
    Webhook,
    /// A provider's stream (Heisenberg's WebSocket, Rekko's SSE feed), read by the bridge over a
    /// connection it authenticated with its API token. Not signed per message, so there is no
    /// `signature` attribute and nothing to re-verify.
    Stream,
}

/// One queued event, as consumers decode it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "json-schema",
    schemars(
        title = "hookrelay envelope, version 1",
        description = "The body of every SQS message hookrelay sends: one verified webhook event, or one event from a provider's stream. Fields may be added within version 1."
    )
)]
pub struct Envelope {
    /// Envelope format version; always [`ENVELOPE_VERSION`] after [`Envelope::from_json`].
    #[cfg_attr(feature = "json-schema", schemars(extend("const" = 1)))]
    pub version: u32,
    /// The dedupe key, unique per event (e.g. `engine:op-1:42`).
    pub id: String,
    /// The sender: `engine`, `rekko`, `standard` or `heisenberg` (later versions of the crate
    /// may add more).
    pub provider: String,
    /// How the event reached hookrelay: a signed webhook, or a provider's stream read by
    /// `hookrelay-bridge`. Absent in envelopes written before the bridge existed: `webhook`.
    #[serde(default)]
    pub via: Via,
    /// The sender's event type as sent (`unknown` for a Standard Webhooks body without `type`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The market the event concerns, when the sender names one.
    pub market_id: Option<String>,
    /// The sender's sequence number (engine).
    pub sequence: Option<u64>,
    /// The sender's delivery id (engine body `id` or `X-Webhook-Id`; Standard `webhook-id`).
    pub delivery_id: Option<String>,
    /// The sender's timestamp, exactly as sent (RFC 3339 for engine and Rekko, Unix seconds for
    /// Standard Webhooks).
    pub occurred_at: Option<String>,
    /// When hookrelay received the delivery (RFC 3339, UTC).
    #[cfg_attr(feature = "json-schema", schemars(extend("format" = "date-time")))]
    pub received_at: String,
    /// The sender's request body as a JSON value. serde_json's `RawValue` holds the value
    /// without any whitespace around it; [`Envelope::signed_data`] has the exact signed bytes.
    #[cfg_attr(
        feature = "json-schema",
        schemars(
            description = "The sender's request body, verbatim. The exact signed bytes are the message text between \"data\": and the final }, whitespace included."
        )
    )]
    pub data: Box<RawValue>,
    /// The signed body when it differs from `data` (whitespace around the JSON value, such as
    /// the trailing newline many JSON encoders write). Set by [`Envelope::from_json`].
    #[serde(skip)]
    signed_data: Option<String>,
}

impl Envelope {
    /// The envelope's JSON Schema (draft 2020-12), generated from these Rust types. The same
    /// schema is committed as `schema/envelope.v1.schema.json` for non-Rust consumers.
    #[cfg(feature = "json-schema")]
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Envelope)).unwrap_or_default()
    }

    /// Decodes an SQS message body, refusing envelope versions this crate does not know.
    pub fn from_json(message_body: &str) -> Result<Self, DecodeError> {
        let mut envelope: Self =
            serde_json::from_str(message_body).map_err(DecodeError::Envelope)?;
        if envelope.version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(envelope.version));
        }
        envelope.signed_data = signed_data_text(message_body, envelope.data.get())
            .filter(|text| *text != envelope.data.get())
            .map(str::to_owned);
        Ok(envelope)
    }

    /// The sender's body exactly as signed, whitespace around the JSON value included: the
    /// bytes to re-verify. Equal to `data` unless the body had such whitespace.
    pub fn signed_data(&self) -> &str {
        self.signed_data.as_deref().unwrap_or(self.data.get())
    }

    /// The typed event carried in `data`.
    pub fn event(&self) -> Result<Event, DecodeError> {
        Event::decode(&self.provider, &self.event_type, self.data.get())
    }

    /// Re-checks the sender's signature over `data`, given the `signature` message attribute and
    /// the sender's secrets: proof that the event is what the sender signed, independent of
    /// hookrelay.
    pub fn verify_signature(
        &self,
        signature: &str,
        secrets: &SecretSet,
    ) -> Result<(), VerifyError> {
        let provider = Provider::from_name(&self.provider).ok_or(VerifyError::InvalidSignature(
            "the envelope's provider has no signature scheme",
        ))?;
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: Option<&str>| {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        match provider.scheme() {
            verify::Scheme::HexBodyHmac { header, .. } => put(header, Some(signature)),
            verify::Scheme::StandardWebhooks => {
                put(standard_headers::SIGNATURE, Some(signature));
                put(standard_headers::ID, self.delivery_id.as_deref());
                put(standard_headers::TIMESTAMP, self.occurred_at.as_deref());
            }
        }
        let delivery = Delivery {
            provider,
            headers,
            body: self.signed_data().as_bytes().to_vec(),
        };
        verify::verify(provider.scheme(), secrets, delivery).map(drop)
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

/// The SQS message for a verified, parsed delivery received at `received_at`.
pub fn queue_message(parsed: &ParsedDelivery<'_>, received_at: OffsetDateTime) -> QueueMessage {
    let received_at = rfc3339_millis(received_at);
    let head = EnvelopeHead {
        version: ENVELOPE_VERSION,
        id: parsed.dedupe_key.as_str(),
        provider: parsed.provider.as_str(),
        via: Via::Webhook,
        event_type: &parsed.event_type,
        market_id: parsed.market_id.as_deref(),
        sequence: parsed.sequence,
        delivery_id: parsed.delivery_id.as_deref(),
        occurred_at: Some(&parsed.occurred_at.as_sent),
        received_at: &received_at,
    };
    message(&head, parsed.body, Some(parsed.signature))
}

/// The SQS message for an event the bridge read from a provider's stream at `received_at`. It
/// has no `signature` attribute: stream events are not signed per message.
pub fn stream_queue_message(event: &StreamEvent, received_at: OffsetDateTime) -> QueueMessage {
    let received_at = rfc3339_millis(received_at);
    let head = EnvelopeHead {
        version: ENVELOPE_VERSION,
        id: event.dedupe_key().as_str(),
        provider: event.source().provider(),
        via: Via::Stream,
        event_type: event.event_type(),
        market_id: event.market_id(),
        sequence: None,
        delivery_id: None,
        occurred_at: event.occurred_at(),
        received_at: &received_at,
    };
    message(&head, event.body(), None)
}

/// The message for `head` with `body` spliced in as `data`, its attributes and FIFO ids.
fn message(head: &EnvelopeHead<'_>, body: &str, signature: Option<&str>) -> QueueMessage {
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

    let group_id = match head.market_id {
        Some(market) => queue::fifo_id("market", market),
        None => head.provider.to_owned(),
    };
    let deduplication_id = queue::fifo_id(head.provider, head.id);
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

/// Where the signed body sits in an envelope hookrelay wrote: `data` is the last member, spliced
/// in verbatim, so the body is everything between `"data":` and the closing `}`, whitespace
/// included. `None` if the message does not have that shape (e.g. it was re-serialised).
fn signed_data_text<'m>(message: &'m str, value: &str) -> Option<&'m str> {
    const WS: [char; 4] = [' ', '\t', '\n', '\r'];
    let inner = message.strip_suffix('}')?;
    let before_trailing_ws = inner.trim_end_matches(WS);
    let value_start = before_trailing_ws.strip_suffix(value)?.len();
    let head = inner[..value_start].trim_end_matches(WS);
    head.strip_suffix("\"data\":")?;
    Some(&inner[head.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::parse;
    use crate::providers::test_support::verified;
    use crate::secret::SigningSecret;

    const ENGINE_BODY: &str = "{\"id\":\"d-1\", \"sequence\":42,\n \"eventType\":\"ORDER_MATCHED\",\"marketId\":\"m 1\",\"operatorId\":\"op\",\"payload\":{\"price\":0.650},\"timestamp\":\"2026-02-18T23:00:00.000Z\"}";

    fn received() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(1_771_455_601_250_999_000).unwrap()
    }

    #[test]
    fn the_envelope_carries_the_body_verbatim_and_the_contract_fields() {
        let v = verified(Provider::Engine, &[], ENGINE_BODY);
        let message = queue_message(&parse(&v).unwrap(), received());
        let envelope = Envelope::from_json(&message.body).unwrap();
        assert_eq!(
            envelope.data.get(),
            ENGINE_BODY,
            "data must be byte-identical, whitespace and 0.650 included"
        );
        assert_eq!(envelope.id, "engine:op:42");
        assert_eq!(envelope.provider, "engine");
        assert_eq!(envelope.via, Via::Webhook);
        assert_eq!(envelope.event_type, "ORDER_MATCHED");
        assert_eq!(envelope.market_id.as_deref(), Some("m 1"));
        assert_eq!(envelope.sequence, Some(42));
        assert_eq!(envelope.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(
            envelope.occurred_at.as_deref(),
            Some("2026-02-18T23:00:00.000Z")
        );
        assert_eq!(envelope.received_at, "2026-02-18T23:00:01.250Z");
        let order = [
            "version",
            "id",
            "provider",
            "via",
            "type",
            "market_id",
            "sequence",
            "delivery_id",
            "occurred_at",
            "received_at",
            "data",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| message.body.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "fields out of contract order: {}",
            message.body
        );
    }

    #[test]
    fn attributes_and_fifo_ids() {
        let v = verified(Provider::Engine, &[], ENGINE_BODY);
        let message = queue_message(&parse(&v).unwrap(), received());
        let names: Vec<&str> = message.attributes.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "provider",
                "event_type",
                "market_id",
                "delivery_id",
                "signature"
            ]
        );
        assert!(
            message
                .attribute("signature")
                .unwrap()
                .starts_with("sha256=")
        );
        // "m 1" has a space, which SQS group ids can't hold: it is hashed, stably.
        assert!(message.group_id.starts_with("market:sha256:"));
        assert_eq!(message.deduplication_id, "engine:op:42");

        let rekko = verified(
            Provider::Rekko,
            &[],
            r#"{"type":"whale_alert","timestamp":"2026-02-18T23:00:00Z"}"#,
        );
        let message = queue_message(&parse(&rekko).unwrap(), received());
        assert_eq!(
            message.group_id, "rekko",
            "no market: the provider is the group"
        );
        let names: Vec<&str> = message.attributes.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["provider", "event_type", "signature"]);
    }

    #[test]
    fn whitespace_around_the_body_survives_for_re_verification() {
        let secrets =
            SecretSet::new(vec![SigningSecret::from_key_bytes(b"unit-test-key")]).unwrap();
        let json = r#"{"type":"whale_alert","timestamp":"2026-02-18T23:00:00Z"}"#;
        for body in [
            format!("{json}\n"),
            format!(" \r\n{json}"),
            format!("\t{json} \r\n"),
        ] {
            let v = verified(Provider::Rekko, &[], &body);
            let message = queue_message(&parse(&v).unwrap(), received());
            let signature = message.attribute("signature").unwrap();
            let envelope = Envelope::from_json(&message.body).unwrap();
            assert_eq!(envelope.data.get(), json);
            assert_eq!(envelope.signed_data(), body);
            assert!(
                envelope.verify_signature(signature, &secrets).is_ok(),
                "{body:?}"
            );
        }
        // Without surrounding whitespace nothing extra is kept.
        let v = verified(Provider::Rekko, &[], json);
        let envelope =
            Envelope::from_json(&queue_message(&parse(&v).unwrap(), received()).body).unwrap();
        assert_eq!(envelope.signed_data(), json);
        assert!(envelope.signed_data.is_none());
    }

    #[test]
    fn unknown_versions_are_refused() {
        let v = verified(
            Provider::Rekko,
            &[],
            r#"{"type":"x","timestamp":"2026-02-18T23:00:00Z"}"#,
        );
        let body = queue_message(&parse(&v).unwrap(), received())
            .body
            .replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            Envelope::from_json(&body),
            Err(DecodeError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn consumers_can_re_verify_data() {
        let v = verified(
            Provider::Standard,
            &[("webhook-id", "msg_1"), ("webhook-timestamp", "1771455600")],
            r#"{"type":"a.b"}"#,
        );
        let message = queue_message(&parse(&v).unwrap(), received());
        let signature = message.attribute("signature").unwrap();
        let envelope = Envelope::from_json(&message.body).unwrap();
        let right = SecretSet::new(vec![SigningSecret::from_key_bytes(b"unit-test-key")]).unwrap();
        let wrong = SecretSet::new(vec![SigningSecret::from_key_bytes(b"another-key")]).unwrap();
        assert!(envelope.verify_signature(signature, &right).is_ok());
        assert!(envelope.verify_signature(signature, &wrong).is_err());
    }

    #[test]
    fn received_at_is_utc_with_milliseconds() {
        let offset = received().to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(rfc3339_millis(offset), "2026-02-18T23:00:01.250Z");
        assert_eq!(
            rfc3339_millis(OffsetDateTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn stream_events_are_enveloped_unsigned_with_the_frame_verbatim() {
        use crate::providers::{HeisenbergMessage, parse_heisenberg_frame};
        let frame = crate::events::tests::POLYMARKET_TRADE;
        let HeisenbergMessage::Event(event) = parse_heisenberg_frame(frame.to_owned()).unwrap()
        else {
            panic!("not an event")
        };
        let message = stream_queue_message(&event, received());
        let envelope = Envelope::from_json(&message.body).unwrap();
        assert_eq!(envelope.data.get(), frame);
        assert_eq!(
            (envelope.provider.as_str(), envelope.via),
            ("heisenberg", Via::Stream)
        );
        assert_eq!(envelope.event_type, "polymarket.trade");
        assert_eq!(envelope.id, "heisenberg:0x8902f2…498832_0x31ba8c…a5aa09");
        assert_eq!(
            envelope.market_id.as_deref(),
            Some("btc-updown-5m-1779889800")
        );
        assert_eq!(
            (envelope.sequence, envelope.delivery_id.as_deref()),
            (None, None)
        );
        assert!(matches!(
            envelope.event().unwrap(),
            Event::Heisenberg(crate::events::HeisenbergEvent::PolymarketTrade(_))
        ));
        assert_eq!(message.attribute("signature"), None);
        assert_eq!(message.attribute("provider"), Some("heisenberg"));
        assert_eq!(message.group_id, "btc-updown-5m-1779889800");
        // The id has non-ASCII characters (the seed's abbreviations), so it is hashed for SQS.
        assert!(message.deduplication_id.starts_with("heisenberg:sha256:"));
    }

    #[test]
    fn envelopes_without_via_are_webhooks() {
        let v = verified(Provider::Engine, &[], ENGINE_BODY);
        let body = queue_message(&parse(&v).unwrap(), received())
            .body
            .replace(r#""via":"webhook","#, "");
        assert_eq!(Envelope::from_json(&body).unwrap().via, Via::Webhook);
    }
}
