//! The configuration the receiver and the bridge both read, under the same names and with the
//! same rules, so one value means one thing in both processes. Each process's own settings live
//! in its `config` module; the vocabulary (error type, lookup helper, redaction) is the
//! `hookrelay` library's `config`.
//!
//! Where a default differs between the two, the constant's name says whose it is and its doc
//! says why (the dedupe window: the receiver's follows its replay window, the bridge's the
//! streams' replay after a reconnect).

use hookrelay::config::{ConfigError, Env};

use crate::emf::DEFAULT_NAMESPACE;

/// The SQS queue URL; a URL ending in `.fifo` is a FIFO queue.
pub const QUEUE_URL: &str = "HOOKRELAY_QUEUE_URL";
/// How long a process remembers a published key, seconds.
pub const DEDUPE_WINDOW_SECS: &str = "HOOKRELAY_DEDUPE_WINDOW_SECS";
/// How many published keys a process remembers at most.
pub const DEDUPE_CAPACITY: &str = "HOOKRELAY_DEDUPE_CAPACITY";
/// CloudWatch namespace of the EMF metrics.
pub const METRICS_NAMESPACE: &str = "HOOKRELAY_METRICS_NAMESPACE";

/// [`QUEUE_URL`], required, an http(s) URL.
pub fn queue_url<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<String, ConfigError> {
    let url = env
        .text(QUEUE_URL)
        .ok_or_else(|| ConfigError::new(QUEUE_URL, "is required"))?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ConfigError::new(
            QUEUE_URL,
            "must be an http(s) SQS queue URL",
        ));
    }
    Ok(url)
}

/// [`METRICS_NAMESPACE`], [`DEFAULT_NAMESPACE`] when unset; CloudWatch's rules for a namespace.
pub fn metrics_namespace<L: Fn(&str) -> Option<String>>(
    env: &Env<L>,
) -> Result<String, ConfigError> {
    let namespace = env
        .text(METRICS_NAMESPACE)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    if namespace.len() > 255
        || namespace.starts_with("AWS/")
        || !namespace.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    {
        return Err(ConfigError::new(
            METRICS_NAMESPACE,
            "must be at most 255 printable ASCII characters and not start with AWS/",
        ));
    }
    Ok(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_queue_url_is_required_and_http() {
        assert_eq!(queue_url(&env(&[])).unwrap_err().variable, QUEUE_URL);
        assert_eq!(
            queue_url(&env(&[(QUEUE_URL, "sqs://x")]))
                .unwrap_err()
                .variable,
            QUEUE_URL
        );
        assert!(queue_url(&env(&[(QUEUE_URL, "https://sqs.example/1/q.fifo")])).is_ok());
    }

    #[test]
    fn the_namespace_follows_cloudwatch_rules() {
        assert_eq!(metrics_namespace(&env(&[])).unwrap(), "hookrelay");
        assert!(metrics_namespace(&env(&[(METRICS_NAMESPACE, "AWS/Lambda")])).is_err());
    }
}
