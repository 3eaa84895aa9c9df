//! Webhook secrets from AWS Secrets Manager, read once at cold start when
//! `HOOKRELAY_SECRETS_ARN` names a secret. Parsing and precedence are pure; [`fetch`] is the one
//! call to Secrets Manager.
//!
//! The secret is a JSON object with any of `engine`, `rekko`, `standard` and `origin` (the
//! optional front's origin values), each the same comma-separated list the
//! `HOOKRELAY_*_SECRETS` variables take:
//! `{"engine": "<hex secret>", "rekko": "<secret>", "standard": "whsec_..."}`.
//!
//! Why read at cold start rather than a CloudFormation dynamic reference: a dynamic reference
//! resolves at deploy time into a plain environment variable, visible to anyone who can read the
//! function's configuration, and a rotation needs a redeploy. Reading at cold start keeps the
//! secret out of the function's configuration and picks up a new value on every new instance.
//! The price is a GetSecretValue call per secret at cold start, both through one [`Client`] and
//! at once with the queue check (docs/operations.md has the measured cost).
//!
//! Setting a `HOOKRELAY_*_SECRETS` variable as well as `HOOKRELAY_SECRETS_ARN` is refused at
//! startup: two sources for one secret would leave it unclear which one is in force.
//!
//! The relay signing keys live in a secret of their own, named by
//! `HOOKRELAY_RELAY_SIGNING_KEYS_ARN`, whose `SecretString` is the `whsk_` list
//! ([`relay_signing_keys_over`]): only the queue writers' roles may read it, and only the
//! receiver's the webhook secrets' (docs/security.md).

use std::collections::BTreeMap;

use hookrelay::config::ConfigError;
use hookrelay::senders::SENDERS;
use hookrelay_ingest::settings::{RELAY_SIGNING_KEYS, RELAY_SIGNING_KEYS_ARN};

/// The variable naming the Secrets Manager secret.
pub const SECRETS_ARN: &str = "HOOKRELAY_SECRETS_ARN";

/// The secret's keys and the variables they stand for: each sender's, and `origin`, the optional
/// front's origin values (the receiver's `HOOKRELAY_ORIGIN_SECRETS`).
fn variables() -> impl Iterator<Item = (&'static str, &'static str)> {
    SENDERS
        .iter()
        .map(|sender| (sender.name, sender.secrets_variable))
        .chain([("origin", "HOOKRELAY_ORIGIN_SECRETS")])
}

/// The sender secrets held in the Secrets Manager secret, by `HOOKRELAY_*_SECRETS` name.
/// `Debug` prints only which senders are present.
#[derive(Clone, Default)]
pub struct ManagedSecrets {
    by_variable: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for ManagedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_variable.keys()).finish()
    }
}

fn invalid(problem: impl Into<String>) -> ConfigError {
    ConfigError::new(SECRETS_ARN, problem)
}

impl ManagedSecrets {
    /// The comma-separated secrets the secret holds for the sender whose variable is
    /// `variable` (e.g. `HOOKRELAY_ENGINE_SECRETS`), if any.
    pub fn get(&self, variable: &str) -> Option<&str> {
        self.by_variable.get(variable).map(String::as_str)
    }

    /// Parses the secret's string (never echoing it in an error).
    pub fn parse(secret_string: &str) -> Result<Self, ConfigError> {
        let object: BTreeMap<String, serde_json::Value> = serde_json::from_str(secret_string)
            .map_err(|_| {
                invalid("the secret is not a JSON object of sender names to secret strings")
            })?;
        let mut by_variable = BTreeMap::new();
        for (key, value) in object {
            let variable = variables()
                .find(|(name, _)| *name == key)
                .map(|(_, variable)| variable)
                .ok_or_else(|| {
                    invalid(format!(
                        "unknown key {key:?} in the secret (expected engine, rekko, standard, origin)"
                    ))
                })?;
            let serde_json::Value::String(text) = value else {
                return Err(invalid(format!(
                    "the secret's {key:?} value must be a string"
                )));
            };
            by_variable.insert(variable, text);
        }
        Ok(Self { by_variable })
    }

    /// A configuration lookup: the three secret variables come from this secret, everything
    /// else from `env`. Fails if `env` also sets one of the secret variables.
    pub fn layered_over(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<impl Fn(&str) -> Option<String>, ConfigError> {
        for (_, variable) in variables() {
            if env(variable).is_some_and(|v| !v.trim().is_empty()) {
                return Err(invalid(format!(
                    "set either {SECRETS_ARN} or {variable}, not both"
                )));
            }
        }
        Ok(move |name: &str| match self.by_variable.get(name) {
            Some(value) => Some(value.clone()),
            None if variables().any(|(_, variable)| variable == name) => None,
            None => env(name),
        })
    }
}

/// The Secrets Manager client, built once per process from its SDK configuration and shared by
/// both reads: building a client builds a TLS connector, trust store included.
pub use aws_sdk_secretsmanager::Client;

/// Reads the secret `arn` (its `SecretString`).
pub async fn fetch(client: &Client, arn: &str) -> Result<ManagedSecrets, ConfigError> {
    ManagedSecrets::parse(&secret_string(client, arn, SECRETS_ARN).await?)
}

/// A configuration lookup in which `HOOKRELAY_RELAY_SIGNING_KEYS` is the `SecretString` of the
/// secret `HOOKRELAY_RELAY_SIGNING_KEYS_ARN` names, when that is set (one GetSecretValue);
/// everything else comes from `env`. Setting both variables is refused.
pub async fn relay_signing_keys_over<L: Fn(&str) -> Option<String>>(
    client: &Client,
    env: L,
) -> Result<impl Fn(&str) -> Option<String>, ConfigError> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let keys = match set(RELAY_SIGNING_KEYS_ARN) {
        None => None,
        Some(_) if set(RELAY_SIGNING_KEYS).is_some() => {
            return Err(ConfigError::new(
                RELAY_SIGNING_KEYS_ARN,
                format!("set either {RELAY_SIGNING_KEYS_ARN} or {RELAY_SIGNING_KEYS}, not both"),
            ));
        }
        Some(arn) => Some(secret_string(client, arn.trim(), RELAY_SIGNING_KEYS_ARN).await?),
    };
    Ok(move |name: &str| match &keys {
        Some(keys) if name == RELAY_SIGNING_KEYS => Some(keys.clone()),
        _ => env(name),
    })
}

/// The `SecretString` of the secret `arn`; errors name `variable` and never the value.
async fn secret_string(
    client: &Client,
    arn: &str,
    variable: &'static str,
) -> Result<String, ConfigError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|error| {
            ConfigError::new(
                variable,
                format!(
                    "GetSecretValue failed: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(error)
                ),
            )
        })?;
    output
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::new(variable, "the secret has no SecretString"))
}

#[cfg(test)]
mod tests {
    use hookrelay::config::Env;
    use hookrelay::secret::SenderSecrets;
    use hookrelay::senders::{ENGINE, REKKO, STANDARD};

    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_secret_supplies_the_fronts_origin_values_too() {
        let managed = ManagedSecrets::parse(
            r#"{"engine":"an-engine-secret-of-some-length","origin":"0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap();
        assert!(managed.get("HOOKRELAY_ORIGIN_SECRETS").is_some());
        assert!(!format!("{managed:?}").contains("0123456789abcdef"));
        let both = managed.layered_over(env(&[("HOOKRELAY_ORIGIN_SECRETS", "x")]));
        assert!(both.is_err(), "one source for the origin values");
    }

    #[test]
    fn the_secret_supplies_sender_secrets_and_env_the_rest() {
        let managed = ManagedSecrets::parse(r#"{"engine":"an-engine-secret-of-some-length","standard":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#).unwrap();
        let lookup = managed
            .layered_over(env(&[(
                "HOOKRELAY_QUEUE_URL",
                "https://sqs.example/1/q.fifo",
            )]))
            .unwrap();
        let env = Env::new(lookup);
        let secrets = SenderSecrets::from_env(&env).unwrap();
        assert!(secrets.of(ENGINE).is_some() && secrets.of(STANDARD).is_some());
        assert!(secrets.of(REKKO).is_none());
        assert_eq!(
            env.text("HOOKRELAY_QUEUE_URL").as_deref(),
            Some("https://sqs.example/1/q.fifo")
        );
    }

    #[test]
    fn two_sources_for_secrets_are_refused() {
        let managed =
            ManagedSecrets::parse(r#"{"rekko":"a-rekko-secret-of-some-length"}"#).unwrap();
        let error = managed
            .layered_over(env(&[("HOOKRELAY_ENGINE_SECRETS", "x")]))
            .err()
            .unwrap();
        assert_eq!(error.variable, SECRETS_ARN);
        assert!(error.problem.contains("HOOKRELAY_ENGINE_SECRETS"));
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        for (text, expected) in [
            ("not json at all: hunter2", "not a JSON object"),
            (r#"{"engin":"hunter2hunter2hunter2"}"#, "unknown key"),
            (
                r#"{"engine":["hunter2hunter2hunter2"]}"#,
                "must be a string",
            ),
        ] {
            let error = ManagedSecrets::parse(text).unwrap_err();
            assert!(error.problem.contains(expected), "{error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let managed = ManagedSecrets::parse(r#"{"engine":"hunter2hunter2hunter2"}"#).unwrap();
        assert!(!format!("{managed:?}").contains("hunter2"));
    }
}
