//! Standard Webhooks senders (Svix and others): `webhook-id`, `webhook-timestamp` (Unix seconds)
//! and `webhook-signature` headers, or Svix's default names for them (`svix-id`,
//! `svix-timestamp`, `svix-signature`): whichever family verification chose. The body is the
//! sender's JSON, conventionally `{"type": .., "timestamp": .., "data": ..}`.
//!
//! The timestamp is integer Unix seconds as an `i64` parses them: an optional `+` or `-` and
//! leading zeros are accepted (`+1796153378`, `01796153378`), as the official Python libraries
//! accept them too; the signature covers the exact text, which the envelope keeps as sent.
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
use crate::event::{DigestScope, ParseError, RoutedEvent, SenderTimestamp, WebhookFields};
use crate::fields::{raw_fields, text, webhook_body};

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
    // The family verification used (`webhook-*` or `svix-*`): the id and timestamp it signed. A
    // delivery verified by another scheme has none, and its headers are not signed: refuse.
    let names = verified.standard_names().ok_or(ParseError::InvalidHeader {
        header: standard_headers::ID,
        expected: "part of a Standard Webhooks signature",
    })?;
    let raw: StandardRoutingFields = raw_fields(body)?;
    let event_type = text("type", raw.event_type)?.unwrap_or_else(|| UNKNOWN_TYPE.to_owned());
    // Both headers were read during verification; read failures here are impossible in practice
    // but are still answered as malformed rather than assumed away.
    let id = headers
        .get(names.id)
        .map_err(|_| ParseError::InvalidHeader {
            header: names.id,
            expected: "one visible-ASCII value",
        })?;
    let timestamp = headers.get(names.timestamp).unwrap_or_default();
    let instant = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .ok_or(ParseError::InvalidHeader {
            header: names.timestamp,
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
        digest_scope: DigestScope::Body,
        sequence_operator: None,
    };
    RoutedEvent::webhook(STANDARD, verified, body, fields)
}

#[cfg(test)]
mod tests {
    use crate::event::test_support::verified;
    use hookrelay::senders::STANDARD;

    use crate::event::ParseError;

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

    #[test]
    fn a_sign_or_leading_zeros_in_the_timestamp_are_still_unix_seconds() {
        for ts in ["+1771455600", "01771455600", "1771455600"] {
            let v = verified(STANDARD, &headers(ts), "{}");
            let p = v.parse().unwrap();
            assert_eq!(
                p.signed_at().unwrap().unix_timestamp(),
                1_771_455_600,
                "{ts}"
            );
            assert_eq!(p.occurred_at(), Some(ts), "kept as sent");
        }
    }

    #[test]
    fn svix_header_names_route_exactly_as_the_spec_names_do() {
        use hookrelay::signature::{SecretSet, SignedRequest, SigningSecret, verify};
        let secret = SigningSecret::from_key_bytes(b"unit-test-key");
        let secrets = SecretSet::new(vec![secret.clone()]).unwrap();
        let route = |ts: &str| {
            let body = br#"{"type":"invoice.paid"}"#;
            let headers = STANDARD
                .scheme
                .sign(&secret, Some(("msg_svix", ts)), body)
                .into_iter()
                .map(|(name, value)| (name.replace("webhook-", "svix-"), value))
                .collect();
            let request = SignedRequest {
                headers,
                body: body.to_vec(),
            };
            let verified = verify(STANDARD.scheme, &secrets, request).unwrap();
            super::route(&verified).map(|e| {
                (
                    e.dedupe_key().as_str().to_owned(),
                    e.delivery_id().map(str::to_owned),
                    e.occurred_at().map(str::to_owned),
                )
            })
        };
        assert_eq!(
            route("1771455600"),
            Ok((
                "standard:msg_svix".to_owned(),
                Some("msg_svix".to_owned()),
                Some("1771455600".to_owned())
            ))
        );
        assert_eq!(
            route("yesterday"),
            Err(ParseError::InvalidHeader {
                header: "svix-timestamp",
                expected: "integer Unix seconds",
            })
        );
    }
}
