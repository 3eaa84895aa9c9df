//! Tests of the signature schemes: verify and sign, headers, secrets.

use super::*;

#[test]
fn headers_debug_prints_names_never_values() {
    let mut headers = Headers::new();
    headers.append("X-Webhook-Signature", "sha256=deadbeefcafe");
    let printed = format!("{headers:?}");
    assert!(printed.contains("x-webhook-signature"), "{printed}");
    assert!(!printed.contains("deadbeefcafe"), "{printed}");
}

// Known-answer vectors computed outside Rust, with Python's `hmac` module exactly as the engine's
// documentation does (`hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()`).
const ENGINE_SECRET: &str = "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
const ENGINE_BODY: &str = r#"{"id":"d-1","sequence":42,"eventType":"ORDER_MATCHED","timestamp":"2026-02-18T23:00:00.000Z"}"#;
const ENGINE_SIGNATURE: &str =
    "sha256=4eb6a589aebe460dd7bad237536801745bc8a8b9bb2d44f36239485cdc9ad3fc";

const REKKO_SECRET: &str = "your_hmac_secret_here";
const REKKO_BODY: &str = r#"{"type":"price_shift","market_id":"KXFED-26MAR19","platform":"kalshi","old_yes":0.62,"new_yes":0.68,"change_pct":9.7,"timestamp":"2026-03-21T14:30:00Z"}"#;
const REKKO_SIGNATURE: &str = "69749ad1df9eaf6e5439ceae790b552fd8e3534b865c92798a9b335c63eb2011";

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

fn delivery(headers: &[(&'static str, &str)], body: &[u8]) -> SignedRequest {
    SignedRequest {
        headers: headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect(),
        body: body.to_vec(),
    }
}

fn standard_delivery(signature: &str, body: &[u8]) -> SignedRequest {
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
    other_id
        .headers
        .insert("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJel");
    assert!(verify(Scheme::StandardWebhooks, &keys, other_id).is_err());
    let mut other_ts = standard_delivery(STANDARD_SIGNATURE, body);
    other_ts.headers.insert("webhook-timestamp", "1614265331");
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
    for (keys, signer) in [
        (secrets(&[old, new]), 1),
        (secrets(&[new, old]), 0),
        (secrets(&[new]), 0),
    ] {
        let d = delivery(
            &[("x-webhook-signature", ENGINE_SIGNATURE)],
            ENGINE_BODY.as_bytes(),
        );
        let verified = verify(ENGINE, &keys, d).unwrap();
        assert_eq!(verified.secret_index(), signer, "which secret signed");
    }
    let standard = secrets(&[b"another-standard-secret", &standard_key()]);
    let d = standard_delivery(STANDARD_SIGNATURE, STANDARD_BODY.as_bytes());
    assert_eq!(
        verify(Scheme::StandardWebhooks, &standard, d)
            .unwrap()
            .secret_index(),
        1
    );
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
#[test]
fn signing_produces_what_verification_accepts_and_the_published_vectors() {
    let engine = SigningSecret::from_key_bytes(ENGINE_SECRET.as_bytes());
    let headers = ENGINE.sign(&engine, None, ENGINE_BODY.as_bytes());
    assert_eq!(
        headers,
        [("x-webhook-signature", ENGINE_SIGNATURE.to_owned())]
    );
    let rekko = SigningSecret::from_key_bytes(REKKO_SECRET.as_bytes());
    let headers = REKKO.sign(&rekko, None, REKKO_BODY.as_bytes());
    assert_eq!(
        headers,
        [("x-webhook-signature", REKKO_SIGNATURE.to_owned())]
    );
    let standard = SigningSecret::from_key_bytes(&standard_key());
    let headers = Scheme::StandardWebhooks.sign(
        &standard,
        Some((STANDARD_ID, STANDARD_TIMESTAMP)),
        STANDARD_BODY.as_bytes(),
    );
    assert_eq!(
        headers,
        [
            ("webhook-id", STANDARD_ID.to_owned()),
            ("webhook-timestamp", STANDARD_TIMESTAMP.to_owned()),
            ("webhook-signature", STANDARD_SIGNATURE.to_owned()),
        ]
    );
    let request = SignedRequest {
        headers: headers.into_iter().collect(),
        body: STANDARD_BODY.as_bytes().to_vec(),
    };
    let verified = verify(
        Scheme::StandardWebhooks,
        &secrets(&[&standard_key()]),
        request,
    )
    .expect("what sign writes, verify accepts");
    assert_eq!(verified.signature(), STANDARD_SIGNATURE);
}

#[test]
fn the_standard_secret_text_is_whsec_base64_and_hex_secrets_are_their_text() {
    assert_eq!(
        Scheme::StandardWebhooks.key_from_text(&format!("whsec_{STANDARD_SECRET}")),
        Ok(standard_key())
    );
    assert_eq!(
        Scheme::StandardWebhooks.key_from_text(STANDARD_SECRET),
        Ok(standard_key())
    );
    assert!(Scheme::StandardWebhooks.key_from_text("whsec_*").is_err());
    assert_eq!(REKKO.key_from_text("abc"), Ok(b"abc".to_vec()));
}

#[test]
fn header_names_are_case_insensitive_and_values_trimmed() {
    let d = delivery(&[("X-Webhook-Signature", " sha256=ab ")], b"");
    assert_eq!(d.headers.get("x-webhook-signature"), Ok("sha256=ab"));
    assert_eq!(d.headers.get("X-WEBHOOK-SIGNATURE"), Ok("sha256=ab"));
}

#[test]
fn absent_empty_repeated_and_binary_headers_are_told_apart() {
    let one = |name: &str, value: &[u8]| -> Headers { [(name, value)].into_iter().collect() };
    assert_eq!(Headers::new().get("a"), Err(HeaderProblem::Missing));
    assert_eq!(one("a", b"  ").get("a"), Err(HeaderProblem::Missing));
    let twice: Headers = [("a", b"1"), ("A", b"1")].into_iter().collect();
    assert_eq!(twice.get("a"), Err(HeaderProblem::Repeated));
    assert_eq!(one("a", b"\xff").get("a"), Err(HeaderProblem::NotText));
    assert_eq!(one("a", b"x\x01").get("a"), Err(HeaderProblem::NotText));
    assert_eq!(one("a", b"x\ty").get("a"), Ok("x\ty"));
}

#[test]
fn secret_debug_never_shows_the_key() {
    let secret = SigningSecret::from_key_bytes(b"super-secret-value");
    let set = SecretSet::new(vec![secret.clone()]).unwrap();
    for text in [
        format!("{secret:?}"),
        format!("{set:?}"),
        format!("{set:#?}"),
    ] {
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("super-secret-value"), "{text}");
        assert!(!text.contains("73757065"), "hex of the key leaked: {text}");
    }
    assert!(SecretSet::new(Vec::new()).is_none());
}

#[test]
fn svix_names_are_a_second_family_chosen_per_complete_set() {
    let keys = secrets(&[&standard_key()]);
    let svix = delivery(
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", STANDARD_TIMESTAMP),
            ("svix-signature", STANDARD_SIGNATURE),
        ],
        STANDARD_BODY.as_bytes(),
    );
    let verified = verify(Scheme::StandardWebhooks, &keys, svix).unwrap();
    assert_eq!(verified.standard_names(), Some(standard_headers::SVIX));
    assert_eq!(verified.signature(), STANDARD_SIGNATURE);

    // Both complete: Svix's set is the one used (a wrong webhook-* set doesn't matter).
    let both = delivery(
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", STANDARD_TIMESTAMP),
            ("svix-signature", STANDARD_SIGNATURE),
            ("webhook-id", "other"),
            ("webhook-timestamp", "1"),
            ("webhook-signature", "v1,AAAA"),
        ],
        STANDARD_BODY.as_bytes(),
    );
    assert!(verify(Scheme::StandardWebhooks, &keys, both).is_ok());

    // A mix is an incomplete webhook-* set, whichever header is borrowed.
    let mixed = delivery(
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", STANDARD_TIMESTAMP),
            ("webhook-signature", STANDARD_SIGNATURE),
        ],
        STANDARD_BODY.as_bytes(),
    );
    assert_eq!(
        verify(Scheme::StandardWebhooks, &keys, mixed).unwrap_err(),
        VerifyError::MissingSignedHeader {
            header: "webhook-id"
        }
    );
    // An incomplete svix set alone names its own missing header, as the spec's set would.
    let no_signature = delivery(
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", STANDARD_TIMESTAMP),
        ],
        STANDARD_BODY.as_bytes(),
    );
    assert_eq!(
        verify(Scheme::StandardWebhooks, &keys, no_signature).unwrap_err(),
        VerifyError::MissingSignature {
            header: "svix-signature"
        }
    );
    let no_id = delivery(
        &[
            ("svix-timestamp", STANDARD_TIMESTAMP),
            ("svix-signature", STANDARD_SIGNATURE),
        ],
        STANDARD_BODY.as_bytes(),
    );
    assert_eq!(
        verify(Scheme::StandardWebhooks, &keys, no_id).unwrap_err(),
        VerifyError::MissingSignedHeader { header: "svix-id" }
    );
    // A complete svix set with a wrong signature names svix-signature's problem.
    let forged = delivery(
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", "1614265331"),
            ("svix-signature", STANDARD_SIGNATURE),
        ],
        STANDARD_BODY.as_bytes(),
    );
    assert!(matches!(
        verify(Scheme::StandardWebhooks, &keys, forged),
        Err(VerifyError::InvalidSignature(_))
    ));
    // A blank header is not there: a complete webhook-* set beside two svix-* headers and a
    // blank svix-signature is the webhook-* set.
    let blank_beside_spec = delivery(
        &[
            ("webhook-id", STANDARD_ID),
            ("webhook-timestamp", STANDARD_TIMESTAMP),
            ("webhook-signature", STANDARD_SIGNATURE),
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", STANDARD_TIMESTAMP),
            ("svix-signature", ""),
        ],
        STANDARD_BODY.as_bytes(),
    );
    let verified = verify(Scheme::StandardWebhooks, &keys, blank_beside_spec).unwrap();
    assert_eq!(verified.standard_names(), Some(standard_headers::WEBHOOK));
    let empty_svix = delivery(
        &[
            ("svix-id", STANDARD_ID),
            ("svix-timestamp", STANDARD_TIMESTAMP),
            ("svix-signature", " "),
        ],
        STANDARD_BODY.as_bytes(),
    );
    assert_eq!(
        verify(Scheme::StandardWebhooks, &keys, empty_svix).unwrap_err(),
        VerifyError::MissingSignature {
            header: "svix-signature"
        }
    );
}
