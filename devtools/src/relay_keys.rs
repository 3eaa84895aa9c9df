//! The test kit's relay keys: one fixed signing key pair that every spawned receiver and bridge
//! seals with and every test consumer trusts, a foreign key for forgeries, and fresh key pairs
//! for `hookrelay-dev relay-keygen`. The fixed pair is public (it is in this file): never deploy it.

use hookrelay::relay::{RelaySigner, RelaySigningKey, RelayTrust};
use hookrelay_ingest::settings::{RELAY_PUBLIC_KEYS, RELAY_SIGNING_KEYS};

/// The seed of the test kit's signing key.
const TEST_SEED: [u8; 32] = *b"hookrelay test kit relay key #1!";
/// The seed of a key no test consumer trusts.
const FOREIGN_SEED: [u8; 32] = *b"an attacker's own ed25519 key!!!";

/// The test kit's signing key.
pub fn signing_key() -> RelaySigningKey {
    RelaySigningKey::from_seed(TEST_SEED)
}

/// The test kit's signer (one key).
pub fn signer() -> RelaySigner {
    RelaySigner::new(vec![signing_key()]).unwrap_or_else(|_| unreachable!("one key"))
}

/// A signer with a key no test consumer trusts.
pub fn foreign_signer() -> RelaySigner {
    RelaySigner::new(vec![RelaySigningKey::from_seed(FOREIGN_SEED)])
        .unwrap_or_else(|_| unreachable!("one key"))
}

/// What a test consumer trusts: the test kit's public key, default maximum age.
pub fn trust() -> RelayTrust {
    RelayTrust::new(vec![signing_key().public_key()]).unwrap_or_else(|_| unreachable!("one key"))
}

/// The receiver's and the bridge's relay variables for the test kit's key pair.
pub fn env() -> [(&'static str, String); 2] {
    [
        (RELAY_SIGNING_KEYS, signing_key().to_text()),
        (RELAY_PUBLIC_KEYS, signing_key().public_key().to_string()),
    ]
}

/// A configuration lookup: `vars`, over the test kit's relay variables ([`env`]), so every
/// configuration test has a valid key pair unless it sets its own.
pub fn lookup_over(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = env()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .chain(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
        .collect();
    move |name| map.get(name).cloned()
}

/// A new signing key from the operating system's random source.
pub fn generate() -> Result<RelaySigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| format!("no random source: {error}"))?;
    Ok(RelaySigningKey::from_seed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(
            RelaySigningKey::parse(&a.to_text()).unwrap().public_key(),
            a.public_key()
        );
        assert!(!trust().trusts(&foreign_signer().public_keys().next().unwrap()));
    }
}
