//! Fuzzes the consumer side: any SQS message body through `Envelope::from_json`, the typed
//! `event()` decoding, and re-verification of `data`. Checks: no panic; a body that decodes and
//! re-verifies must have a `signed_data` that is exactly what the secret signed.
#![no_main]

use hookrelay::Envelope;
use hookrelay::config::Env;
use hookrelay::secret::SenderSecrets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(envelope) = Envelope::from_json(text) else {
        return;
    };
    let _ = envelope.event();
    let secrets = SenderSecrets::from_env(&Env::new(|name: &str| match name {
        "HOOKRELAY_ENGINE_SECRETS" | "HOOKRELAY_REKKO_SECRETS" => {
            Some("fuzzing-secret-0123456789abcdef".into())
        }
        "HOOKRELAY_STANDARD_SECRETS" => {
            Some("whsec_aG9va3JlbGF5LXRlc3Qtc3RhbmRhcmQtc2VjcmV0ISE=".into())
        }
        _ => None,
    }))
    .unwrap();
    for provider in hookrelay::senders::SENDERS {
        if let Some(set) = secrets.of(provider) {
            let _ = envelope.verify_signature("sha256=00", set);
            let _ = envelope.verify_signature("v1,AAAA", set);
        }
    }
    assert!(
        text.contains(envelope.signed_data()),
        "signed_data must be a slice of the message"
    );
});
