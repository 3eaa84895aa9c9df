//! Signature schemes: which bytes each sender signs, how the tag is written, and the
//! constant-time check against every configured secret. No I/O, no parsing of the body.
//!
//! [`verify`] is the only way to obtain a [`Verified`] value, and parsing
//! ([`crate::providers::parse`]) only accepts a `Verified<Delivery>`, so an unverified body cannot
//! reach the queue without failing to compile.
//!
//! Schemes:
//! - engine: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(body)>`; the `sha256=` tag is exact
//!   (lowercase), the hex may be either case.
//! - Rekko: `x-webhook-signature: <hex HMAC-SHA256(body)>`, no tag.
//! - Standard Webhooks: `webhook-signature: v1,<base64> [v1,<base64> ...]` over
//!   `{webhook-id}.{webhook-timestamp}.{body}`; any listed `v1` signature may match, other
//!   versions (such as asymmetric `v1a`) are skipped.
//!
//! Timestamps are checked after parsing (see [`crate::pipeline`]), because two of the three
//! senders carry theirs inside the signed body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;
use subtle::ConstantTimeEq;

use crate::delivery::{Delivery, HeaderProblem};
use crate::secret::SecretSet;

/// A value whose signature has been checked. Only [`verify`] can build one.
#[derive(Debug)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    /// The verified value.
    pub fn get(&self) -> &T {
        &self.0
    }
}

/// How a sender signs its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Hex HMAC-SHA256 of the raw body in `header`, preceded by exactly `tag`.
    HexBodyHmac {
        /// Header carrying the signature.
        header: &'static str,
        /// Text before the hex digits (`"sha256="` for the engine, `""` for Rekko).
        tag: &'static str,
    },
    /// The Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
}

/// Standard Webhooks header names.
pub mod standard_headers {
    /// The delivery's unique id, part of the signed content.
    pub const ID: &str = "webhook-id";
    /// Unix seconds when the delivery was signed, part of the signed content.
    pub const TIMESTAMP: &str = "webhook-timestamp";
    /// Space-separated `version,signature` pairs.
    pub const SIGNATURE: &str = "webhook-signature";
}

/// Why a delivery failed verification. Messages never include a signature or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is absent or empty.
    #[error("the {header} header is missing")]
    MissingSignature {
        /// The header that was expected.
        header: &'static str,
    },
    /// A header that is part of the signed content is absent, so nothing can be checked.
    #[error("the {header} header is missing; it is part of the signed content")]
    MissingSignedHeader {
        /// The header that was expected.
        header: &'static str,
    },
    /// The signature is present but wrong, unreadable or ambiguous.
    #[error("{0}")]
    InvalidSignature(&'static str),
}

const SHA256_LEN: usize = 32;

/// Checks `delivery` against `scheme` with each of `secrets`; any one secret may have signed.
pub fn verify(
    scheme: Scheme,
    secrets: &SecretSet,
    delivery: Delivery,
) -> Result<Verified<Delivery>, VerifyError> {
    match scheme {
        Scheme::HexBodyHmac { header, tag } => verify_hex_body(header, tag, secrets, &delivery)?,
        Scheme::StandardWebhooks => verify_standard(secrets, &delivery)?,
    }
    Ok(Verified(delivery))
}

fn signature_header<'d>(
    delivery: &'d Delivery,
    header: &'static str,
) -> Result<&'d str, VerifyError> {
    delivery.header(header).map_err(|problem| match problem {
        HeaderProblem::Missing => VerifyError::MissingSignature { header },
        HeaderProblem::Repeated => {
            VerifyError::InvalidSignature("the signature header appears more than once")
        }
        HeaderProblem::NotText => {
            VerifyError::InvalidSignature("the signature header is not ASCII text")
        }
    })
}

fn verify_hex_body(
    header: &'static str,
    tag: &'static str,
    secrets: &SecretSet,
    delivery: &Delivery,
) -> Result<(), VerifyError> {
    let value = signature_header(delivery, header)?;
    let hex_digits = value
        .strip_prefix(tag)
        .ok_or(VerifyError::InvalidSignature(
            "the signature does not start with the expected scheme tag",
        ))?;
    let mut claimed = [0u8; SHA256_LEN];
    hex::decode_to_slice(hex_digits, &mut claimed).map_err(|_| {
        VerifyError::InvalidSignature("the signature is not the hex of a SHA-256 HMAC")
    })?;
    // Every secret is tried (no early exit), so timing does not reveal which one matched.
    let mut matched = subtle::Choice::from(0);
    for secret in secrets.iter() {
        let mut mac = secret.mac();
        mac.update(&delivery.body);
        matched |= mac.finalize().into_bytes().as_slice().ct_eq(&claimed);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature(
            "the signature does not match the body",
        ))
    }
}

fn verify_standard(secrets: &SecretSet, delivery: &Delivery) -> Result<(), VerifyError> {
    use standard_headers::{ID, SIGNATURE, TIMESTAMP};
    let signed_header = |header: &'static str| {
        delivery.header(header).map_err(|problem| match problem {
            HeaderProblem::Missing => VerifyError::MissingSignedHeader { header },
            HeaderProblem::Repeated | HeaderProblem::NotText => {
                VerifyError::InvalidSignature("a signed header is repeated or not ASCII text")
            }
        })
    };
    let signatures = signature_header(delivery, SIGNATURE)?;
    let id = signed_header(ID)?;
    let timestamp = signed_header(TIMESTAMP)?;

    let mut claimed = Vec::new();
    for entry in signatures.split_ascii_whitespace() {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        // A malformed entry can't match anything; skip it rather than fail the whole header,
        // as the spec lets senders list several signatures.
        if let Ok(bytes) = BASE64.decode(encoded) {
            claimed.push(bytes);
        }
    }
    if claimed.is_empty() {
        return Err(VerifyError::InvalidSignature(
            "the signature header has no readable v1 signature",
        ));
    }

    let mut matched = subtle::Choice::from(0);
    for secret in secrets.iter() {
        let mut mac = secret.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&delivery.body);
        let expected = mac.finalize().into_bytes();
        for candidate in &claimed {
            matched |= expected.as_slice().ct_eq(candidate);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature(
            "no v1 signature matches the signed content",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Provider;
    use crate::secret::SigningSecret;
    use lambda_http::http::{HeaderMap, HeaderValue};

    // Known-answer vectors computed outside Rust, with Python's `hmac` module exactly as the seed
    // documents do (`hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()`).
    const ENGINE_SECRET: &str = "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
    const ENGINE_BODY: &str = r#"{"id":"d-1","sequence":42,"eventType":"ORDER_MATCHED","timestamp":"2026-02-18T23:00:00.000Z"}"#;
    const ENGINE_SIGNATURE: &str =
        "sha256=4eb6a589aebe460dd7bad237536801745bc8a8b9bb2d44f36239485cdc9ad3fc";

    const REKKO_SECRET: &str = "your_hmac_secret_here";
    const REKKO_BODY: &str = r#"{"type":"price_shift","market_id":"KXFED-26MAR19","platform":"kalshi","old_yes":0.62,"new_yes":0.68,"change_pct":9.7,"timestamp":"2026-03-21T14:30:00Z"}"#;
    const REKKO_SIGNATURE: &str =
        "69749ad1df9eaf6e5439ceae790b552fd8e3534b865c92798a9b335c63eb2011";

    // The example published with the Standard Webhooks / Svix documentation (and re-computed
    // with Python's hmac/base64).
    const STANDARD_SECRET: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // base64, after `whsec_`
    const STANDARD_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const STANDARD_TIMESTAMP: &str = "1614265330";
    const STANDARD_BODY: &str = r#"{"test": 2432232314}"#;
    const STANDARD_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const ENGINE: Scheme = Scheme::HexBodyHmac {
        header: "x-webhook-signature",
        tag: "sha256=",
    };
    const REKKO: Scheme = Scheme::HexBodyHmac {
        header: "x-webhook-signature",
        tag: "",
    };

    fn secrets(keys: &[&[u8]]) -> SecretSet {
        SecretSet::new(
            keys.iter()
                .map(|k| SigningSecret::from_key_bytes(k))
                .collect(),
        )
        .unwrap()
    }

    fn standard_key() -> Vec<u8> {
        BASE64.decode(STANDARD_SECRET).unwrap()
    }

    fn delivery(headers: &[(&'static str, &str)], body: &[u8]) -> Delivery {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
        }
        Delivery {
            provider: Provider::Engine,
            headers: map,
            body: body.to_vec(),
        }
    }

    fn standard_delivery(signature: &str, body: &[u8]) -> Delivery {
        delivery(
            &[
                ("webhook-id", STANDARD_ID),
                ("webhook-timestamp", STANDARD_TIMESTAMP),
                ("webhook-signature", signature),
            ],
            body,
        )
    }

    #[test]
    fn known_answer_vectors_verify() {
        let engine = delivery(
            &[("X-Webhook-Signature", ENGINE_SIGNATURE)],
            ENGINE_BODY.as_bytes(),
        );
        assert!(verify(ENGINE, &secrets(&[ENGINE_SECRET.as_bytes()]), engine).is_ok());

        let rekko = delivery(
            &[("x-webhook-signature", REKKO_SIGNATURE)],
            REKKO_BODY.as_bytes(),
        );
        assert!(verify(REKKO, &secrets(&[REKKO_SECRET.as_bytes()]), rekko).is_ok());

        let standard = standard_delivery(STANDARD_SIGNATURE, STANDARD_BODY.as_bytes());
        assert!(
            verify(
                Scheme::StandardWebhooks,
                &secrets(&[&standard_key()]),
                standard
            )
            .is_ok()
        );
    }

    #[test]
    fn hex_may_be_either_case_but_the_tag_is_exact() {
        let upper = format!(
            "sha256={}",
            ENGINE_SIGNATURE["sha256=".len()..].to_ascii_uppercase()
        );
        let ok = delivery(&[("x-webhook-signature", &upper)], ENGINE_BODY.as_bytes());
        assert!(verify(ENGINE, &secrets(&[ENGINE_SECRET.as_bytes()]), ok).is_ok());

        for wrong_tag in [
            ENGINE_SIGNATURE.replacen("sha256=", "SHA256=", 1),
            ENGINE_SIGNATURE.replacen("sha256=", "sha512=", 1),
            ENGINE_SIGNATURE.replacen("sha256=", "", 1),
        ] {
            let d = delivery(
                &[("x-webhook-signature", &wrong_tag)],
                ENGINE_BODY.as_bytes(),
            );
            assert!(
                matches!(
                    verify(ENGINE, &secrets(&[ENGINE_SECRET.as_bytes()]), d),
                    Err(VerifyError::InvalidSignature(_))
                ),
                "{wrong_tag}"
            );
        }
    }

    #[test]
    fn every_single_byte_change_of_the_body_is_rejected() {
        let keys = secrets(&[ENGINE_SECRET.as_bytes()]);
        let body = ENGINE_BODY.as_bytes();
        for i in 0..body.len() {
            for delta in [1u8, 0x20, 0x80] {
                let mut changed = body.to_vec();
                changed[i] ^= delta;
                let d = delivery(&[("x-webhook-signature", ENGINE_SIGNATURE)], &changed);
                assert!(
                    verify(ENGINE, &keys, d).is_err(),
                    "byte {i} ^ {delta:#x} accepted"
                );
            }
        }
        // Truncation and extension too.
        for changed in [&body[..body.len() - 1], &[body, b" "].concat()[..]] {
            let d = delivery(&[("x-webhook-signature", ENGINE_SIGNATURE)], changed);
            assert!(verify(ENGINE, &keys, d).is_err());
        }
    }

    #[test]
    fn every_single_byte_change_of_the_signature_is_rejected() {
        let keys = secrets(&[REKKO_SECRET.as_bytes()]);
        let signature = REKKO_SIGNATURE.as_bytes();
        for i in 0..signature.len() {
            for replacement in b"0123456789abcdefABCDEFg ".iter().copied() {
                if replacement.eq_ignore_ascii_case(&signature[i]) {
                    continue;
                }
                let mut changed = signature.to_vec();
                changed[i] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                let d = delivery(&[("x-webhook-signature", &changed)], REKKO_BODY.as_bytes());
                assert!(
                    verify(REKKO, &keys, d).is_err(),
                    "signature byte {i} -> {replacement} accepted"
                );
            }
        }
    }

    #[test]
    fn every_single_byte_change_of_standard_content_is_rejected() {
        let keys = secrets(&[&standard_key()]);
        let body = STANDARD_BODY.as_bytes();
        for i in 0..body.len() {
            let mut changed = body.to_vec();
            changed[i] ^= 1;
            let d = standard_delivery(STANDARD_SIGNATURE, &changed);
            assert!(
                verify(Scheme::StandardWebhooks, &keys, d).is_err(),
                "body byte {i}"
            );
        }
        let mut other_id = standard_delivery(STANDARD_SIGNATURE, body);
        other_id.headers.insert(
            "webhook-id",
            HeaderValue::from_static("msg_p5jXN8AQM9LWM0D4loKWxJel"),
        );
        assert!(verify(Scheme::StandardWebhooks, &keys, other_id).is_err());
        let mut other_ts = standard_delivery(STANDARD_SIGNATURE, body);
        other_ts
            .headers
            .insert("webhook-timestamp", HeaderValue::from_static("1614265331"));
        assert!(verify(Scheme::StandardWebhooks, &keys, other_ts).is_err());
    }

    #[test]
    fn every_single_byte_change_of_a_standard_signature_is_rejected() {
        let keys = secrets(&[&standard_key()]);
        let signature = STANDARD_SIGNATURE.as_bytes();
        for i in 0..signature.len() {
            for replacement in b"AZaz09+/=, v".iter().copied() {
                if replacement == signature[i] {
                    continue;
                }
                let mut changed = signature.to_vec();
                changed[i] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                let d = standard_delivery(&changed, STANDARD_BODY.as_bytes());
                assert!(
                    verify(Scheme::StandardWebhooks, &keys, d).is_err(),
                    "signature byte {i} -> {} accepted",
                    replacement as char
                );
            }
        }
    }

    #[test]
    fn any_secret_of_a_rotation_may_sign() {
        let old = b"old-secret".as_slice();
        let new = ENGINE_SECRET.as_bytes();
        for keys in [secrets(&[old, new]), secrets(&[new, old]), secrets(&[new])] {
            let d = delivery(
                &[("x-webhook-signature", ENGINE_SIGNATURE)],
                ENGINE_BODY.as_bytes(),
            );
            assert!(verify(ENGINE, &keys, d).is_ok());
        }
        let d = delivery(
            &[("x-webhook-signature", ENGINE_SIGNATURE)],
            ENGINE_BODY.as_bytes(),
        );
        assert!(
            verify(ENGINE, &secrets(&[old]), d).is_err(),
            "a removed secret must stop working"
        );
    }

    #[test]
    fn standard_accepts_any_listed_v1_signature_and_skips_other_versions() {
        let keys = secrets(&[&standard_key()]);
        let listed = format!("v1a,AAAA v1,bm90LWl0 v1,!!notbase64 {STANDARD_SIGNATURE}");
        let d = standard_delivery(&listed, STANDARD_BODY.as_bytes());
        assert!(verify(Scheme::StandardWebhooks, &keys, d).is_ok());

        let only_other = standard_delivery(
            "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            STANDARD_BODY.as_bytes(),
        );
        assert!(matches!(
            verify(Scheme::StandardWebhooks, &keys, only_other),
            Err(VerifyError::InvalidSignature(_))
        ));
        let upper_tag = standard_delivery(
            &STANDARD_SIGNATURE.replacen("v1", "V1", 1),
            STANDARD_BODY.as_bytes(),
        );
        assert!(verify(Scheme::StandardWebhooks, &keys, upper_tag).is_err());
    }

    #[test]
    fn missing_empty_and_repeated_headers_are_named() {
        let keys = secrets(&[ENGINE_SECRET.as_bytes()]);
        let none = delivery(&[], ENGINE_BODY.as_bytes());
        assert_eq!(
            verify(ENGINE, &keys, none).unwrap_err(),
            VerifyError::MissingSignature {
                header: "x-webhook-signature"
            }
        );
        let empty = delivery(&[("x-webhook-signature", "")], ENGINE_BODY.as_bytes());
        assert!(matches!(
            verify(ENGINE, &keys, empty),
            Err(VerifyError::MissingSignature { .. })
        ));
        let twice = delivery(
            &[
                ("x-webhook-signature", ENGINE_SIGNATURE),
                ("x-webhook-signature", ENGINE_SIGNATURE),
            ],
            ENGINE_BODY.as_bytes(),
        );
        assert!(matches!(
            verify(ENGINE, &keys, twice),
            Err(VerifyError::InvalidSignature(_))
        ));

        let skeys = secrets(&[&standard_key()]);
        let no_id = delivery(
            &[
                ("webhook-timestamp", STANDARD_TIMESTAMP),
                ("webhook-signature", STANDARD_SIGNATURE),
            ],
            STANDARD_BODY.as_bytes(),
        );
        assert_eq!(
            verify(Scheme::StandardWebhooks, &skeys, no_id).unwrap_err(),
            VerifyError::MissingSignedHeader {
                header: "webhook-id"
            }
        );
    }

    #[test]
    fn error_messages_never_echo_the_signature() {
        let keys = secrets(&[ENGINE_SECRET.as_bytes()]);
        let d = delivery(&[("x-webhook-signature", ENGINE_SIGNATURE)], b"{}");
        let message = verify(ENGINE, &keys, d).unwrap_err().to_string();
        assert!(!message.contains(&ENGINE_SIGNATURE[10..30]), "{message}");
    }
}
