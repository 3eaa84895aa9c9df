//! The prediction-engine operator API (docs/contract.md, "The senders"): `X-Webhook-Signature: sha256=<hex>` over the
//! body, and a delivery object with `id`, `sequence`, `eventType`, `marketId`, `operatorId`,
//! `payload` and an RFC 3339 `timestamp`.
//!
//! Dedupe key: `engine:{operatorId}:{sequence}` (`engine:{sequence}` without `operatorId`), as its
//! document says to deduplicate by `sequence`. The delivery id is the body's `id`, which the signature
//! covers; the unsigned `X-Webhook-Id` header is used only when the body has none.
//! `X-Webhook-Event` is unsigned and so never trusted: the type is the body's `eventType`.
//! Content digest (for the idempotency store): `eventType`, `marketId`, `timestamp` and the raw
//! `payload`, not `id`, so a retry under a new delivery id is still the same event.

use serde::Deserialize;
use serde_json::value::RawValue;

use hookrelay::senders::ENGINE;
use hookrelay::signature::{SignedRequest, Verified};

use crate::dedupe::DedupeKey;
use crate::event::{DigestScope, ParseError, RoutedEvent, WebhookFields};
use crate::fields::{
    raw_fields, required_sequence, required_text, rfc3339_timestamp, text, webhook_body,
};
use crate::queue::can_carry_text;

/// The unsigned delivery-id header, used when the body has no `id`.
pub const DELIVERY_ID_HEADER: &str = "x-webhook-id";

#[derive(Deserialize)]
struct EngineRoutingFields<'b> {
    #[serde(borrow, default)]
    id: Option<&'b RawValue>,
    #[serde(borrow, default)]
    sequence: Option<&'b RawValue>,
    #[serde(borrow, default, rename = "eventType")]
    event_type: Option<&'b RawValue>,
    #[serde(borrow, default, rename = "marketId")]
    market_id: Option<&'b RawValue>,
    #[serde(borrow, default, rename = "operatorId")]
    operator_id: Option<&'b RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'b RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'b RawValue>,
}

/// Routes a verified engine delivery.
pub fn route(verified: &Verified<SignedRequest>) -> Result<RoutedEvent<'_>, ParseError> {
    let body = webhook_body(verified)?;
    let raw: EngineRoutingFields = raw_fields(body)?;
    let event_type = required_text("eventType", raw.event_type)?;
    let sequence = required_sequence("sequence", raw.sequence)?;
    let occurred_at = rfc3339_timestamp("timestamp", raw.timestamp)?;
    let operator_id = text("operatorId", raw.operator_id)?;
    let market_id = text("marketId", raw.market_id)?;
    let delivery_id = match text("id", raw.id)? {
        Some(id) => Some(id),
        None => verified
            .get()
            .headers
            .get(DELIVERY_ID_HEADER)
            .ok()
            .filter(|id| can_carry_text(id))
            .map(str::to_owned),
    };
    let sequence_text = sequence.to_string();
    let dedupe_key = match &operator_id {
        Some(operator) => DedupeKey::new("engine", &[operator, &sequence_text]),
        None => DedupeKey::new("engine", &[&sequence_text]),
    };
    let fields = WebhookFields {
        event_type,
        dedupe_key,
        market_id,
        sequence: Some(sequence),
        delivery_id,
        occurred_at,
        // Neither the body's `id` nor `sequence`'s scope is promised stable across attempts
        // (docs/contract.md, "The senders"), so the digest is of what the event says, not of how it was delivered.
        digest_scope: DigestScope::of_parts(
            body,
            &[raw.event_type, raw.market_id, raw.timestamp, raw.payload],
        ),
        sequence_operator: Some(operator_id.clone().unwrap_or_default()),
    };
    RoutedEvent::webhook(ENGINE, verified, body, fields)
}

#[cfg(test)]
mod tests {
    use crate::event::test_support::verified;
    use hookrelay::senders::ENGINE;

    use crate::event::ParseError;

    const SEED_EXAMPLE: &str = r#"{"id":"delivery-uuid","sequence":42,"eventType":"ORDER_MATCHED","marketId":"market-uuid","operatorId":"operator-uuid","payload":{"orderId":"order-uuid","price":0.65,"timestamp":1708293600000},"timestamp":"2026-02-18T23:00:00.000Z"}"#;

    #[test]
    fn reads_the_seed_example() {
        let v = verified(ENGINE, &[("x-webhook-id", "header-id")], SEED_EXAMPLE);
        let p = v.parse().unwrap();
        assert_eq!(p.event_type(), "ORDER_MATCHED");
        assert_eq!(p.dedupe_key().as_str(), "engine:operator-uuid:42");
        assert_eq!(p.market_id(), Some("market-uuid"));
        assert_eq!(p.sequence(), Some(42));
        assert_eq!(
            p.delivery_id(),
            Some("delivery-uuid"),
            "the signed body id wins"
        );
        assert_eq!(p.occurred_at().unwrap(), "2026-02-18T23:00:00.000Z");
        assert_eq!(p.signed_at().unwrap().unix_timestamp(), 1_771_455_600);
        assert!(p.signature().unwrap().starts_with("sha256="));
        assert_eq!(p.body(), SEED_EXAMPLE);
    }

    #[test]
    fn the_content_digest_ignores_the_delivery_id_and_nothing_the_event_says() {
        let digest = |body: &str| {
            verified(ENGINE, &[], body)
                .parse()
                .unwrap()
                .content_digest()
        };
        let original = digest(SEED_EXAMPLE);
        // A retry under a new delivery id is the same event.
        let new_id = SEED_EXAMPLE.replace("delivery-uuid", "another-delivery");
        assert_eq!(digest(&new_id), original);
        // Anything the event says makes it another one.
        for (from, to) in [
            ("ORDER_MATCHED", "ORDER_CANCELLED"),
            ("\"marketId\":\"market-uuid\"", "\"marketId\":\"market-2\""),
            ("\"price\":0.65", "\"price\":0.66"),
            ("23:00:00.000Z", "23:00:01.000Z"),
        ] {
            let changed = SEED_EXAMPLE.replace(from, to);
            assert_ne!(changed, SEED_EXAMPLE);
            assert_ne!(digest(&changed), original, "{from} -> {to}");
        }
        // An absent market differs from any market.
        let no_market = SEED_EXAMPLE.replace("\"marketId\":\"market-uuid\",", "");
        assert_ne!(digest(&no_market), original);
    }

    #[test]
    fn without_operator_or_body_id_falls_back() {
        let body =
            r#"{"sequence":7,"eventType":"MARKET_CREATED","timestamp":"2026-02-18T23:00:00Z"}"#;
        let v = verified(ENGINE, &[("X-Webhook-Id", "hdr-7")], body);
        let p = v.parse().unwrap();
        assert_eq!(p.dedupe_key().as_str(), "engine:7");
        assert_eq!(p.delivery_id(), Some("hdr-7"));
        assert_eq!(p.market_id(), None);
    }

    #[test]
    fn unknown_event_types_are_routed_not_rejected() {
        let body =
            r#"{"sequence":8,"eventType":"SOMETHING_NEW","timestamp":"2026-02-18T23:00:00Z"}"#;
        assert_eq!(
            verified(ENGINE, &[], body).parse().unwrap().event_type(),
            "SOMETHING_NEW"
        );
    }

    #[test]
    fn routing_fields_must_be_present_and_well_typed() {
        let ts = r#""timestamp":"2026-02-18T23:00:00Z""#;
        for (body, expected) in [
            (
                format!(r#"{{"sequence":1,{ts}}}"#),
                ParseError::MissingField("eventType"),
            ),
            (
                format!(r#"{{"eventType":"A",{ts}}}"#),
                ParseError::MissingField("sequence"),
            ),
            (
                format!(r#"{{"eventType":"A","sequence":null,{ts}}}"#),
                ParseError::MissingField("sequence"),
            ),
            (
                r#"{"eventType":"A","sequence":1}"#.to_owned(),
                ParseError::MissingField("timestamp"),
            ),
            (
                format!(r#"{{"eventType":7,"sequence":1,{ts}}}"#),
                ParseError::InvalidField {
                    field: "eventType",
                    expected: "a string",
                },
            ),
            (
                format!(r#"{{"eventType":"A","sequence":"1",{ts}}}"#),
                ParseError::InvalidField {
                    field: "sequence",
                    expected: "a non-negative integer",
                },
            ),
            (
                format!(r#"{{"eventType":"A","sequence":-1,{ts}}}"#),
                ParseError::InvalidField {
                    field: "sequence",
                    expected: "a non-negative integer",
                },
            ),
            (
                format!(r#"{{"eventType":"A","sequence":1.5,{ts}}}"#),
                ParseError::InvalidField {
                    field: "sequence",
                    expected: "a non-negative integer",
                },
            ),
            (
                r#"{"eventType":"A","sequence":1,"timestamp":1708293600000}"#.to_owned(),
                ParseError::InvalidField {
                    field: "timestamp",
                    expected: "a string",
                },
            ),
            (
                r#"{"eventType":"A","sequence":1,"timestamp":"yesterday"}"#.to_owned(),
                ParseError::InvalidField {
                    field: "timestamp",
                    expected: "an RFC 3339 timestamp",
                },
            ),
            (
                format!(r#"{{"eventType":"A","sequence":1,"marketId":{{}},{ts}}}"#),
                ParseError::InvalidField {
                    field: "marketId",
                    expected: "a string",
                },
            ),
        ] {
            assert_eq!(
                verified(ENGINE, &[], &body).parse().unwrap_err(),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let body = r#"{"sequence":9,"eventType":"A","marketId":null,"operatorId":null,"id":null,"timestamp":"2026-02-18T23:00:00Z"}"#;
        let v = verified(ENGINE, &[], body);
        let p = v.parse().unwrap();
        assert_eq!(p.market_id(), None);
        assert_eq!(p.delivery_id(), None);
        assert_eq!(
            p.dedupe_key().as_str(),
            "engine:9",
            "no operator: the sequence alone"
        );
    }

    #[test]
    fn a_header_delivery_id_that_is_not_visible_ascii_is_ignored() {
        // The header is unsigned and only a fallback for a body without `id`; a value that is
        // not visible ASCII (here UTF-8 text) is dropped rather than refusing the event.
        let body = r#"{"sequence":10,"eventType":"A","timestamp":"2026-02-18T23:00:00Z"}"#;
        let v = verified(ENGINE, &[("x-webhook-id", "hdr-é")], body);
        assert_eq!(v.parse().unwrap().delivery_id(), None);
        let v = verified(ENGINE, &[("x-webhook-id", "hdr-10")], body);
        assert_eq!(v.parse().unwrap().delivery_id(), Some("hdr-10"));
    }

    #[test]
    fn the_signature_attribute_is_the_verified_value_trimmed() {
        use hookrelay::signature::{SecretSet, SignedRequest, SigningSecret, verify};
        let body = br#"{"sequence":11,"eventType":"A","timestamp":"2026-02-18T23:00:00Z"}"#;
        let secret = SigningSecret::from_key_bytes(b"unit-test-key");
        let (name, value) = ENGINE.scheme.sign(&secret, None, body).remove(0);
        let request = SignedRequest {
            headers: [(name, format!("  {value}\t"))].into_iter().collect(),
            body: body.to_vec(),
        };
        let secrets = SecretSet::new(vec![secret]).unwrap();
        let verified = verify(ENGINE.scheme, &secrets, request).unwrap();
        let event = super::route(&verified).unwrap();
        assert_eq!(event.signature(), Some(value.as_str()));
        let message = event.queue_message(
            time::OffsetDateTime::UNIX_EPOCH,
            &crate::event::test_support::signer(),
        );
        assert_eq!(message.attribute("signature"), Some(value.as_str()));
    }
}
