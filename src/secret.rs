//! Webhook signing secrets: parsed once from configuration, held pre-keyed, never printed.
//!
//! A [`SigningSecret`] keeps an HMAC-SHA256 instance already keyed with the secret, so each
//! verification clones a ready state instead of re-deriving the key pads. Its `Debug` prints
//! `[redacted]`; nothing in this crate can turn it back into text.

use std::fmt;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// One HMAC-SHA256 key a sender may sign with.
#[derive(Clone)]
pub struct SigningSecret {
    keyed: HmacSha256,
}

impl SigningSecret {
    /// A secret from its key bytes (the secret string's UTF-8 bytes for the engine and Rekko,
    /// the base64-decoded part after `whsec_` for Standard Webhooks).
    pub fn from_key_bytes(key: &[u8]) -> Self {
        // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
        let keyed = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { keyed }
    }

    /// A fresh MAC state keyed with this secret, ready for `update`.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// The secrets one sender may currently sign with: more than one during a rotation.
/// Never empty: a sender without secrets is disabled rather than given an empty set.
#[derive(Clone, Debug)]
pub struct SecretSet {
    secrets: Vec<SigningSecret>,
}

impl SecretSet {
    /// A set from at least one secret; `None` when `secrets` is empty.
    pub fn new(secrets: Vec<SigningSecret>) -> Option<Self> {
        (!secrets.is_empty()).then_some(Self { secrets })
    }

    /// The secrets, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &SigningSecret> {
        self.secrets.iter()
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Always false: a set is never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
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
    }

    #[test]
    fn an_empty_set_cannot_be_built() {
        assert!(SecretSet::new(Vec::new()).is_none());
    }
}
