//! Heisenberg's WebSocket gateway (docs/contract.md, "The senders"), read by `hookrelay-bridge`: which frames are
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

use crate::dedupe::DedupeKey;
use crate::event::ParseError;
use crate::fields::{content_key, raw_fields, required_text, text};
use crate::stream::{StreamEvent, StreamSource};

/// What one text frame from the gateway is.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per frame, moved straight into the buffer; boxing would allocate per event"
)]
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
    /// An action this version does not know (the provider's list ends with "…").
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
pub fn route_frame(frame: String) -> Result<HeisenbergMessage, ParseError> {
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
    // `data`'s place in the frame, to digest it alone once the frame has moved into the event:
    // the frame's `timestamp` is the delivery time, so a redelivery differs there and only there.
    let data_at = (data.get().as_ptr() as usize).saturating_sub(frame.as_ptr() as usize);
    let data_len = data.get().len();
    let event = StreamEvent::stream(
        StreamSource::Heisenberg,
        event_type,
        dedupe_key,
        market_id,
        occurred_at,
        frame,
    )?;
    Ok(HeisenbergMessage::Event(
        event.digesting_only(data_at..data_at + data_len),
    ))
}

#[cfg(test)]
mod tests {
    use crate::event::Origin;

    use super::*;
    const POLYMARKET_TRADE: &str = r#"{"type":"polymarket.trade","source":"polymarket-trade-scraper","timestamp":"2026-05-27T13:50:00.167247+00:00","data":{"id":"0x8902f2…498832_0x31ba8c…a5aa09","side":"BUY","size":11,"price":0.53,"timestamp":"2026-05-27T13:49:52+00:00","transaction_hash":"0x8902f299…d6d498832","order_hash":"0x31ba8c8c…454aa5aa09","block_number":87514326,"condition_id":"0x9ad19824…2d7f2d9","asset":"67025362…363793","title":"Bitcoin Up or Down - May 27, 9:50AM-9:55AM ET","slug":"btc-updown-5m-1779889800","event_slug":"btc-updown-5m","outcome":"Up","outcome_index":0,"icon":"https://polymarket-upload.s3…/BTC+fullsize.png","maker":"0x55338c…d1b8220","taker":"0x6833c0…1b5cfe1","proxy_wallet":"0x55338c…d1b8220","name":null,"pseudonym":null,"bio":null,"profile_image":null,"profile_image_optimized":null}}"#;

    fn event(frame: &str) -> StreamEvent {
        match route_frame(frame.to_owned()).unwrap() {
            HeisenbergMessage::Event(event) => event,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn control(frame: &str) -> ControlFrame {
        match route_frame(frame.to_owned()).unwrap() {
            HeisenbergMessage::Control(control) => control,
            other => panic!("not a control frame: {other:?}"),
        }
    }

    #[test]
    fn routes_the_seed_trade() {
        let e = event(POLYMARKET_TRADE);
        assert_eq!(e.origin(), Origin::Stream(StreamSource::Heisenberg));
        assert_eq!(e.event_type(), "polymarket.trade");
        assert_eq!(
            e.dedupe_key().as_str(),
            "heisenberg:0x8902f2…498832_0x31ba8c…a5aa09"
        );
        assert_eq!(e.market_id(), Some("btc-updown-5m-1779889800"));
        assert_eq!(e.occurred_at(), Some("2026-05-27T13:49:52+00:00"));
        assert_eq!(
            e.body(),
            POLYMARKET_TRADE,
            "the frame is kept byte for byte"
        );
    }

    #[test]
    fn a_redelivered_frame_keeps_its_key() {
        let again = POLYMARKET_TRADE.replace("13:50:00.167247", "13:51:07.000001");
        assert_eq!(
            event(&again).dedupe_key(),
            event(POLYMARKET_TRADE).dedupe_key()
        );
        // And its content: the same digest, so the dedupe layers call it a duplicate, not a
        // conflict under a new key; a change inside `data` is another event's content.
        assert_eq!(
            event(&again).content_digest(),
            event(POLYMARKET_TRADE).content_digest()
        );
        let other_price = POLYMARKET_TRADE.replace("\"price\":0.53", "\"price\":0.54");
        assert_ne!(
            event(&other_price).content_digest(),
            event(POLYMARKET_TRADE).content_digest()
        );
        let without_id = r#"{"type":"x.new","timestamp":"2026-01-01T00:00:00Z","data":{"a":1}}"#;
        let redelivered = without_id.replace("00:00:00Z", "00:00:09Z");
        assert_eq!(
            event(without_id).dedupe_key(),
            event(&redelivered).dedupe_key()
        );
        assert!(
            event(without_id)
                .dedupe_key()
                .as_str()
                .starts_with("heisenberg:")
        );
        assert_eq!(
            event(without_id).occurred_at(),
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
            let error = route_frame(frame.to_owned()).unwrap_err().to_string();
            assert!(error.contains(expected), "{frame}: {error}");
        }
    }

    #[test]
    fn stream_events_are_enveloped_unsigned_with_the_frame_verbatim() {
        use hookrelay::Envelope;
        use hookrelay::envelope::Via;
        use hookrelay::events::{Event, HeisenbergEvent};
        let frame = POLYMARKET_TRADE;
        let HeisenbergMessage::Event(event) = route_frame(frame.to_owned()).unwrap() else {
            panic!("not an event")
        };
        let received =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_771_455_601_250_999_000).unwrap();
        let signer =
            hookrelay::relay::RelaySigner::new(vec![hookrelay::relay::RelaySigningKey::from_seed(
                [22; 32],
            )])
            .unwrap();
        let message = event.queue_message(received, &signer);
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
            Event::Heisenberg(HeisenbergEvent::PolymarketTrade(_))
        ));
        assert_eq!(message.attribute("signature"), None);
        assert_eq!(message.attribute("provider"), Some("heisenberg"));
        assert_eq!(message.group_id, "heisenberg:btc-updown-5m-1779889800");
        // The id has non-ASCII characters (the provider's abbreviations), so it is hashed for SQS.
        assert!(message.deduplication_id.starts_with("heisenberg:sha256:"));
    }
}
