//! Rekko (docs/contract.md, "The senders"): `x-webhook-signature: <hex>` over the body, and a flat event object with
//! `type`, `market_id`, `platform`, the event's own fields and an RFC 3339 `timestamp`.
//!
//! Rekko sends no delivery id or sequence, so the dedupe key is the content itself:
//! `rekko:{first 32 hex chars of SHA-256(body)}`. A retry carries the same bytes, so it gets the
//! same key; two distinct events always differ somewhere (at least in `timestamp`).

use serde::Deserialize;
use serde_json::value::RawValue;

use hookrelay::senders::REKKO;
use hookrelay::signature::{SignedRequest, Verified};

use crate::event::{DigestScope, ParseError, RoutedEvent, WebhookFields};
use crate::fields::{
    content_key, raw_fields, required_text, rfc3339_timestamp, text, webhook_body,
};
use crate::stream::{StreamEvent, StreamSource};

#[derive(Deserialize)]
struct RekkoRoutingFields<'b> {
    #[serde(borrow, default, rename = "type")]
    event_type: Option<&'b RawValue>,
    #[serde(borrow, default)]
    market_id: Option<&'b RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'b RawValue>,
}

/// Routes a verified Rekko delivery.
pub fn route(verified: &Verified<SignedRequest>) -> Result<RoutedEvent<'_>, ParseError> {
    let body = webhook_body(verified)?;
    let raw: RekkoRoutingFields = raw_fields(body)?;
    let event_type = required_text("type", raw.event_type)?;
    let occurred_at = rfc3339_timestamp("timestamp", raw.timestamp)?;
    let market_id = text("market_id", raw.market_id)?;
    let dedupe_key = content_key(REKKO.name, body);
    let fields = WebhookFields {
        event_type,
        dedupe_key,
        market_id,
        sequence: None,
        delivery_id: None,
        occurred_at,
        digest_scope: DigestScope::Body,
        sequence_operator: None,
    };
    RoutedEvent::webhook(REKKO, verified, body, fields)
}

/// Routes one event object from Rekko's SSE feed: the same fields and content-derived dedupe key
/// as its webhooks (so an event is one key whichever way it came), except that `timestamp` is
/// optional, as the provider's stream examples don't show it.
pub fn route_stream_event(event: String) -> Result<StreamEvent, ParseError> {
    let raw: RekkoRoutingFields = raw_fields(&event)?;
    let occurred_at = match raw.timestamp {
        Some(timestamp) => Some(rfc3339_timestamp("timestamp", Some(timestamp))?.as_sent),
        None => None,
    };
    let event_type = required_text("type", raw.event_type)?;
    let dedupe_key = content_key(StreamSource::Rekko.provider(), &event);
    let market_id = text("market_id", raw.market_id)?;
    StreamEvent::stream(
        StreamSource::Rekko,
        event_type,
        dedupe_key,
        market_id,
        occurred_at,
        event,
    )
}

#[cfg(test)]
mod tests {
    use crate::event::test_support::verified;
    use hookrelay::senders::REKKO;

    use super::route_stream_event;
    use crate::event::{Origin, ParseError};
    use crate::stream::StreamSource;

    const SEED_EXAMPLE: &str = r#"{"type":"price_shift","market_id":"KXFED-26MAR19","platform":"kalshi","old_yes":0.62,"new_yes":0.68,"change_pct":9.7,"timestamp":"2026-03-21T14:30:00Z"}"#;

    #[test]
    fn reads_the_seed_example_and_keys_it_by_content() {
        let v = verified(REKKO, &[], SEED_EXAMPLE);
        let p = v.parse().unwrap();
        assert_eq!(p.event_type(), "price_shift");
        assert_eq!(p.market_id(), Some("KXFED-26MAR19"));
        assert_eq!(p.sequence(), None);
        assert_eq!(p.delivery_id(), None);
        assert_eq!(p.occurred_at().unwrap(), "2026-03-21T14:30:00Z");
        // sha256 of SEED_EXAMPLE, computed with `printf %s "$body" | sha256sum`.
        assert_eq!(
            p.dedupe_key().as_str(),
            "rekko:a3774ed3a247f974d7ddc9d3c1bfb761"
        );
    }

    #[test]
    fn type_and_timestamp_are_required() {
        let no_type = r#"{"market_id":"m","timestamp":"2026-03-21T14:30:00Z"}"#;
        assert_eq!(
            verified(REKKO, &[], no_type).parse().unwrap_err(),
            ParseError::MissingField("type")
        );
        let no_ts = r#"{"type":"whale_alert"}"#;
        assert_eq!(
            verified(REKKO, &[], no_ts).parse().unwrap_err(),
            ParseError::MissingField("timestamp")
        );
    }

    #[test]
    fn stream_events_share_the_webhook_key_and_may_omit_the_timestamp() {
        let streamed = route_stream_event(SEED_EXAMPLE.to_owned()).unwrap();
        let delivery = verified(REKKO, &[], SEED_EXAMPLE);
        let webhook = delivery.parse().unwrap();
        assert_eq!(streamed.dedupe_key(), webhook.dedupe_key());
        assert_eq!(streamed.origin(), Origin::Stream(StreamSource::Rekko));
        assert_eq!(streamed.occurred_at(), Some("2026-03-21T14:30:00Z"));
        let whale = r#"{"type":"whale_alert","market_id":"m","platform":"kalshi","side":"yes","flow":250000,"price":0.4}"#;
        let e = route_stream_event(whale.to_owned()).unwrap();
        assert_eq!((e.event_type(), e.occurred_at()), ("whale_alert", None));
        assert_eq!(e.body(), whale);
        let bad_time = r#"{"type":"price_shift","timestamp":"yesterday"}"#;
        assert!(matches!(
            route_stream_event(bad_time.to_owned()),
            Err(ParseError::InvalidField {
                field: "timestamp",
                ..
            })
        ));
    }
}
