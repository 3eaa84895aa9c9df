//! Heisenberg's WebSocket gateway (seed 003), read by `hookrelay-bridge`: which frames are
//! control messages (`action`: `subscribed`, `unsubscribed`, `error`, `rate_limit`, ...) and which
//! are data events (`type` and a `data` object), and the routing fields of an event.
//!
//! Dedupe key: `heisenberg:{data.id}` (a trade's id is `{transaction_hash}_{order_hash}`, the
//! same however often the gateway delivers it). An event type without `data.id` is keyed by
//! content, `heisenberg:{first 32 hex chars of SHA-256(data)}`: `data` and not the whole frame,
//! because the frame's `timestamp` is the delivery time and differs on a redelivery.
//! Market: `data.slug`. Occurred at: `data.timestamp` (when the trade executed), else the frame's.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ParseError, StreamEvent, StreamSource, content_key, raw_fields, required_text, text};
use crate::dedupe::DedupeKey;

/// What one text frame from the gateway is.
#[derive(Debug)]
pub enum HeisenbergMessage {
    /// A control message.
    Control(ControlFrame),
    /// A data event, routed and ready for the envelope.
    Event(StreamEvent),
}

/// A control message from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlFrame {
    /// The subscriptions were granted; keep the ids (they are what `unsubscribe` takes).
    Subscribed {
        /// The granted event types.
        types: Vec<String>,
        /// One id per granted subscription.
        subscription_ids: Vec<String>,
    },
    /// Subscriptions were stopped.
    Unsubscribed {
        /// Their ids.
        subscription_ids: Vec<String>,
    },
    /// The gateway refused something (an unauthorized type, a non-filterable key, ...).
    Error {
        /// The types it names.
        types: Vec<String>,
        /// Its human-readable message.
        message: String,
    },
    /// The plan's message rate was reached for this window; the connection stays open.
    RateLimit {
        /// Its human-readable message.
        message: String,
    },
    /// An action this version does not know (the seed's list ends with "…").
    Other {
        /// The action's name.
        action: String,
    },
}

#[derive(Deserialize)]
struct FrameFields<'b> {
    #[serde(borrow, default)]
    action: Option<&'b RawValue>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<&'b RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'b RawValue>,
    #[serde(borrow, default)]
    data: Option<&'b RawValue>,
}

#[derive(Deserialize)]
struct ControlFields {
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    subscriptions: Vec<GrantedSubscription>,
    #[serde(default)]
    subscription_ids: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct GrantedSubscription {
    id: String,
}

#[derive(Deserialize)]
struct EventDataFields<'b> {
    #[serde(borrow, default)]
    id: Option<&'b RawValue>,
    #[serde(borrow, default)]
    slug: Option<&'b RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'b RawValue>,
}

/// Classifies and routes one text frame. The frame is kept byte for byte as the event's body.
pub fn parse_heisenberg_frame(frame: String) -> Result<HeisenbergMessage, ParseError> {
    let raw: FrameFields = raw_fields(&frame)?;
    if let Some(action) = text("action", raw.action)? {
        let fields: ControlFields =
            serde_json::from_str(&frame).map_err(|_| ParseError::InvalidField {
                field: "subscriptions",
                expected: "the documented control-message shape",
            })?;
        let message = fields.message.unwrap_or_default();
        return Ok(HeisenbergMessage::Control(match action.as_str() {
            "subscribed" => ControlFrame::Subscribed {
                types: fields.types,
                subscription_ids: fields.subscriptions.into_iter().map(|s| s.id).collect(),
            },
            "unsubscribed" => ControlFrame::Unsubscribed {
                subscription_ids: fields.subscription_ids,
            },
            "error" => ControlFrame::Error {
                types: fields.types,
                message,
            },
            "rate_limit" => ControlFrame::RateLimit { message },
            _ => ControlFrame::Other { action },
        }));
    }
    let event_type = required_text("type", raw.event_type)?;
    let frame_timestamp = text("timestamp", raw.timestamp)?;
    let data = raw.data.ok_or(ParseError::MissingField("data"))?;
    let fields: EventDataFields = raw_fields(data.get()).map_err(|_| ParseError::InvalidField {
        field: "data",
        expected: "a JSON object",
    })?;
    let dedupe_key = match text("data.id", fields.id)? {
        Some(id) => DedupeKey::new(StreamSource::Heisenberg.provider(), &[&id]),
        None => content_key(StreamSource::Heisenberg.provider(), data.get()),
    };
    let market_id = text("data.slug", fields.slug)?;
    let occurred_at = text("data.timestamp", fields.timestamp)?.or(frame_timestamp);
    Ok(HeisenbergMessage::Event(StreamEvent::new(
        StreamSource::Heisenberg,
        event_type,
        dedupe_key,
        market_id,
        occurred_at,
        frame,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::tests::POLYMARKET_TRADE;

    fn event(frame: &str) -> StreamEvent {
        match parse_heisenberg_frame(frame.to_owned()).unwrap() {
            HeisenbergMessage::Event(event) => event,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn control(frame: &str) -> ControlFrame {
        match parse_heisenberg_frame(frame.to_owned()).unwrap() {
            HeisenbergMessage::Control(control) => control,
            other => panic!("not a control frame: {other:?}"),
        }
    }

    #[test]
    fn routes_the_seed_trade() {
        let e = event(POLYMARKET_TRADE);
        assert_eq!(e.source, StreamSource::Heisenberg);
        assert_eq!(e.event_type, "polymarket.trade");
        assert_eq!(
            e.dedupe_key.as_str(),
            "heisenberg:0x8902f2…498832_0x31ba8c…a5aa09"
        );
        assert_eq!(e.market_id.as_deref(), Some("btc-updown-5m-1779889800"));
        assert_eq!(e.occurred_at.as_deref(), Some("2026-05-27T13:49:52+00:00"));
        assert_eq!(e.body, POLYMARKET_TRADE, "the frame is kept byte for byte");
    }

    #[test]
    fn a_redelivered_frame_keeps_its_key() {
        let again = POLYMARKET_TRADE.replace("13:50:00.167247", "13:51:07.000001");
        assert_eq!(event(&again).dedupe_key, event(POLYMARKET_TRADE).dedupe_key);
        let without_id = r#"{"type":"x.new","timestamp":"2026-01-01T00:00:00Z","data":{"a":1}}"#;
        let redelivered = without_id.replace("00:00:00Z", "00:00:09Z");
        assert_eq!(event(without_id).dedupe_key, event(&redelivered).dedupe_key);
        assert!(
            event(without_id)
                .dedupe_key
                .as_str()
                .starts_with("heisenberg:")
        );
        assert_eq!(
            event(without_id).occurred_at.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn reads_the_seed_control_messages() {
        let subscribed = r#"{"action":"subscribed","types":["polymarket.trade"],"subscriptions":[{"id":"cede7755-c0a6-41b8-b316-ca4377dedb5d","type":"polymarket.trade","filters":{"slug":"sol-updown-15m-1779670800"}}]}"#;
        assert_eq!(
            control(subscribed),
            ControlFrame::Subscribed {
                types: vec!["polymarket.trade".into()],
                subscription_ids: vec!["cede7755-c0a6-41b8-b316-ca4377dedb5d".into()],
            }
        );
        let error = r#"{"action":"error","types":["polymarket.trade"],"message":"non-filterable keys for polymarket.trade: not_a_real_field"}"#;
        assert!(
            matches!(control(error), ControlFrame::Error { message, .. } if message.contains("not_a_real_field"))
        );
        let rate = r#"{"action":"rate_limit","message":"message rate limit reached"}"#;
        assert_eq!(
            control(rate),
            ControlFrame::RateLimit {
                message: "message rate limit reached".into()
            }
        );
        let unsubscribed = r#"{"action":"unsubscribed","subscription_ids":["a"]}"#;
        assert_eq!(
            control(unsubscribed),
            ControlFrame::Unsubscribed {
                subscription_ids: vec!["a".into()]
            }
        );
        assert_eq!(
            control(r#"{"action":"draining"}"#),
            ControlFrame::Other {
                action: "draining".into()
            }
        );
    }

    #[test]
    fn malformed_frames_name_the_problem() {
        for (frame, expected) in [
            ("not json", "not valid JSON"),
            (r#"{"timestamp":"t","data":{}}"#, "no `type` field"),
            (r#"{"type":"polymarket.trade"}"#, "no `data` field"),
            (r#"{"type":"polymarket.trade","data":[1]}"#, "`data` field"),
            (
                r#"{"type":"polymarket.trade","data":{"id":7}}"#,
                "`data.id`",
            ),
            (
                r#"{"action":"subscribed","subscriptions":"x"}"#,
                "control-message",
            ),
        ] {
            let error = parse_heisenberg_frame(frame.to_owned())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{frame}: {error}");
        }
    }
}
