//! Tests of the relay signature: sealing, verification, keys.

use super::*;

const NOW: i64 = 1_790_000_000;
const BODY: &str = r#"{"version":1,"id":"engine:op-1:42","type":"ORDER_MATCHED"}"#;

fn signer(seed: u8) -> RelaySigner {
    RelaySigner::new(vec![RelaySigningKey::from_seed([seed; 32])]).unwrap()
}

fn trust(signer: &RelaySigner) -> RelayTrust {
    RelayTrust::new(signer.public_keys().collect()).unwrap()
}

fn received(signature: &RelaySignature) -> ReceivedRelaySignature<'_> {
    ReceivedRelaySignature {
        id: Some(&signature.id),
        timestamp: Some(&signature.timestamp),
        signatures: Some(&signature.signatures),
    }
}

fn check(
    trust: &RelayTrust,
    signature: &RelaySignature,
    body: &str,
    now: i64,
) -> Result<(), RelayError> {
    let envelope_id = "engine:op-1:42";
    trust
        .verify(received(signature), body, now)?
        .check_id(envelope_id)
}

/// `text` with its byte `at` (ASCII) replaced by another ASCII byte.
fn with_byte_changed(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_sealed_message_verifies_and_every_changed_byte_fails() {
    let signer = signer(7);
    let signature = signer.sign("engine:op-1:42", NOW, BODY);
    assert_eq!(signature.id, "engine:op-1:42");
    assert_eq!(signature.timestamp, NOW.to_string());
    assert!(signature.signatures.starts_with("v1a,"));
    let trust = trust(&signer);
    assert_eq!(check(&trust, &signature, BODY, NOW), Ok(()));
    for at in 0..BODY.len() {
        let changed = with_byte_changed(BODY, at);
        assert_eq!(
            check(&trust, &signature, &changed, NOW),
            Err(RelayError::Untrusted),
            "body byte {at}"
        );
    }
    for at in 0..signature.timestamp.len() {
        let changed = RelaySignature {
            timestamp: with_byte_changed(&signature.timestamp, at),
            ..signature.clone()
        };
        assert_eq!(
            check(&trust, &changed, BODY, NOW),
            Err(RelayError::Untrusted),
            "timestamp byte {at}"
        );
    }
    for at in 0..signature.id.len() {
        let changed = RelaySignature {
            id: with_byte_changed(&signature.id, at),
            ..signature.clone()
        };
        assert_eq!(
            check(&trust, &changed, BODY, NOW),
            Err(RelayError::Untrusted),
            "id byte {at}"
        );
    }
    // Every byte of the signature's base64 (an alphabet change keeps it decodable).
    for at in 4..signature.signatures.len() {
        let mut bytes = signature.signatures.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed = RelaySignature {
            signatures: String::from_utf8(bytes).unwrap(),
            ..signature.clone()
        };
        assert_eq!(
            check(&trust, &changed, BODY, NOW),
            Err(RelayError::Untrusted),
            "signature byte {at}"
        );
    }
}

#[test]
fn a_signature_list_longer_than_hookrelay_writes_is_refused_unchecked() {
    let signer = signer(7);
    let trust = trust(&signer);
    let genuine = signer.sign("engine:op-1:42", NOW, BODY);
    // Four entries, the genuine one last: still checked (a rotation writes two). The junk is
    // a well-formed signature of 64 zero bytes.
    let junk = format!("v1a,{}==", "A".repeat(86));
    let four = RelaySignature {
        signatures: format!("{junk} {junk} {junk} {}", genuine.signatures),
        ..genuine.clone()
    };
    assert_eq!(check(&trust, &four, BODY, NOW), Ok(()));
    let five = RelaySignature {
        signatures: format!("{junk} {}", four.signatures),
        ..genuine.clone()
    };
    assert_eq!(
        check(&trust, &five, BODY, NOW),
        Err(RelayError::TooManySignatures(MAX_SIGNATURE_ENTRIES))
    );
    let padded = RelaySignature {
        signatures: format!("{}{}", genuine.signatures, " ".repeat(400)),
        ..genuine
    };
    assert_eq!(
        check(&trust, &padded, BODY, NOW),
        Err(RelayError::TooManySignatures(MAX_SIGNATURE_ENTRIES))
    );
}

#[test]
fn a_foreign_key_a_missing_attribute_and_another_envelope_id_are_refused() {
    let ours = signer(7);
    let foreign = signer(8).sign("engine:op-1:42", NOW, BODY);
    assert_eq!(
        check(&trust(&ours), &foreign, BODY, NOW),
        Err(RelayError::Untrusted)
    );
    let genuine = ours.sign("engine:op-1:42", NOW, BODY);
    let without = ReceivedRelaySignature {
        signatures: None,
        ..received(&genuine)
    };
    assert_eq!(
        trust(&ours).verify(without, BODY, NOW).map(drop),
        Err(RelayError::Missing(attributes::RELAY_SIGNATURE))
    );
    let moved = trust(&ours).verify(received(&genuine), BODY, NOW).unwrap();
    assert_eq!(
        moved.check_id("engine:op-1:43"),
        Err(RelayError::IdMismatch)
    );
}

#[test]
fn age_is_judged_only_on_a_genuine_timestamp() {
    let signer = signer(7);
    let trust = trust(&signer);
    let max = DEFAULT_MAX_AGE.as_secs() as i64;
    let sealed = signer.sign("engine:op-1:42", NOW - max, BODY);
    assert_eq!(check(&trust, &sealed, BODY, NOW), Ok(()));
    let old = signer.sign("engine:op-1:42", NOW - max - 1, BODY);
    let refused = check(&trust, &old, BODY, NOW).unwrap_err();
    assert!(refused.is_age_only(), "{refused}");
    assert!(refused.is_genuine(), "{refused}");
    let ahead = signer.sign("engine:op-1:42", NOW + 301, BODY);
    let refused = check(&trust, &ahead, BODY, NOW).unwrap_err();
    assert_eq!(refused, RelayError::FromTheFuture(300));
    assert!(refused.is_genuine() && !refused.is_age_only());
    assert!(!RelayError::Untrusted.is_genuine());
    assert_eq!(
        check(
            &trust,
            &signer.sign("engine:op-1:42", NOW + 300, BODY),
            BODY,
            NOW
        ),
        Ok(())
    );
    // A configured maximum age can't be shorter than the queue's retention.
    assert!(
        trust
            .clone()
            .with_max_age(Duration::from_secs(86_400))
            .is_none()
    );
    let four_days = trust.with_max_age(MIN_MAX_AGE).unwrap();
    assert!(
        check(
            &four_days,
            &signer.sign("engine:op-1:42", NOW - 345_601, BODY),
            BODY,
            NOW
        )
        .unwrap_err()
        .is_age_only()
    );
}

#[test]
fn rotation_signs_with_every_key_and_either_public_key_verifies() {
    let old = RelaySigningKey::from_seed([1; 32]);
    let new = RelaySigningKey::from_seed([2; 32]);
    let both = RelaySigner::new(vec![old.clone(), new.clone()]).unwrap();
    let signature = both.sign("engine:op-1:42", NOW, BODY);
    assert_eq!(signature.signatures.split(' ').count(), 2);
    for key in [old, new] {
        let trust = RelayTrust::new(vec![key.public_key()]).unwrap();
        assert_eq!(check(&trust, &signature, BODY, NOW), Ok(()));
    }
}

#[test]
fn ids_with_a_dot_are_signed_as_their_sha256() {
    let id = "standard:msg.1";
    // sha256("standard:msg.1"), computed with Python's hashlib.
    assert_eq!(
        signed_id(id),
        "d2c51cafe29d8a2f002d5668c2f2a1434ef82878ff54f645de68b45580fec40f"
    );
    assert_eq!(signed_id("engine:op-1:42"), "engine:op-1:42");
    let signer = signer(3);
    let signature = signer.sign(id, NOW, BODY);
    assert!(!signature.id.contains('.'));
    let verified = trust(&signer)
        .verify(received(&signature), BODY, NOW)
        .unwrap();
    assert_eq!(verified.check_id(id), Ok(()));
}

/// The small-order points of Ed25519 (identity, order 2, 4 and 8), each with the sign bit clear
/// and set: a key any signature verifies under. examples/python/consume.py refuses the same list
/// (tests/python/test_consume.py).
const SMALL_ORDER_KEYS: [&str; 5] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
];

#[test]
fn small_order_public_keys_are_refused() {
    for hex in SMALL_ORDER_KEYS {
        for sign in [0u8, 0x80] {
            let mut bytes: [u8; 32] = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect::<Vec<_>>()
                .try_into()
                .unwrap();
            bytes[31] |= sign;
            let text = format!("whpk_{}", BASE64.encode(bytes));
            assert_eq!(
                RelayPublicKey::parse(&text),
                Err(KeyError::Unusable),
                "{hex} sign {sign}"
            );
        }
    }
}

#[test]
fn keys_round_trip_and_bad_ones_are_refused_without_echo() {
    let key = RelaySigningKey::from_seed([9; 32]);
    let text = key.to_text();
    assert!(text.starts_with("whsk_"));
    let parsed = RelaySigningKey::parse(&text).unwrap();
    assert_eq!(parsed.public_key(), key.public_key());
    let public = key.public_key().to_string();
    assert_eq!(RelayPublicKey::parse(&public).unwrap(), key.public_key());
    // The 64-byte form: seed then public key; a mismatched public half is refused.
    let mut pair = [9u8; 64];
    pair[32..].copy_from_slice(&BASE64.decode(&public[5..]).unwrap());
    let long = format!("whsk_{}", BASE64.encode(pair));
    assert_eq!(
        RelaySigningKey::parse(&long).unwrap().public_key(),
        key.public_key()
    );
    pair[40] ^= 1;
    let wrong = format!("whsk_{}", BASE64.encode(pair));
    assert_eq!(
        RelaySigningKey::parse(&wrong).unwrap_err(),
        KeyError::Inconsistent
    );
    assert_eq!(
        RelaySigningKey::parse(&public).unwrap_err(),
        KeyError::Prefix("whsk_")
    );
    assert!(RelayPublicKey::parse("whpk_AAAA").is_err());
    // The identity point is of small order: refused.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = format!("whpk_{}", BASE64.encode(identity));
    assert_eq!(
        RelayPublicKey::parse(&weak).unwrap_err(),
        KeyError::Unusable
    );
    assert_eq!(RelayTrust::parse(" , ").unwrap_err(), KeyError::Empty);
    let two = format!(
        "{public},{}",
        RelaySigningKey::from_seed([1; 32]).public_key()
    );
    assert_eq!(RelayTrust::parse(&two).unwrap().keys().len(), 2);
    let debug = format!("{key:?} {:?}", RelaySigner::parse(&text).unwrap());
    assert!(
        !debug.contains(&text[5..]),
        "Debug never prints the private key: {debug}"
    );
}
