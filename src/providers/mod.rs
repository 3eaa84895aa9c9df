//! The senders hookrelay accepts: which path routes to each, how each signs, and how each one's
//! routing fields (type, identity, market, timestamp) are read from a verified delivery; and the
//! same for the events `hookrelay-bridge` reads from the providers' long-lived streams.
//! Pure: no I/O. One submodule per sender holds its field names and dedupe key.
//!
//! Parsing reads only the routing fields (each captured as raw JSON, then typed one by one so an
//! error names the field without echoing its value) while checking that the whole body is one
//! well-formed JSON object. The body itself is never re-serialised: the envelope copies it.

mod engine;
mod heisenberg;
mod rekko;
mod standard;

pub use heisenberg::{ControlFrame, HeisenbergMessage, parse_heisenberg_frame};

use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dedupe::DedupeKey;
use crate::delivery::Delivery;
use crate::queue;
use crate::verify::{Scheme, Verified};

/// A webhook sender, chosen by the Function URL path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// The prediction-engine operator API (`POST /engine`).
    Engine,
    /// Rekko (`POST /rekko`).
    Rekko,
    /// Any sender following the Standard Webhooks spec, e.g. Svix (`POST /standard`).
    Standard,
}

impl Provider {
    /// Every sender, in route order.
    pub const ALL: [Provider; 3] = [Provider::Engine, Provider::Rekko, Provider::Standard];

    /// The sender whose route is `path` (a trailing `/` is tolerated).
    pub fn from_path(path: &str) -> Option<Self> {
        match path.strip_suffix('/').unwrap_or(path) {
            "/engine" => Some(Self::Engine),
            "/rekko" => Some(Self::Rekko),
            "/standard" => Some(Self::Standard),
            _ => None,
        }
    }

    /// The sender named `name` (an envelope's `provider`), if this crate knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The name used in routes, envelopes, attributes and dedupe keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Engine => "engine",
            Self::Rekko => "rekko",
            Self::Standard => "standard",
        }
    }

    /// How this sender signs.
    pub fn scheme(self) -> Scheme {
        match self {
            Self::Engine => Scheme::HexBodyHmac {
                header: engine::SIGNATURE_HEADER,
                tag: "sha256=",
            },
            Self::Rekko => Scheme::HexBodyHmac {
                header: rekko::SIGNATURE_HEADER,
                tag: "",
            },
            Self::Standard => Scheme::StandardWebhooks,
        }
    }

    fn signature_header(self) -> &'static str {
        match self.scheme() {
            Scheme::HexBodyHmac { header, .. } => header,
            Scheme::StandardWebhooks => crate::verify::standard_headers::SIGNATURE,
        }
    }
}

/// A sender's timestamp: the text as sent and the instant it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderTimestamp {
    /// Exactly as the sender wrote it (RFC 3339 for engine and Rekko, Unix seconds for Standard).
    pub as_sent: String,
    /// The instant, for the replay-window check.
    pub instant: OffsetDateTime,
}

/// The routing facts of a verified delivery, borrowing its body and signature.
#[derive(Debug)]
pub struct ParsedDelivery<'v> {
    /// Who sent it.
    pub provider: Provider,
    /// The sender's event type (`unknown` for a Standard Webhooks body without `type`).
    pub event_type: String,
    /// The event's identity for deduplication.
    pub dedupe_key: DedupeKey,
    /// The market the event concerns, when the sender names one.
    pub market_id: Option<String>,
    /// The sender's sequence number (engine only).
    pub sequence: Option<u64>,
    /// The sender's delivery id, when it gives one.
    pub delivery_id: Option<String>,
    /// The signed timestamp the replay window is checked against.
    pub occurred_at: SenderTimestamp,
    /// The signature header value as received.
    pub signature: &'v str,
    /// The verified body: UTF-8 JSON, byte for byte as received.
    pub body: &'v str,
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
}

/// Reads the routing fields of a verified delivery.
pub fn parse(verified: &Verified<Delivery>) -> Result<ParsedDelivery<'_>, ParseError> {
    let delivery = verified.get();
    let body = std::str::from_utf8(&delivery.body).map_err(|_| ParseError::NotUtf8)?;
    // Only checked on the verified path; these signature headers were just read successfully.
    let signature = delivery
        .header(delivery.provider.signature_header())
        .unwrap_or_default();
    let fields = match delivery.provider {
        Provider::Engine => engine::routing_fields(delivery, body)?,
        Provider::Rekko => rekko::routing_fields(body)?,
        Provider::Standard => standard::routing_fields(delivery, body)?,
    };
    if !queue::can_carry_body(body) {
        return Err(ParseError::NotQueueSafe);
    }
    Ok(ParsedDelivery {
        provider: delivery.provider,
        event_type: fields.event_type,
        dedupe_key: fields.dedupe_key,
        market_id: fields.market_id,
        sequence: fields.sequence,
        delivery_id: fields.delivery_id,
        occurred_at: fields.occurred_at,
        signature,
        body,
    })
}

/// A provider's long-lived stream, which `hookrelay-bridge` reads into the queue.
///
/// Stream events carry no per-message signature: they are authentic because they arrive over a
/// TLS connection the bridge opened to the provider and authenticated with its API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamSource {
    /// Heisenberg's WebSocket gateway (seed 003).
    Heisenberg,
    /// Rekko's SSE feed, `GET /v1/stream` (seed 000).
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

/// An event read from a stream, routed and ready for the envelope. Only this module's stream
/// parsers make one (its fields are read through accessors), so like `Verified<Delivery>` for
/// webhooks, the envelope can only be built from text a stream delivered and the parser routed.
/// Owns its text: it outlives the read buffer while it waits in the bridge's send buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    source: StreamSource,
    event_type: String,
    dedupe_key: DedupeKey,
    market_id: Option<String>,
    occurred_at: Option<String>,
    body: String,
}

impl StreamEvent {
    fn new(
        source: StreamSource,
        event_type: String,
        dedupe_key: DedupeKey,
        market_id: Option<String>,
        occurred_at: Option<String>,
        body: String,
    ) -> Result<Self, ParseError> {
        if !queue::can_carry_body(&body) {
            return Err(ParseError::NotQueueSafe);
        }
        Ok(Self {
            source,
            event_type,
            dedupe_key,
            market_id,
            occurred_at,
            body,
        })
    }

    /// Which stream.
    pub fn source(&self) -> StreamSource {
        self.source
    }

    /// The event type as sent.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The event's identity for deduplication.
    pub fn dedupe_key(&self) -> &DedupeKey {
        &self.dedupe_key
    }

    /// The market, when the event names one.
    pub fn market_id(&self) -> Option<&str> {
        self.market_id.as_deref()
    }

    /// The event's timestamp as sent, when it has one.
    pub fn occurred_at(&self) -> Option<&str> {
        self.occurred_at.as_deref()
    }

    /// The frame (Heisenberg) or event object (Rekko) exactly as received.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// A dedupe key for `provider` from content alone: the first 32 hex characters (128 bits) of the
/// SHA-256 of `content`, for events that carry no identity of their own.
fn content_key(provider: &str, content: &str) -> DedupeKey {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    DedupeKey::new(provider, &[&digest[..32]])
}

/// Routes one event object from Rekko's SSE feed: the same fields and content-derived dedupe key
/// as its webhooks (so an event is one key whichever way it came), except that `timestamp` is
/// optional, as the seed's stream examples don't show it.
pub fn parse_rekko_stream_event(event: String) -> Result<StreamEvent, ParseError> {
    let fields = rekko::stream_fields(&event)?;
    StreamEvent::new(
        StreamSource::Rekko,
        fields.event_type,
        fields.dedupe_key,
        fields.market_id,
        fields.occurred_at,
        event,
    )
}

/// What each sender's module extracts.
struct RoutingFields {
    event_type: String,
    dedupe_key: DedupeKey,
    market_id: Option<String>,
    sequence: Option<u64>,
    delivery_id: Option<String>,
    occurred_at: SenderTimestamp,
}

/// Deserializes the body into a struct of raw routing fields, mapping serde's errors to ones
/// that never quote the body.
fn raw_fields<'b, T: serde::Deserialize<'b>>(body: &'b str) -> Result<T, ParseError> {
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

fn text(field: &'static str, raw: Option<&RawValue>) -> Result<Option<String>, ParseError> {
    let Some(raw) = raw else { return Ok(None) };
    let value: String = serde_json::from_str(raw.get()).map_err(|_| ParseError::InvalidField {
        field,
        expected: "a string",
    })?;
    if !queue::can_carry_text(&value) {
        return Err(ParseError::InvalidField {
            field,
            expected: "text without control characters",
        });
    }
    Ok((!value.is_empty()).then_some(value))
}

fn required_text(field: &'static str, raw: Option<&RawValue>) -> Result<String, ParseError> {
    text(field, raw)?.ok_or(ParseError::MissingField(field))
}

fn required_sequence(field: &'static str, raw: Option<&RawValue>) -> Result<u64, ParseError> {
    let raw = raw.ok_or(ParseError::MissingField(field))?;
    serde_json::from_str(raw.get()).map_err(|_| ParseError::InvalidField {
        field,
        expected: "a non-negative integer",
    })
}

fn rfc3339_timestamp(
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
    use lambda_http::http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::secret::{SecretSet, SigningSecret};
    use crate::verify::verify;

    /// Builds a `Verified<Delivery>` the honest way: by signing and verifying it.
    pub fn verified(
        provider: Provider,
        headers: &[(&'static str, &str)],
        body: impl AsRef<[u8]>,
    ) -> Verified<Delivery> {
        use hmac::Mac;
        let body = body.as_ref();
        let key = b"unit-test-key";
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        let mut mac = SigningSecret::from_key_bytes(key).mac();
        let signature = match provider.scheme() {
            Scheme::HexBodyHmac { header, tag } => {
                mac.update(body);
                (
                    header,
                    format!("{tag}{}", hex::encode(mac.finalize().into_bytes())),
                )
            }
            Scheme::StandardWebhooks => {
                use base64::Engine as _;
                let id = map
                    .get("webhook-id")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let ts = map
                    .get("webhook-timestamp")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                mac.update(format!("{id}.{ts}.").as_bytes());
                mac.update(body);
                let b64 =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                ("webhook-signature", format!("v1,{b64}"))
            }
        };
        map.insert(signature.0, HeaderValue::from_str(&signature.1).unwrap());
        let secrets = SecretSet::new(vec![SigningSecret::from_key_bytes(key)]).unwrap();
        let delivery = Delivery {
            provider,
            headers: map,
            body: body.to_vec(),
        };
        verify(provider.scheme(), &secrets, delivery).expect("test delivery verifies")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::verified;
    use super::*;

    #[test]
    fn paths_route_to_senders() {
        assert_eq!(Provider::from_path("/engine"), Some(Provider::Engine));
        assert_eq!(Provider::from_path("/rekko/"), Some(Provider::Rekko));
        assert_eq!(Provider::from_path("/standard"), Some(Provider::Standard));
        for provider in Provider::ALL {
            assert_eq!(Provider::from_name(provider.as_str()), Some(provider));
        }
        assert_eq!(Provider::from_name("heisenberg"), None);
        for other in ["/", "", "/Engine", "/engine/x", "/engine//", "/webhook"] {
            assert_eq!(Provider::from_path(other), None, "{other}");
        }
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_malformed() {
        for (body, expected) in [
            ("not json", "not valid JSON"),
            ("{\"type\":\"x\"", "not valid JSON"),
            ("{} {}", "not valid JSON"),
            ("[1,2]", "must be a JSON object"),
            (
                r#"["price_shift", null, "2026-01-01T00:00:00Z"]"#,
                "must be a JSON object",
            ),
            ("  \n", "not valid JSON"),
            // JSON text must not start with a byte order mark (RFC 8259, section 8.1).
            (
                "\u{FEFF}{\"type\":\"x\",\"timestamp\":\"2026-01-01T00:00:00Z\"}",
                "not valid JSON",
            ),
            ("", "not valid JSON"),
            ("\"secret text\"", "must be a JSON object"),
            (
                r#"{"type":"a","type":"b","timestamp":"2026-01-01T00:00:00Z"}"#,
                "at most once",
            ),
        ] {
            let v = verified(Provider::Rekko, &[], body);
            let message = parse(&v).unwrap_err().to_string();
            assert!(message.contains(expected), "{body}: {message}");
            assert!(
                !message.contains("secret text"),
                "errors must not quote the body: {message}"
            );
        }
    }

    #[test]
    fn non_utf8_and_sqs_unsafe_bodies_are_malformed() {
        let ts = r#""timestamp":"2026-01-01T00:00:00Z""#;
        let not_utf8 = verified(
            Provider::Rekko,
            &[],
            [b"{\"type\":\"\xff\",".as_slice(), ts.as_bytes(), b"}"].concat(),
        );
        assert_eq!(parse(&not_utf8).unwrap_err(), ParseError::NotUtf8);

        let noncharacter = verified(
            Provider::Rekko,
            &[],
            format!("{{\"type\":\"x\",{ts},\"n\":\"\u{FFFF}\"}}"),
        );
        assert_eq!(parse(&noncharacter).unwrap_err(), ParseError::NotQueueSafe);

        let escaped_in_data = verified(
            Provider::Rekko,
            &[],
            format!(r#"{{"type":"x",{ts},"n":"\u0000ok"}}"#),
        );
        assert!(
            parse(&escaped_in_data).is_ok(),
            "escaped control characters inside data are carried as sent"
        );

        let control_in_type = verified(
            Provider::Rekko,
            &[],
            format!(r#"{{"type":"a\u0000",{ts}}}"#),
        );
        assert!(matches!(
            parse(&control_in_type),
            Err(ParseError::InvalidField { field: "type", .. })
        ));
    }
}
