//! Configuration: read from the environment once at startup, validated, and refused with a
//! message naming the variable. Secrets are parsed into [`SecretSet`]s here and never printed.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOOKRELAY_QUEUE_URL` | required | the SQS queue; a URL ending `.fifo` is a FIFO queue |
//! | `HOOKRELAY_ENGINE_SECRETS` | unset | comma-separated engine webhook secrets |
//! | `HOOKRELAY_REKKO_SECRETS` | unset | comma-separated Rekko webhook secrets |
//! | `HOOKRELAY_STANDARD_SECRETS` | unset | comma-separated `whsec_<base64>` secrets |
//! | `HOOKRELAY_REPLAY_TOLERANCE_SECS` | 300 | how far a signed timestamp may be from now |
//! | `HOOKRELAY_MAX_BODY_BYTES` | 262144 | larger bodies are answered 413 |
//! | `HOOKRELAY_DEDUPE_WINDOW_SECS` | max(600, 2 × tolerance) | how long an instance remembers a published key |
//! | `HOOKRELAY_DEDUPE_CAPACITY` | 20000 | how many keys an instance remembers at most |
//! | `HOOKRELAY_METRICS_NAMESPACE` | hookrelay | CloudWatch namespace of the EMF metrics |
//!
//! Rules beyond types: at least one sender must have a secret; secrets are at least 16 bytes;
//! the dedupe window is at least twice the replay tolerance (a signed timestamp is accepted from
//! `tolerance` before to `tolerance` after now, so a captured request stays replayable for up to
//! twice the tolerance, and the window must outlast that); the body limit leaves room in an SQS
//! message for the envelope.

use std::num::NonZeroUsize;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::providers::Provider;
use crate::queue::SQS_MAX_MESSAGE_BYTES;
use crate::secret::{SecretSet, SigningSecret};

/// Environment variable names.
pub mod vars {
    /// The SQS queue URL.
    pub const QUEUE_URL: &str = "HOOKRELAY_QUEUE_URL";
    /// Engine secrets.
    pub const ENGINE_SECRETS: &str = "HOOKRELAY_ENGINE_SECRETS";
    /// Rekko secrets.
    pub const REKKO_SECRETS: &str = "HOOKRELAY_REKKO_SECRETS";
    /// Standard Webhooks secrets.
    pub const STANDARD_SECRETS: &str = "HOOKRELAY_STANDARD_SECRETS";
    /// Replay tolerance, seconds.
    pub const REPLAY_TOLERANCE_SECS: &str = "HOOKRELAY_REPLAY_TOLERANCE_SECS";
    /// Body size limit, bytes.
    pub const MAX_BODY_BYTES: &str = "HOOKRELAY_MAX_BODY_BYTES";
    /// In-memory dedupe window, seconds.
    pub const DEDUPE_WINDOW_SECS: &str = "HOOKRELAY_DEDUPE_WINDOW_SECS";
    /// In-memory dedupe capacity, keys.
    pub const DEDUPE_CAPACITY: &str = "HOOKRELAY_DEDUPE_CAPACITY";
    /// CloudWatch namespace for the EMF metrics.
    pub const METRICS_NAMESPACE: &str = "HOOKRELAY_METRICS_NAMESPACE";
    /// All three secret variables, for the "none configured" error.
    pub const ANY_SECRETS: &str =
        "HOOKRELAY_ENGINE_SECRETS, HOOKRELAY_REKKO_SECRETS, HOOKRELAY_STANDARD_SECRETS";
}

/// Room kept in an SQS message for the envelope fields and attributes around the body.
pub const ENVELOPE_ALLOWANCE_BYTES: usize = 16 * 1024;
const MIN_SECRET_BYTES: usize = 16;
const MAX_REPLAY_TOLERANCE_SECS: u64 = 86_400;

/// A configuration problem, naming the variable. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// The secrets of each sender; `None` disables that sender's route.
#[derive(Debug, Clone)]
pub struct SenderSecrets {
    /// Engine secrets (`/engine`).
    pub engine: Option<SecretSet>,
    /// Rekko secrets (`/rekko`).
    pub rekko: Option<SecretSet>,
    /// Standard Webhooks secrets (`/standard`).
    pub standard: Option<SecretSet>,
}

impl SenderSecrets {
    /// Reads the three `HOOKRELAY_*_SECRETS` variables through `lookup`; unset ones are `None`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            engine: secrets(vars::ENGINE_SECRETS, get(vars::ENGINE_SECRETS), plain_key)?,
            rekko: secrets(vars::REKKO_SECRETS, get(vars::REKKO_SECRETS), plain_key)?,
            standard: secrets(
                vars::STANDARD_SECRETS,
                get(vars::STANDARD_SECRETS),
                standard_key,
            )?,
        })
    }

    /// The secrets of `provider`, if its route is enabled.
    pub fn of(&self, provider: Provider) -> Option<&SecretSet> {
        match provider {
            Provider::Engine => self.engine.as_ref(),
            Provider::Rekko => self.rekko.as_ref(),
            Provider::Standard => self.standard.as_ref(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQS queue URL.
    pub queue_url: String,
    /// Each sender's secrets.
    pub secrets: SenderSecrets,
    /// How far a signed timestamp may be from now, either way.
    pub replay_tolerance: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// How long a published key is remembered by this instance.
    pub dedupe_window: Duration,
    /// How many published keys this instance remembers.
    pub dedupe_capacity: NonZeroUsize,
    /// CloudWatch namespace of the EMF metrics.
    pub metrics_namespace: String,
}

impl Config {
    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let queue_url =
            get(vars::QUEUE_URL).ok_or_else(|| invalid(vars::QUEUE_URL, "is required"))?;
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(invalid(vars::QUEUE_URL, "must be an http(s) SQS queue URL"));
        }

        let secrets = SenderSecrets::from_lookup(&lookup)?;
        if secrets.engine.is_none() && secrets.rekko.is_none() && secrets.standard.is_none() {
            return Err(invalid(
                vars::ANY_SECRETS,
                "no sender has a secret; set at least one of these",
            ));
        }

        let tolerance_secs = number(
            vars::REPLAY_TOLERANCE_SECS,
            get(vars::REPLAY_TOLERANCE_SECS),
            300,
        )?;
        if !(1..=MAX_REPLAY_TOLERANCE_SECS).contains(&tolerance_secs) {
            return Err(invalid(
                vars::REPLAY_TOLERANCE_SECS,
                format!("must be 1 to {MAX_REPLAY_TOLERANCE_SECS} seconds"),
            ));
        }
        let max_body = number(vars::MAX_BODY_BYTES, get(vars::MAX_BODY_BYTES), 262_144)?;
        let body_ceiling = (SQS_MAX_MESSAGE_BYTES - ENVELOPE_ALLOWANCE_BYTES) as u64;
        if !(1..=body_ceiling).contains(&max_body) {
            return Err(invalid(
                vars::MAX_BODY_BYTES,
                format!(
                    "must be 1 to {body_ceiling} bytes (an SQS message holds {SQS_MAX_MESSAGE_BYTES} including the envelope)"
                ),
            ));
        }
        let window_secs = number(
            vars::DEDUPE_WINDOW_SECS,
            get(vars::DEDUPE_WINDOW_SECS),
            600.max(2 * tolerance_secs),
        )?;
        if window_secs < 2 * tolerance_secs {
            return Err(invalid(
                vars::DEDUPE_WINDOW_SECS,
                format!(
                    "must be at least twice {} ({} s), or a replayed delivery could outlive its dedupe record",
                    vars::REPLAY_TOLERANCE_SECS,
                    2 * tolerance_secs
                ),
            ));
        }
        let capacity = number(vars::DEDUPE_CAPACITY, get(vars::DEDUPE_CAPACITY), 20_000)?;
        let dedupe_capacity = usize::try_from(capacity)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| invalid(vars::DEDUPE_CAPACITY, "must be at least 1"))?;

        let metrics_namespace = get(vars::METRICS_NAMESPACE)
            .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_owned());
        if metrics_namespace.len() > 255
            || metrics_namespace.starts_with("AWS/")
            || !metrics_namespace
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(invalid(
                vars::METRICS_NAMESPACE,
                "must be at most 255 printable ASCII characters and not start with AWS/",
            ));
        }

        Ok(Self {
            queue_url,
            metrics_namespace,
            secrets,
            replay_tolerance: Duration::from_secs(tolerance_secs),
            max_body_bytes: max_body as usize,
            dedupe_window: Duration::from_secs(window_secs),
            dedupe_capacity,
        })
    }
}

fn number(variable: &'static str, value: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| invalid(variable, "must be a whole number")),
    }
}

/// Engine and Rekko secrets are used as the UTF-8 bytes of the text, as both providers'
/// own verification examples do (`secret.encode()`).
fn plain_key(entry: &str) -> Result<Vec<u8>, &'static str> {
    Ok(entry.as_bytes().to_vec())
}

/// Standard Webhooks secrets are `whsec_` followed by the base64 key (the prefix is optional).
fn standard_key(entry: &str) -> Result<Vec<u8>, &'static str> {
    BASE64
        .decode(entry.strip_prefix("whsec_").unwrap_or(entry))
        .map_err(|_| "is not whsec_ followed by base64")
}

fn secrets(
    variable: &'static str,
    value: Option<String>,
    key_of: fn(&str) -> Result<Vec<u8>, &'static str>,
) -> Result<Option<SecretSet>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let mut set = Vec::new();
    for (index, entry) in value.split(',').map(str::trim).enumerate() {
        let ordinal = index + 1;
        if entry.is_empty() {
            return Err(invalid(
                variable,
                format!("secret #{ordinal} is empty (check for stray commas)"),
            ));
        }
        let key = key_of(entry)
            .map_err(|problem| invalid(variable, format!("secret #{ordinal} {problem}")))?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(invalid(
                variable,
                format!("secret #{ordinal} is shorter than {MIN_SECRET_BYTES} bytes"),
            ));
        }
        set.push(SigningSecret::from_key_bytes(&key));
    }
    Ok(SecretSet::new(set))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo";
    const ENGINE_SECRET: &str = "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_and_unset_senders_are_disabled() {
        let config = load(&[
            (vars::QUEUE_URL, QUEUE),
            (vars::ENGINE_SECRETS, ENGINE_SECRET),
        ])
        .unwrap();
        assert_eq!(config.replay_tolerance, Duration::from_secs(300));
        assert_eq!(config.max_body_bytes, 262_144);
        assert_eq!(config.dedupe_window, Duration::from_secs(600));
        assert_eq!(config.dedupe_capacity.get(), 20_000);
        assert_eq!(config.metrics_namespace, "hookrelay");
        assert!(config.secrets.of(Provider::Engine).is_some());
        assert!(config.secrets.of(Provider::Rekko).is_none());
        assert!(config.secrets.of(Provider::Standard).is_none());
    }

    #[test]
    fn the_default_dedupe_window_follows_a_raised_tolerance() {
        let config = load(&[
            (vars::QUEUE_URL, QUEUE),
            (vars::ENGINE_SECRETS, ENGINE_SECRET),
            (vars::REPLAY_TOLERANCE_SECS, "900"),
        ])
        .unwrap();
        assert_eq!(config.dedupe_window, Duration::from_secs(1800));
    }

    #[test]
    fn comma_separated_secrets_are_a_rotation() {
        let two = format!("{ENGINE_SECRET}, another-secret-of-32-characters!");
        let config = load(&[(vars::QUEUE_URL, QUEUE), (vars::ENGINE_SECRETS, &two)]).unwrap();
        assert_eq!(config.secrets.engine.unwrap().len(), 2);
        let standard = load(&[
            (vars::QUEUE_URL, QUEUE),
            (
                vars::STANDARD_SECRETS,
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .unwrap();
        assert_eq!(standard.secrets.standard.unwrap().len(), 2);
    }

    #[test]
    fn every_invalid_value_names_its_variable() {
        let ok_secret = (vars::ENGINE_SECRETS, ENGINE_SECRET);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![ok_secret], vars::QUEUE_URL),
            (
                vec![(vars::QUEUE_URL, "sqs://x"), ok_secret],
                vars::QUEUE_URL,
            ),
            (vec![(vars::QUEUE_URL, QUEUE)], vars::ANY_SECRETS),
            (
                vec![(vars::QUEUE_URL, QUEUE), (vars::ENGINE_SECRETS, "short")],
                vars::ENGINE_SECRETS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    (vars::REKKO_SECRETS, "a-long-enough-secret,,"),
                ],
                vars::REKKO_SECRETS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    (vars::STANDARD_SECRETS, "whsec_not*base64"),
                ],
                vars::STANDARD_SECRETS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::REPLAY_TOLERANCE_SECS, "5m"),
                ],
                vars::REPLAY_TOLERANCE_SECS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::REPLAY_TOLERANCE_SECS, "0"),
                ],
                vars::REPLAY_TOLERANCE_SECS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::MAX_BODY_BYTES, "0"),
                ],
                vars::MAX_BODY_BYTES,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::MAX_BODY_BYTES, "1048576"),
                ],
                vars::MAX_BODY_BYTES,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::DEDUPE_WINDOW_SECS, "599"),
                ],
                vars::DEDUPE_WINDOW_SECS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::REPLAY_TOLERANCE_SECS, "400"),
                    (vars::DEDUPE_WINDOW_SECS, "600"),
                ],
                vars::DEDUPE_WINDOW_SECS,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::DEDUPE_CAPACITY, "0"),
                ],
                vars::DEDUPE_CAPACITY,
            ),
            (
                vec![
                    (vars::QUEUE_URL, QUEUE),
                    ok_secret,
                    (vars::METRICS_NAMESPACE, "AWS/Lambda"),
                ],
                vars::METRICS_NAMESPACE,
            ),
        ];
        for (vars, expected) in cases {
            let error = load(&vars).unwrap_err();
            assert_eq!(error.variable, expected, "{vars:?}");
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let secret = "whsec_this-is-not-base64-but-is-secret";
        let error =
            load(&[(vars::QUEUE_URL, QUEUE), (vars::STANDARD_SECRETS, secret)]).unwrap_err();
        assert!(!error.to_string().contains("this-is-not"), "{error}");
        let config = load(&[
            (vars::QUEUE_URL, QUEUE),
            (vars::ENGINE_SECRETS, ENGINE_SECRET),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(ENGINE_SECRET) && debug.contains("[redacted]"),
            "{debug}"
        );
    }
}
