//! The consumer API: takes one queue message as plain strings (its body and its message
//! attributes, however your SQS client hands them over), checks hookrelay's relay signature
//! (`crate::relay`) before anything else, decodes the typed [`Envelope`] and [`Event`],
//! optionally re-checks the sender's own signature over `data`, and hands the event to an
//! [`EventHandler`] (your trading logic). Pure: no I/O besides what the handler does. The example
//! consumer Lambda (`examples/consumer`) wraps it in an SQS batch handler with partial batch
//! failures.
//!
//! Fails closed: [`Consumer::new`] takes the relay public keys you trust, and a message without a
//! valid relay signature from one of them (unsealed, any byte changed, a foreign key, more
//! signature entries than hookrelay writes, older than the maximum age) is refused before its body
//! is parsed; a signature moved from another envelope is refused once the body's `id` is read.
//! The only way around it is [`Consumer::insecure_without_relay_verification`]. A refusal whose
//! signature verified ([`ConsumeError::is_genuine`]: too old, from the future) is a real
//! message: fail it so it reaches the dead-letter queue, never drop it. Use [`Envelope::id`] as
//! your idempotency key, and decide only on the verified envelope, never on the plain message
//! attributes (`provider`, `event_type`, `market_id`...), which no signature covers.
//!
//! The sender's signature (`signature` attribute) is a second, optional proof: with
//! [`Consumer::with_sender_secrets`], webhook events of a sender you hold secrets for must also
//! carry a valid one. Events the bridge read from a stream (`via: stream`, Heisenberg and Rekko)
//! have none; the relay signature covers `via`, so that claim can't be forged.
//!
//! Configuration (`Consumer::from_env`, used by the example Lambda): `HOOKRELAY_RELAY_PUBLIC_KEYS`
//! (required), `HOOKRELAY_RELAY_MAX_AGE_SECS` (default 30 days, at least 4), and optionally the
//! senders' `HOOKRELAY_*_SECRETS`; `HOOKRELAY_RELAY_VERIFICATION=insecure-off` turns relay
//! verification off, with a warning on stderr every time a consumer is built that way.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ConfigError, Env};
use crate::envelope::{Envelope, STREAM_PROVIDERS, Via, attributes};
use crate::events::{DecodeError, Event};
use crate::relay::{self, ReceivedRelaySignature, RelayError, RelayTrust};
use crate::secret::SenderSecrets;
use crate::senders;
use crate::signature::VerifyError;

/// Consumer configuration variables.
pub mod vars {
    /// The trusted relay public keys (`whpk_...`, separated by spaces, commas or newlines).
    pub const RELAY_PUBLIC_KEYS: &str = "HOOKRELAY_RELAY_PUBLIC_KEYS";
    /// The maximum age of a message's relay timestamp, seconds.
    pub const RELAY_MAX_AGE_SECS: &str = "HOOKRELAY_RELAY_MAX_AGE_SECS";
    /// `insecure-off` turns relay verification off; nothing else is accepted.
    pub const RELAY_VERIFICATION: &str = "HOOKRELAY_RELAY_VERIFICATION";
    /// The one value of [`RELAY_VERIFICATION`] that turns verification off.
    pub const INSECURE_OFF: &str = "insecure-off";
}

/// What your code does with each decoded, verified event.
pub trait EventHandler {
    /// Handles one event; an error marks the message failed (it will be delivered again).
    fn handle(&self, envelope: &Envelope, event: Event) -> Result<(), String>;
}

/// A message's string attributes, by name, however your SQS client holds them.
pub trait MessageAttributes {
    /// The string value of the attribute `name`, if present.
    fn string(&self, name: &str) -> Option<&str>;
}

impl MessageAttributes for HashMap<String, String> {
    fn string(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl MessageAttributes for BTreeMap<String, String> {
    fn string(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl MessageAttributes for [(&str, &str)] {
    fn string(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| *value)
    }
}

impl<const N: usize> MessageAttributes for [(&str, &str); N] {
    fn string(&self, name: &str) -> Option<&str> {
        self.as_slice().string(name)
    }
}

impl<T: MessageAttributes + ?Sized> MessageAttributes for &T {
    fn string(&self, name: &str) -> Option<&str> {
        (**self).string(name)
    }
}

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The record has no body.
    #[error("the message has no body")]
    NoBody,
    /// The relay signature is missing, wrong, foreign, from another envelope, or too old.
    #[error("relay signature refused: {0}")]
    Relay(#[from] RelayError),
    /// The body is not a hookrelay envelope.
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

impl ConsumeError {
    /// Whether the message is genuine and only too old: fail it (it reaches the DLQ, where an
    /// operator can redrive it with a longer maximum age), never drop it.
    pub fn is_age_only(&self) -> bool {
        matches!(self, Self::Relay(error) if error.is_age_only())
    }

    /// Whether the relay signature verified and only its timestamp was refused (too old, from
    /// the future, malformed): a message hookrelay sealed, to fail to the DLQ, never to drop.
    pub fn is_genuine(&self) -> bool {
        matches!(self, Self::Relay(error) if error.is_genuine())
    }
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

/// Whether relay signatures are checked.
#[derive(Debug, Clone)]
enum RelayCheck {
    Verify(RelayTrust),
    InsecureSkip,
}

/// Verifies, decodes and hands over messages.
pub struct Consumer<H> {
    relay: RelayCheck,
    secrets: SenderSecrets,
    handler: H,
    now: fn() -> i64,
}

/// Seconds since the Unix epoch by the system clock.
fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The envelope of one queue message whose relay signature one of `trust`'s keys made over
/// `body` at most the maximum age before `now` (Unix seconds), for the envelope's own id: the
/// signature is checked over the raw body before the body is parsed. What [`Consumer`] checks
/// before its handler sees anything, for code that reads messages without a handler.
pub fn verified_envelope(
    trust: &RelayTrust,
    body: &str,
    attributes: &(impl MessageAttributes + ?Sized),
    now: i64,
) -> Result<Envelope, ConsumeError> {
    let verified = trust.verify(
        ReceivedRelaySignature {
            id: attributes.string(relay::attributes::RELAY_ID),
            timestamp: attributes.string(relay::attributes::RELAY_TIMESTAMP),
            signatures: attributes.string(relay::attributes::RELAY_SIGNATURE),
        },
        body,
        now,
    )?;
    let envelope = Envelope::from_json(body)?;
    verified.check_id(&envelope.id)?;
    Ok(envelope)
}

/// The relay trust configured by the environment: `Ok(None)` only when
/// `HOOKRELAY_RELAY_VERIFICATION=insecure-off`.
pub fn relay_trust_from_env<L: Fn(&str) -> Option<String>>(
    env: &Env<L>,
) -> Result<Option<RelayTrust>, ConfigError> {
    match env.text(vars::RELAY_VERIFICATION).as_deref() {
        None => {}
        Some(vars::INSECURE_OFF) => return Ok(None),
        Some(_) => {
            return Err(ConfigError::new(
                vars::RELAY_VERIFICATION,
                format!("must be unset or {}", vars::INSECURE_OFF),
            ));
        }
    }
    let keys = env.text(vars::RELAY_PUBLIC_KEYS).ok_or_else(|| {
        ConfigError::new(
            vars::RELAY_PUBLIC_KEYS,
            "is required: the relay public keys (whpk_...) whose signatures this consumer trusts",
        )
    })?;
    let trust = RelayTrust::parse(&keys)
        .map_err(|error| ConfigError::new(vars::RELAY_PUBLIC_KEYS, error.to_string()))?;
    let default = relay::DEFAULT_MAX_AGE.as_secs();
    let max_age = env.number(vars::RELAY_MAX_AGE_SECS, default)?;
    trust.with_max_age(Duration::from_secs(max_age)).map(Some).ok_or_else(|| {
        ConfigError::new(
            vars::RELAY_MAX_AGE_SECS,
            format!(
                "must be at least {} seconds (the queue's retention), or a backlog would be refused",
                relay::MIN_MAX_AGE.as_secs()
            ),
        )
    })
}

impl<H: EventHandler> Consumer<H> {
    /// A consumer that accepts only messages sealed by one of `trust`'s keys, passing their
    /// events to `handler`.
    pub fn new(trust: RelayTrust, handler: H) -> Self {
        Self::with_check(RelayCheck::Verify(trust), handler)
    }

    /// A consumer that accepts messages without checking the relay signature: anything that
    /// can write to the queue can then make your handler act. For draining messages queued before
    /// relay signatures only.
    pub fn insecure_without_relay_verification(handler: H) -> Self {
        Self::with_check(RelayCheck::InsecureSkip, handler)
    }

    /// A consumer configured by the environment (see the module docs).
    pub fn from_env<L: Fn(&str) -> Option<String>>(
        env: &Env<L>,
        handler: H,
    ) -> Result<Self, ConfigError> {
        let consumer = match relay_trust_from_env(env)? {
            Some(trust) => Self::new(trust, handler),
            None => {
                // The one write this module makes: a downgrade must never be silent, whatever
                // the caller logs.
                eprintln!(
                    "WARNING hookrelay: {}={}: relay signatures are NOT verified; anyone who can \
                     write to the queue can forge events",
                    vars::RELAY_VERIFICATION,
                    vars::INSECURE_OFF
                );
                Self::insecure_without_relay_verification(handler)
            }
        };
        Ok(consumer.with_sender_secrets(SenderSecrets::from_env(env)?))
    }

    fn with_check(relay: RelayCheck, handler: H) -> Self {
        Self {
            relay,
            secrets: SenderSecrets::default(),
            handler,
            now: system_now,
        }
    }

    /// Also re-checks the sender's own signature for every sender `secrets` holds.
    pub fn with_sender_secrets(self, secrets: SenderSecrets) -> Self {
        Self { secrets, ..self }
    }

    /// Reads the time from `now` (Unix seconds) instead of the system clock.
    pub fn with_clock(self, now: fn() -> i64) -> Self {
        Self { now, ..self }
    }

    /// Whether relay signatures are checked (false only when built insecure).
    pub fn verifies_relay_signatures(&self) -> bool {
        matches!(self.relay, RelayCheck::Verify(_))
    }

    /// Processes one message, given its body and its message attributes (both as the queue
    /// delivered them).
    pub fn process(
        &self,
        body: Option<&str>,
        attributes: &(impl MessageAttributes + ?Sized),
    ) -> Result<Processed, ConsumeError> {
        let body = body.ok_or(ConsumeError::NoBody)?;
        let envelope = match &self.relay {
            RelayCheck::Verify(trust) => verified_envelope(trust, body, attributes, (self.now)())?,
            RelayCheck::InsecureSkip => Envelope::from_json(body)?,
        };
        // Only a provider that has a stream sends unsigned (`via: stream`) events.
        let unsigned_stream =
            envelope.via == Via::Stream && STREAM_PROVIDERS.contains(&envelope.provider.as_str());
        let secrets = senders::by_name(&envelope.provider)
            .and_then(|sender| self.secrets.of(sender))
            .filter(|_| !unsigned_stream);
        if let Some(secrets) = secrets {
            let signature = attributes
                .string(attributes::SIGNATURE)
                .ok_or(ConsumeError::NoSignature)?;
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
    use crate::relay::{RelaySigner, RelaySigningKey};

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl EventHandler for &Collect {
        fn handle(&self, envelope: &Envelope, _: Event) -> Result<(), String> {
            self.0.lock().unwrap().push(envelope.id.clone());
            Ok(())
        }
    }

    const GOOD: &str = r#"{"version":1,"id":"rekko:1","provider":"rekko","type":"news","market_id":null,"sequence":null,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:00.000Z","data":{"type":"news"}}"#;
    const NOW: i64 = 1_790_000_000;

    fn signer() -> RelaySigner {
        RelaySigner::new(vec![RelaySigningKey::from_seed([5; 32])]).unwrap()
    }

    fn consumer(collected: &Collect) -> Consumer<&Collect> {
        Consumer::new(
            RelayTrust::new(signer().public_keys().collect()).unwrap(),
            collected,
        )
        .with_clock(|| NOW)
    }

    /// `body` sealed as the receiver seals it, with `extra` attributes.
    fn sealed(body: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let id = Envelope::from_json(body).unwrap().id;
        let signature = signer().sign(&id, NOW, body);
        let mut attributes = vec![
            (relay::attributes::RELAY_ID, signature.id),
            (relay::attributes::RELAY_TIMESTAMP, signature.timestamp),
            (relay::attributes::RELAY_SIGNATURE, signature.signatures),
        ];
        attributes.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
        attributes
    }

    fn borrowed<'a>(attributes: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        attributes.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn sealed_messages_decode_from_plain_strings_and_bad_ones_say_why() {
        let collected = Collect::default();
        let consumer = consumer(&collected);
        let attributes = sealed(GOOD, &[]);
        let attributes = borrowed(&attributes);
        assert_eq!(
            consumer.process(Some(GOOD), attributes.as_slice()).unwrap(),
            Processed::Handled
        );
        assert!(matches!(
            consumer.process(None, attributes.as_slice()),
            Err(ConsumeError::NoBody)
        ));
        let v9 = GOOD.replace("\"version\":1", "\"version\":9");
        let insecure = Consumer::insecure_without_relay_verification(&collected);
        assert!(!insecure.verifies_relay_signatures());
        assert!(matches!(
            insecure.process(Some(&v9), &[] as &[(&str, &str); 0]),
            Err(ConsumeError::Decode(DecodeError::UnsupportedVersion(9)))
        ));
        assert!(matches!(
            insecure.process(Some("not an envelope"), &[] as &[(&str, &str); 0]),
            Err(ConsumeError::Decode(DecodeError::Envelope(_)))
        ));
        assert_eq!(*collected.0.lock().unwrap(), ["rekko:1"]);
    }

    #[test]
    fn unsealed_relabelled_and_moved_messages_are_refused_before_parsing() {
        let collected = Collect::default();
        let consumer = consumer(&collected);
        let none: [(&str, &str); 0] = [];
        let refused = consumer.process(Some(GOOD), &none).unwrap_err();
        assert!(
            matches!(refused, ConsumeError::Relay(RelayError::Missing(_))),
            "{refused}"
        );
        let attributes = sealed(GOOD, &[]);
        let attributes = borrowed(&attributes);
        let relabelled = GOOD.replace(
            "\"type\":\"news\",\"market_id\":null",
            "\"type\":\"news\",\"market_id\":\"m-2\"",
        );
        assert!(matches!(
            consumer.process(Some(&relabelled), attributes.as_slice()),
            Err(ConsumeError::Relay(RelayError::Untrusted))
        ));
        // A signature made for another envelope id (a genuine signer's output moved onto this
        // body) verifies as a signature but not as this envelope's.
        let under_other_id = signer().sign("rekko:2", NOW, GOOD);
        let moved = [
            (relay::attributes::RELAY_ID, under_other_id.id.as_str()),
            (
                relay::attributes::RELAY_TIMESTAMP,
                under_other_id.timestamp.as_str(),
            ),
            (
                relay::attributes::RELAY_SIGNATURE,
                under_other_id.signatures.as_str(),
            ),
        ];
        assert!(matches!(
            consumer.process(Some(GOOD), &moved),
            Err(ConsumeError::Relay(RelayError::IdMismatch))
        ));
        // A foreign key's seal is refused, and so is a genuine one past the maximum age, as an
        // age-only failure.
        let foreign = RelaySigner::new(vec![RelaySigningKey::from_seed([6; 32])])
            .unwrap()
            .sign("rekko:1", NOW, GOOD);
        let foreign = [
            (relay::attributes::RELAY_ID, foreign.id.as_str()),
            (
                relay::attributes::RELAY_TIMESTAMP,
                foreign.timestamp.as_str(),
            ),
            (
                relay::attributes::RELAY_SIGNATURE,
                foreign.signatures.as_str(),
            ),
        ];
        assert!(matches!(
            consumer.process(Some(GOOD), &foreign),
            Err(ConsumeError::Relay(RelayError::Untrusted))
        ));
        let later = consumer.with_clock(|| NOW + relay::DEFAULT_MAX_AGE.as_secs() as i64 + 1);
        let old = later
            .process(Some(GOOD), attributes.as_slice())
            .unwrap_err();
        assert!(old.is_age_only(), "{old}");
        assert!(collected.0.lock().unwrap().is_empty());
    }

    #[test]
    fn smoke_tests_are_verified_acknowledged_and_never_handed_over() {
        let collected = Collect::default();
        let consumer = consumer(&collected);
        let smoke = GOOD
            .replace("\"type\":\"news\"", "\"type\":\"hookrelay.smoke_test\"")
            .replace("\"id\":\"rekko:1\"", "\"id\":\"rekko:smoke\"");
        let attributes = sealed(&smoke, &[]);
        assert_eq!(
            consumer
                .process(Some(&smoke), borrowed(&attributes).as_slice())
                .unwrap(),
            Processed::SkippedSmokeTest
        );
        assert!(
            collected.0.lock().unwrap().is_empty(),
            "the handler never sees it"
        );
        // Verified first: an unsealed one fails.
        assert!(matches!(
            consumer.process(Some(&smoke), &[] as &[(&str, &str); 0]),
            Err(ConsumeError::Relay(_))
        ));
    }

    #[test]
    fn a_configured_sender_secret_makes_its_signature_required_too() {
        let collected = Collect::default();
        let secrets = SenderSecrets::from_env(&Env::new(|name: &str| {
            (name == "HOOKRELAY_REKKO_SECRETS").then(|| "a-rekko-secret-long-enough".to_owned())
        }))
        .unwrap();
        let consumer = consumer(&collected).with_sender_secrets(secrets);
        let attributes = sealed(GOOD, &[]);
        assert!(matches!(
            consumer.process(Some(GOOD), borrowed(&attributes).as_slice()),
            Err(ConsumeError::NoSignature)
        ));
        let attributes = sealed(GOOD, &[(attributes::SIGNATURE, "00")]);
        assert!(matches!(
            consumer.process(Some(GOOD), borrowed(&attributes).as_slice()),
            Err(ConsumeError::Unverified(_))
        ));
    }

    #[test]
    fn the_environment_requires_public_keys_unless_loudly_turned_off() {
        let public = signer().public_keys().next().unwrap().to_string();
        let env = |vars: Vec<(&'static str, String)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let missing = relay_trust_from_env(&Env::new(env(vec![]))).unwrap_err();
        assert!(
            missing.to_string().contains(vars::RELAY_PUBLIC_KEYS),
            "{missing}"
        );
        let trust = relay_trust_from_env(&Env::new(env(vec![(
            vars::RELAY_PUBLIC_KEYS,
            public.clone(),
        )])))
        .unwrap()
        .unwrap();
        assert_eq!(trust.max_age(), relay::DEFAULT_MAX_AGE);
        let short = relay_trust_from_env(&Env::new(env(vec![
            (vars::RELAY_PUBLIC_KEYS, public.clone()),
            (vars::RELAY_MAX_AGE_SECS, "3600".to_owned()),
        ])))
        .unwrap_err();
        assert!(
            short.to_string().contains(vars::RELAY_MAX_AGE_SECS),
            "{short}"
        );
        let off = relay_trust_from_env(&Env::new(env(vec![(
            vars::RELAY_VERIFICATION,
            "insecure-off".to_owned(),
        )])));
        assert!(off.unwrap().is_none());
        let typo = relay_trust_from_env(&Env::new(env(vec![(
            vars::RELAY_VERIFICATION,
            "off".to_owned(),
        )])));
        assert!(typo.is_err(), "only the loud value turns it off");
    }
}
