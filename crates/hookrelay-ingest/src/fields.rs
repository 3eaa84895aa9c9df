//! The readers every provider's routing uses: each routing field captured as raw JSON, then typed
//! one by one, so an error names the field without echoing its value, while the whole body is
//! checked to be one well-formed JSON object. The body itself is never re-serialised: the
//! envelope copies it. Pure.

use hookrelay::signature::{SignedRequest, Verified};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dedupe::DedupeKey;
use crate::event::{ParseError, SenderTimestamp};
use crate::queue::can_carry_text;

/// The verified body as text: webhook bodies must be UTF-8 JSON.
pub fn webhook_body(verified: &Verified<SignedRequest>) -> Result<&str, ParseError> {
    std::str::from_utf8(&verified.get().body).map_err(|_| ParseError::NotUtf8)
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
