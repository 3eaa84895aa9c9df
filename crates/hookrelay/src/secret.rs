//! Each sender's secrets, read from configuration text: comma-separated lists (more than one
//! during a rotation), parsed into pre-keyed [`SecretSet`]s by the sender's scheme, validated,
//! and never printed. Pure.

use crate::config::{ConfigError, Env};
use crate::senders::{SENDERS, Sender};
use crate::signature::{SecretSet, SigningSecret};

/// Secrets shorter than this are refused, to catch placeholder secrets at startup.
pub const MIN_SECRET_BYTES: usize = 16;

/// The secrets of each sender; a sender without any is disabled.
#[derive(Debug, Clone, Default)]
pub struct SenderSecrets {
    by_sender: Vec<(Sender, SecretSet)>,
}

impl SenderSecrets {
    /// Reads each sender's `secrets_variable`; unset ones leave that sender disabled.
    pub fn from_env<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let mut by_sender = Vec::new();
        for sender in SENDERS {
            if let Some(value) = env.text(sender.secrets_variable) {
                by_sender.push((sender, parse(sender, &value)?));
            }
        }
        Ok(Self { by_sender })
    }

    /// The secrets of `sender`, if it is enabled.
    pub fn of(&self, sender: Sender) -> Option<&SecretSet> {
        self.by_sender
            .iter()
            .find(|(s, _)| *s == sender)
            .map(|(_, secrets)| secrets)
    }

    /// Whether no sender has a secret.
    pub fn is_empty(&self) -> bool {
        self.by_sender.is_empty()
    }
}

/// The secret variables of every sender, comma-separated, for the "none configured" error.
pub fn any_secrets() -> &'static str {
    static ANY_SECRETS: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| SENDERS.map(|sender| sender.secrets_variable).join(", "));
    &ANY_SECRETS
}

fn parse(sender: Sender, value: &str) -> Result<SecretSet, ConfigError> {
    let variable = sender.secrets_variable;
    let mut set = Vec::new();
    for (index, entry) in value.split(',').map(str::trim).enumerate() {
        let ordinal = index + 1;
        if entry.is_empty() {
            return Err(ConfigError::new(
                variable,
                format!("secret #{ordinal} is empty (check for stray commas)"),
            ));
        }
        let key = sender.scheme.key_from_text(entry).map_err(|problem| {
            ConfigError::new(variable, format!("secret #{ordinal} {problem}"))
        })?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(
                variable,
                format!("secret #{ordinal} is shorter than {MIN_SECRET_BYTES} bytes"),
            ));
        }
        set.push(SigningSecret::from_key_bytes(&key));
    }
    // `split` yields at least one entry, so the set is never empty here.
    SecretSet::new(set).ok_or_else(|| ConfigError::new(variable, "has no secret"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::senders::{ENGINE, REKKO, STANDARD};

    const ENGINE_SECRET: &str = "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

    fn load(vars: &[(&str, &str)]) -> Result<SenderSecrets, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SenderSecrets::from_env(&Env::new(move |name: &str| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }))
    }

    #[test]
    fn comma_separated_secrets_are_a_rotation_and_unset_senders_are_disabled() {
        let two = format!("{ENGINE_SECRET}, another-secret-of-32-characters!");
        let secrets = load(&[("HOOKRELAY_ENGINE_SECRETS", &two)]).unwrap();
        assert_eq!(secrets.of(ENGINE).unwrap().len(), 2);
        assert!(secrets.of(REKKO).is_none() && secrets.of(STANDARD).is_none());
        let standard = load(&[(
            "HOOKRELAY_STANDARD_SECRETS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )])
        .unwrap();
        assert_eq!(standard.of(STANDARD).unwrap().len(), 2);
        assert!(load(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_secrets_name_their_variable_and_never_echo_the_value() {
        for (variable, value) in [
            ("HOOKRELAY_ENGINE_SECRETS", "short"),
            ("HOOKRELAY_REKKO_SECRETS", "a-long-enough-secret,,"),
            (
                "HOOKRELAY_STANDARD_SECRETS",
                "whsec_not*base64-but-is-secret",
            ),
        ] {
            let error = load(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(!error.to_string().contains("base64-but"), "{error}");
        }
    }
}
