//! Standard Webhooks senders (Svix and others): `webhook-id`, `webhook-timestamp` (Unix seconds)
//! and `webhook-signature` headers; the body is the sender's JSON, conventionally
//! `{"type": .., "timestamp": .., "data": ..}`.
//!
//! Dedupe key: `standard:{webhook-id}`, which the spec keeps identical across retries. The event
//! type is the body's `type` when present, else `unknown`. The signed header timestamp is the one
//! checked against the replay window.

use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use hookrelay::senders::STANDARD;
use hookrelay::signature::{SignedRequest, Verified, standard_headers};

use crate::dedupe::DedupeKey;
use crate::routed::{
    ParseError, RoutedEvent, SenderTimestamp, WebhookFields, raw_fields, text, webhook_body,
};

/// The event type recorded when the body carries none.
pub const UNKNOWN_TYPE: &str = "unknown";

#[derive(Deserialize)]
struct StandardRoutingFields<'b> {
    #[serde(borrow, default, rename = "type")]
    event_type: Option<&'b RawValue>,
}

/// Routes a verified Standard Webhooks delivery.
pub fn route(verified: &Verified<SignedRequest>) -> Result<RoutedEvent<'_>, ParseError> {
    let body = webhook_body(verified)?;
    let headers = &verified.get().headers;
    let raw: StandardRoutingFields = raw_fields(body)?;
    let event_type = text("type", raw.event_type)?.unwrap_or_else(|| UNKNOWN_TYPE.to_owned());
    // Both headers were read during verification; read failures here are impossible in practice
    // but are still answered as malformed rather than assumed away.
    let id = headers
        .get(standard_headers::ID)
        .map_err(|_| ParseError::InvalidHeader {
            header: standard_headers::ID,
            expected: "one visible-ASCII value",
        })?;
    let timestamp = headers.get(standard_headers::TIMESTAMP).unwrap_or_default();
    let instant = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .ok_or(ParseError::InvalidHeader {
            header: standard_headers::TIMESTAMP,
            expected: "integer Unix seconds",
        })?;
    let fields = WebhookFields {
        event_type,
        dedupe_key: DedupeKey::new(STANDARD.name, &[id]),
        market_id: None,
        sequence: None,
        delivery_id: Some(id.to_owned()),
        occurred_at: SenderTimestamp {
            as_sent: timestamp.to_owned(),
            instant,
        },
    };
    RoutedEvent::webhook(STANDARD, verified, body, fields)
}

#[cfg(test)]
mod tests {
    use crate::routed::test_support::verified;
    use hookrelay::senders::STANDARD;

    use crate::routed::ParseError;

    fn headers(ts: &str) -> [(&'static str, &str); 2] {
        [("webhook-id", "msg_2b6hJ"), ("webhook-timestamp", ts)]
    }

    #[test]
    fn reads_id_timestamp_and_type() {
        let body = r#"{"type":"invoice.paid","timestamp":"2026-02-18T23:00:00Z","data":{"n":1}}"#;
        let v = verified(STANDARD, &headers("1771455600"), body);
        let p = v.parse().unwrap();
        assert_eq!(p.event_type(), "invoice.paid");
        assert_eq!(p.dedupe_key().as_str(), "standard:msg_2b6hJ");
        assert_eq!(p.delivery_id(), Some("msg_2b6hJ"));
        assert_eq!(p.occurred_at().unwrap(), "1771455600");
        assert_eq!(p.signed_at().unwrap().unix_timestamp(), 1_771_455_600);
        assert_eq!(p.market_id(), None);
    }

    #[test]
    fn a_body_without_type_is_unknown() {
        let v = verified(STANDARD, &headers("1771455600"), r#"{"data":{}}"#);
        assert_eq!(v.parse().unwrap().event_type(), "unknown");
    }

    #[test]
    fn the_timestamp_header_must_be_unix_seconds() {
        for ts in ["2026-02-18T23:00:00Z", "1.5", "-", "99999999999999999999"] {
            let v = verified(STANDARD, &headers(ts), "{}");
            assert!(
                matches!(
                    v.parse(),
                    Err(ParseError::InvalidHeader {
                        header: "webhook-timestamp",
                        ..
                    })
                ),
                "{ts}"
            );
        }
    }
}
