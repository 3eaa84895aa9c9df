//! The consumer API: takes one queue message as plain strings (its body and its `signature`
//! attribute, however your SQS client hands them over), decodes it into the typed [`Envelope`]
//! and [`Event`], re-verifies the sender's signature over `data` when it holds that sender's
//! secret, and hands the event to an [`EventHandler`] (your trading logic). Pure: no I/O besides
//! what the handler does. The example consumer Lambda (`examples/consumer`) wraps it in an SQS
//! batch handler with partial batch failures.
//!
//! Events the bridge read from a provider's stream (`via: stream`; Heisenberg and Rekko) have no
//! sender signature to re-check: their authenticity rests on the bridge's authenticated
//! connection and on who may send to the queue (IAM). The `via` claim counts only for providers
//! that have a stream: an engine or Standard Webhooks envelope marked `stream` still needs its
//! signature.
//!
//! Secrets come from the same `HOOKRELAY_*_SECRETS` variables as the receiver; a sender without
//! one is not re-verified (the receiver already verified it; re-verifying guards against anything
//! that could write to the queue besides hookrelay).

use crate::envelope::{Envelope, STREAM_PROVIDERS, Via};
use crate::events::{DecodeError, Event};
use crate::secret::SenderSecrets;
use crate::senders;
use crate::signature::VerifyError;

/// What your code does with each decoded, verified event.
pub trait EventHandler {
    /// Handles one event; an error marks the message failed (it will be delivered again).
    fn handle(&self, envelope: &Envelope, event: Event) -> Result<(), String>;
}

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The record has no body.
    #[error("the message has no body")]
    NoBody,
    /// The body is not a hookrelay envelope, or `data` doesn't match its event type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A secret is configured for the sender, but the message has no `signature` attribute.
    #[error("the message has no signature attribute to re-verify")]
    NoSignature,
    /// Re-verification failed: `data` is not what the sender signed.
    #[error("re-verification failed: {0}")]
    Unverified(#[from] VerifyError),
    /// The handler refused the event.
    #[error("the handler failed: {0}")]
    Handler(String),
}

/// What [`Consumer::process`] did with a message that didn't fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The handler took the event.
    Handled,
    /// A smoke test (`hookrelay.smoke_test`), verified like any message and acknowledged
    /// without reaching the handler: it must never move a trading bot.
    SkippedSmokeTest,
}

/// Decodes, re-verifies and hands over messages.
pub struct Consumer<H> {
    secrets: SenderSecrets,
    handler: H,
}

impl<H: EventHandler> Consumer<H> {
    /// A consumer re-verifying with `secrets` and passing events to `handler`.
    pub fn new(secrets: SenderSecrets, handler: H) -> Self {
        Self { secrets, handler }
    }

    /// Processes one message, given its body and its `signature` message attribute (both as
    /// the queue delivered them; `None` when absent).
    pub fn process(
        &self,
        body: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Processed, ConsumeError> {
        let body = body.ok_or(ConsumeError::NoBody)?;
        let envelope = Envelope::from_json(body)?;
        // Only a provider that has a stream can send unsigned (`via: stream`) events; for any
        // other, the claim is ignored and the signature is required as usual.
        let unsigned_stream =
            envelope.via == Via::Stream && STREAM_PROVIDERS.contains(&envelope.provider.as_str());
        let secrets = senders::by_name(&envelope.provider)
            .and_then(|sender| self.secrets.of(sender))
            .filter(|_| !unsigned_stream);
        if let Some(secrets) = secrets {
            let signature = signature.ok_or(ConsumeError::NoSignature)?;
            envelope.verify_signature(signature, secrets)?;
        }
        if envelope.is_smoke_test() {
            return Ok(Processed::SkippedSmokeTest);
        }
        let event = envelope.event()?;
        self.handler
            .handle(&envelope, event)
            .map_err(ConsumeError::Handler)?;
        Ok(Processed::Handled)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::Env;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl EventHandler for &Collect {
        fn handle(&self, envelope: &Envelope, _: Event) -> Result<(), String> {
            self.0.lock().unwrap().push(envelope.id.clone());
            Ok(())
        }
    }

    const GOOD: &str = r#"{"version":1,"id":"rekko:1","provider":"rekko","type":"news","market_id":null,"sequence":null,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:00.000Z","data":{"type":"news"}}"#;

    #[test]
    fn messages_decode_from_plain_strings_and_bad_ones_say_why() {
        let collected = Collect::default();
        let consumer = Consumer::new(
            SenderSecrets::from_env(&Env::new(|_| None)).unwrap(),
            &collected,
        );
        assert_eq!(
            consumer.process(Some(GOOD), None).unwrap(),
            Processed::Handled
        );
        assert!(matches!(
            consumer.process(None, None),
            Err(ConsumeError::NoBody)
        ));
        assert!(matches!(
            consumer.process(Some("not an envelope"), None),
            Err(ConsumeError::Decode(DecodeError::Envelope(_)))
        ));
        let v9 = GOOD.replace("\"version\":1", "\"version\":9");
        assert!(matches!(
            consumer.process(Some(&v9), None),
            Err(ConsumeError::Decode(DecodeError::UnsupportedVersion(9)))
        ));
        assert_eq!(*collected.0.lock().unwrap(), ["rekko:1"]);
    }

    #[test]
    fn smoke_tests_are_verified_acknowledged_and_never_handed_over() {
        let collected = Collect::default();
        let consumer = Consumer::new(
            SenderSecrets::from_env(&Env::new(|_| None)).unwrap(),
            &collected,
        );
        let smoke = GOOD
            .replace("\"type\":\"news\"", "\"type\":\"hookrelay.smoke_test\"")
            .replace("\"id\":\"rekko:1\"", "\"id\":\"rekko:smoke\"");
        assert_eq!(
            consumer.process(Some(&smoke), None).unwrap(),
            Processed::SkippedSmokeTest
        );
        assert!(
            collected.0.lock().unwrap().is_empty(),
            "the handler never sees it"
        );
        // Verified first: with the sender's secret configured, an unsigned one still fails.
        let strict = Consumer::new(
            SenderSecrets::from_env(&Env::new(|name: &str| {
                (name == "HOOKRELAY_REKKO_SECRETS").then(|| "a-rekko-secret-long-enough".to_owned())
            }))
            .unwrap(),
            &collected,
        );
        assert!(matches!(
            strict.process(Some(&smoke), None),
            Err(ConsumeError::NoSignature)
        ));
    }

    #[test]
    fn a_configured_secret_makes_the_signature_required() {
        let collected = Collect::default();
        let consumer = Consumer::new(
            SenderSecrets::from_env(&Env::new(|name: &str| {
                (name == "HOOKRELAY_REKKO_SECRETS").then(|| "a-rekko-secret-long-enough".to_owned())
            }))
            .unwrap(),
            &collected,
        );
        assert!(matches!(
            consumer.process(Some(GOOD), None),
            Err(ConsumeError::NoSignature)
        ));
        assert!(matches!(
            consumer.process(Some(GOOD), Some("00")),
            Err(ConsumeError::Unverified(_))
        ));
    }
}
