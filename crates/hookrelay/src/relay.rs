//! The relay signature: hookrelay's own Ed25519 signature over every message it queues, so a
//! consumer holding only public keys can refuse anything hookrelay did not write. Signing
//! ([`RelaySigner`]) is written beside verifying ([`RelayTrust`]). Pure: the caller passes the
//! time.
//!
//! The form is Standard Webhooks' asymmetric `v1a` scheme, carried in three message attributes
//! instead of HTTP headers:
//! - `relay_id`: the envelope's `id` when it holds no `.`, otherwise the lowercase hex SHA-256
//!   of it (the spec forbids `.` in the signed id, since `.` separates the signed parts);
//! - `relay_timestamp`: Unix seconds when the message was sealed;
//! - `relay_signature`: `v1a,<base64 Ed25519 signature>`, one entry per signing key, separated
//!   by spaces (two during a rotation).
//!
//! The signed bytes are `{relay_id}.{relay_timestamp}.{message body}`: the whole envelope, so
//! no field (`type`, `market_id`, `sequence`, `via`, `data`...) can be relabelled, and the
//! consumer checks that `relay_id` belongs to the body's `id`, so a signature can't be moved to
//! another envelope. Keys are `whsk_<base64>` (the 32-byte Ed25519 seed; the 64-byte
//! seed-and-public-key form is accepted too) and `whpk_<base64>` (the 32-byte public key).
//! Verification is strict (`verify_strict`: no small-order keys, no malleable signatures) and
//! any trusted key may match.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Message attribute names of the relay signature.
pub mod attributes {
    /// The signed id: the envelope id, or its SHA-256 hex when it holds a `.`.
    pub const RELAY_ID: &str = "relay_id";
    /// When the message was sealed, Unix seconds.
    pub const RELAY_TIMESTAMP: &str = "relay_timestamp";
    /// Space-separated `v1a,<base64>` signatures, one per signing key.
    pub const RELAY_SIGNATURE: &str = "relay_signature";
}

/// The prefix of a relay signing (private) key.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// The prefix of a relay public key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// The version tag of each signature entry.
const VERSION: &str = "v1a";

/// A consumer's default maximum age of a message's relay timestamp: 30 days. A message keeps its
/// relay timestamp for life, and on a FIFO queue SQS restarts its retention at each move: up to
/// 4 days in the events queue, 14 in the dead-letter queue (its retention restarts on the move),
/// and 4 more once redriven, 22 days in all, plus a margin for a late redrive. So one full
/// backlog, dead-letter and redrive cycle is never refused for age; a second cycle may be (a
/// refusal for age is genuine and fails to the DLQ again: raise the maximum to consume it). It
/// bounds the replay of a captured message, not freshness: consumers use the envelope id for
/// idempotency.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);
/// The smallest maximum age a consumer may configure: the events queue's retention.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(4 * 86_400);
/// How far in the future a relay timestamp may be (clock differences between hosts).
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);
/// The most `v1a` entries a `relay_signature` may hold. Each entry is checked against each
/// trusted key over the whole body, so an unbounded list would let anyone who can write to the
/// queue make one message cost seconds of consumer CPU; a rotation needs two.
pub const MAX_SIGNATURE_ENTRIES: usize = 4;
/// The longest `relay_signature` accepted: [`MAX_SIGNATURE_ENTRIES`] entries of `v1a,` and 88
/// base64 characters, separated by spaces.
pub const MAX_SIGNATURE_ATTRIBUTE_LEN: usize = MAX_SIGNATURE_ENTRIES * (4 + 88 + 1) - 1;

/// Why a relay key could not be read. Never echoes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key does not start with the expected prefix.
    #[error("each key must start with {0}")]
    Prefix(&'static str),
    /// The part after the prefix is not base64, or has the wrong length.
    #[error("a {0} key must be base64 of {1} bytes after its prefix")]
    Encoding(&'static str, &'static str),
    /// A public key that is not a valid Ed25519 point, or is of small order.
    #[error("a public key is not a usable Ed25519 key")]
    Unusable,
    /// A 64-byte private key whose second half is not the public key of its first.
    #[error("a 64-byte whsk_ key's second half must be the public key of its first")]
    Inconsistent,
    /// The list holds no key.
    #[error("no key is given")]
    Empty,
}

/// One relay signing key. `Debug` prints only its public half.
#[derive(Clone)]
pub struct RelaySigningKey {
    key: SigningKey,
}

impl RelaySigningKey {
    /// Reads a `whsk_<base64>` key (32-byte seed, or 64 bytes: seed then public key).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(KeyError::Prefix(SIGNING_KEY_PREFIX))?;
        let invalid = KeyError::Encoding(SIGNING_KEY_PREFIX, "32 or 64");
        let bytes = BASE64.decode(encoded).map_err(|_| invalid.clone())?;
        let key = match bytes.len() {
            32 => SigningKey::from_bytes(&bytes.try_into().map_err(|_| invalid)?),
            64 => {
                let pair: [u8; 64] = bytes.try_into().map_err(|_| invalid)?;
                SigningKey::from_keypair_bytes(&pair).map_err(|_| KeyError::Inconsistent)?
            }
            _ => return Err(invalid),
        };
        Ok(Self { key })
    }

    /// A key from its 32-byte seed (key generation, tests).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The key in its `whsk_` form (32-byte seed), for key generation only.
    pub fn to_text(&self) -> String {
        format!("{SIGNING_KEY_PREFIX}{}", BASE64.encode(self.key.to_bytes()))
    }

    /// Its public half, which consumers trust.
    pub fn public_key(&self) -> RelayPublicKey {
        RelayPublicKey {
            key: self.key.verifying_key(),
        }
    }
}

impl fmt::Debug for RelaySigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelaySigningKey(public {})", self.public_key())
    }
}

/// One relay public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RelayPublicKey {
    key: VerifyingKey,
}

impl RelayPublicKey {
    /// Reads a `whpk_<base64 of 32 bytes>` key, refusing small-order points (which a strict
    /// verifier could never accept a signature from anyway).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(KeyError::Prefix(PUBLIC_KEY_PREFIX))?;
        let invalid = KeyError::Encoding(PUBLIC_KEY_PREFIX, "32");
        let bytes: [u8; 32] = BASE64
            .decode(encoded)
            .map_err(|_| invalid.clone())?
            .try_into()
            .map_err(|_| invalid)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Unusable)?;
        if key.is_weak() {
            return Err(KeyError::Unusable);
        }
        Ok(Self { key })
    }
}

impl fmt::Display for RelayPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_KEY_PREFIX}{}",
            BASE64.encode(self.key.as_bytes())
        )
    }
}

impl fmt::Debug for RelayPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayPublicKey({self})")
    }
}

/// Keys in a list separated by spaces, commas or newlines (how variables, parameters and
/// secrets hold more than one during a rotation); the caller refuses an empty list.
fn key_list<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, KeyError>,
) -> Result<Vec<T>, KeyError> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(parse)
        .collect()
}

/// The relay attributes one message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySignature {
    /// `relay_id`.
    pub id: String,
    /// `relay_timestamp`, Unix seconds.
    pub timestamp: String,
    /// `relay_signature`: `v1a,<base64>` entries separated by spaces.
    pub signatures: String,
}

/// The id a message is signed under: the envelope id, or its SHA-256 hex when it holds a `.`.
pub fn signed_id(envelope_id: &str) -> std::borrow::Cow<'_, str> {
    if envelope_id.contains('.') {
        hex::encode(Sha256::digest(envelope_id.as_bytes())).into()
    } else {
        envelope_id.into()
    }
}

/// The bytes a relay signature covers.
fn signed_content(id: &str, timestamp: &str, body: &str) -> Vec<u8> {
    [
        id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        body.as_bytes(),
    ]
    .concat()
}

/// The keys hookrelay seals messages with: one, or two during a rotation (each message then
/// carries a signature from each).
#[derive(Clone, Debug)]
pub struct RelaySigner {
    keys: Vec<RelaySigningKey>,
}

impl RelaySigner {
    /// Signing keys from a list of `whsk_` keys.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        key_list(text, RelaySigningKey::parse).and_then(Self::new)
    }

    /// A signer with the given keys (at least one).
    pub fn new(keys: Vec<RelaySigningKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// The public halves of the signing keys.
    pub fn public_keys(&self) -> impl Iterator<Item = RelayPublicKey> + '_ {
        self.keys.iter().map(RelaySigningKey::public_key)
    }

    /// Signs `body`, the message of the envelope `envelope_id`, sealed at `unix_seconds`.
    pub fn sign(&self, envelope_id: &str, unix_seconds: i64, body: &str) -> RelaySignature {
        let id = signed_id(envelope_id).into_owned();
        let timestamp = unix_seconds.to_string();
        let content = signed_content(&id, &timestamp, body);
        let signatures = self
            .keys
            .iter()
            .map(|key| {
                let signature: Signature = key.key.sign(&content);
                format!("{VERSION},{}", BASE64.encode(signature.to_bytes()))
            })
            .collect::<Vec<_>>()
            .join(" ");
        RelaySignature {
            id,
            timestamp,
            signatures,
        }
    }
}

/// Why a message's relay signature was refused. The variants name what failed, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// A relay attribute is missing: the message was not written by hookrelay (or by a version
    /// before relay signatures).
    #[error("the message has no {0} attribute: it was not sealed by hookrelay")]
    Missing(&'static str),
    /// `relay_timestamp` is not Unix seconds.
    #[error("relay_timestamp is not a Unix timestamp in seconds")]
    MalformedTimestamp,
    /// The message is older than the maximum age.
    #[error("the message was sealed {age_secs} s ago, more than the maximum age of {max_secs} s")]
    TooOld {
        /// How old it is.
        age_secs: u64,
        /// The configured maximum.
        max_secs: u64,
    },
    /// The relay timestamp is further in the future than clocks can differ.
    #[error("relay_timestamp is more than {0} s in the future")]
    FromTheFuture(u64),
    /// No `v1a` entry verifies under any trusted key.
    #[error("no relay signature verifies under a trusted public key")]
    Untrusted,
    /// `relay_signature` holds more entries (or characters) than hookrelay ever writes; refused
    /// before any is checked.
    #[error("relay_signature holds more than {0} entries")]
    TooManySignatures(usize),
    /// The signature is genuine but for another envelope id than the body's.
    #[error("relay_id does not belong to the envelope's id")]
    IdMismatch,
}

impl RelayError {
    /// Whether only the message's age failed: the signature itself is genuine. Consumers must
    /// fail such a message (it goes to the DLQ) rather than drop it.
    pub fn is_age_only(&self) -> bool {
        matches!(self, Self::TooOld { .. })
    }

    /// Whether the signature verified and only its timestamp was refused (too old, from the
    /// future, or not Unix seconds): the message is one hookrelay sealed. Fail it to the DLQ;
    /// never drop it.
    pub fn is_genuine(&self) -> bool {
        matches!(
            self,
            Self::TooOld { .. } | Self::FromTheFuture(_) | Self::MalformedTimestamp
        )
    }
}

/// The relay attributes as a consumer received them (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceivedRelaySignature<'a> {
    /// `relay_id`.
    pub id: Option<&'a str>,
    /// `relay_timestamp`.
    pub timestamp: Option<&'a str>,
    /// `relay_signature`.
    pub signatures: Option<&'a str>,
}

/// What a consumer trusts: the relay public keys, and how old a sealed message may be.
#[derive(Clone, Debug)]
pub struct RelayTrust {
    keys: Vec<RelayPublicKey>,
    max_age: Duration,
}

impl RelayTrust {
    /// Trusts a list of `whpk_` keys, with the [`DEFAULT_MAX_AGE`].
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        key_list(text, RelayPublicKey::parse).and_then(Self::new)
    }

    /// Trusts `keys` (at least one), with the [`DEFAULT_MAX_AGE`].
    pub fn new(keys: Vec<RelayPublicKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self {
            keys,
            max_age: DEFAULT_MAX_AGE,
        })
    }

    /// The same keys with another maximum age (at least [`MIN_MAX_AGE`], else `None`: a
    /// shorter one would refuse a backlog the queue still holds).
    pub fn with_max_age(self, max_age: Duration) -> Option<Self> {
        (max_age >= MIN_MAX_AGE).then_some(Self { max_age, ..self })
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[RelayPublicKey] {
        &self.keys
    }

    /// The maximum age.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Whether `key` is trusted.
    pub fn trusts(&self, key: &RelayPublicKey) -> bool {
        self.keys.contains(key)
    }

    /// Checks the signature over `body` and the age at `now_unix_seconds`, before the body is
    /// parsed. The caller then checks the parsed envelope's id with [`VerifiedRelay::check_id`].
    pub fn verify(
        &self,
        received: ReceivedRelaySignature<'_>,
        body: &str,
        now_unix_seconds: i64,
    ) -> Result<VerifiedRelay, RelayError> {
        let id = received
            .id
            .ok_or(RelayError::Missing(attributes::RELAY_ID))?;
        let timestamp = received
            .timestamp
            .ok_or(RelayError::Missing(attributes::RELAY_TIMESTAMP))?;
        let signatures = received
            .signatures
            .ok_or(RelayError::Missing(attributes::RELAY_SIGNATURE))?;
        if signatures.len() > MAX_SIGNATURE_ATTRIBUTE_LEN
            || signatures.split(' ').count() > MAX_SIGNATURE_ENTRIES
        {
            return Err(RelayError::TooManySignatures(MAX_SIGNATURE_ENTRIES));
        }
        let content = signed_content(id, timestamp, body);
        let genuine = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1a,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .filter_map(|bytes| Signature::from_slice(&bytes).ok())
            .any(|signature| {
                self.keys
                    .iter()
                    .any(|key| key.key.verify_strict(&content, &signature).is_ok())
            });
        if !genuine {
            return Err(RelayError::Untrusted);
        }
        // Only a genuine timestamp is judged for age, so an age failure means a real message.
        let sealed_at: i64 = timestamp
            .parse()
            .ok()
            .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(RelayError::MalformedTimestamp)?;
        let age = now_unix_seconds.saturating_sub(sealed_at);
        if age < 0 && age.unsigned_abs() > MAX_FUTURE_SKEW.as_secs() {
            return Err(RelayError::FromTheFuture(MAX_FUTURE_SKEW.as_secs()));
        }
        if age > 0 && age.unsigned_abs() > self.max_age.as_secs() {
            return Err(RelayError::TooOld {
                age_secs: age.unsigned_abs(),
                max_secs: self.max_age.as_secs(),
            });
        }
        Ok(VerifiedRelay { id: id.to_owned() })
    }
}

/// A relay signature that verified; the envelope's id must still match it.
#[derive(Debug)]
#[must_use = "the envelope's id must be checked against the signed id"]
pub struct VerifiedRelay {
    id: String,
}

impl VerifiedRelay {
    /// Checks that the signed id belongs to `envelope_id`, the id of the parsed body.
    pub fn check_id(self, envelope_id: &str) -> Result<(), RelayError> {
        if signed_id(envelope_id) == self.id.as_str() {
            Ok(())
        } else {
            Err(RelayError::IdMismatch)
        }
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
