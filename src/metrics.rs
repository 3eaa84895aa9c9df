//! CloudWatch metrics as Embedded Metric Format (EMF) lines: one JSON document per request,
//! written to stdout, which Lambda ships to CloudWatch Logs, where the metrics are extracted. No
//! API calls on the request path. Building a document is pure; only [`emit`] writes.
//!
//! Metrics (namespace `hookrelay` unless `HOOKRELAY_METRICS_NAMESPACE` says otherwise):
//!
//! | metric | unit | dimension sets | when |
//! |---|---|---|---|
//! | `Accepted` | Count | `provider`, and none | SQS accepted the event |
//! | `Duplicate` | Count | `provider`, and none | answered `duplicate` |
//! | `Rejected` | Count | `provider, reason` and `reason` | any 4xx; `reason` is the error code |
//! | `PublishFailures` | Count | `provider`, and none | SQS failed or timed out (503) |
//! | `PublishLatency` | Milliseconds | `provider`, and none | each SQS send, successful or not |
//!
//! `provider` is the route's sender, or `none` for paths that route nowhere. The `reason` alone
//! set lets an alarm watch e.g. `invalid_signature` across all senders.
//!
//! Rendering is `hookrelay_ingest::emf`'s; this module decides what one request reports.

use std::collections::BTreeMap;
use std::time::Duration;

use hookrelay_ingest::emf::{self, Definition, Member, render};

/// What one request contributes to the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RequestMetrics {
    /// Published.
    Accepted {
        /// The sender.
        provider: &'static str,
        /// The SQS send's duration.
        publish_latency: Duration,
    },
    /// A repeat, not sent.
    Duplicate {
        /// The sender.
        provider: &'static str,
    },
    /// Refused with a 4xx.
    Rejected {
        /// The sender, or `none`.
        provider: &'static str,
        /// The error code of the response.
        reason: &'static str,
    },
    /// SQS failed or timed out.
    PublishFailed {
        /// The sender.
        provider: &'static str,
        /// How long the failed send took.
        publish_latency: Duration,
    },
}

const BY_PROVIDER: &[&[&str]] = &[&["provider"], &[]];
const BY_PROVIDER_AND_REASON: &[&[&str]] = &[&["provider", "reason"], &["reason"]];

/// The EMF document for one request, as one line of JSON (no newline).
pub fn document(namespace: &str, timestamp_ms: i64, metrics: &RequestMetrics) -> String {
    use RequestMetrics::{Accepted, Duplicate, PublishFailed, Rejected};
    let (counter, provider, reason, publish_latency) = match *metrics {
        Accepted {
            provider,
            publish_latency,
        } => ("Accepted", provider, None, Some(publish_latency)),
        Duplicate { provider } => ("Duplicate", provider, None, None),
        Rejected { provider, reason } => ("Rejected", provider, Some(reason), None),
        PublishFailed {
            provider,
            publish_latency,
        } => ("PublishFailures", provider, None, Some(publish_latency)),
    };
    let mut definitions = vec![Definition {
        name: counter,
        unit: "Count",
    }];
    let mut members = BTreeMap::from([
        (counter, Member::Value(1.0)),
        ("provider", Member::Dimension(provider)),
    ]);
    if let Some(latency) = publish_latency {
        definitions.push(Definition {
            name: "PublishLatency",
            unit: "Milliseconds",
        });
        members.insert("PublishLatency", Member::Value(millis(latency)));
    }
    let dimensions = match reason {
        Some(reason) => {
            members.insert("reason", Member::Dimension(reason));
            BY_PROVIDER_AND_REASON
        }
        None => BY_PROVIDER,
    };
    render(namespace, timestamp_ms, dimensions, definitions, members)
}

/// Writes the document for one request to stdout as its own line. A write failure is ignored:
/// losing a metric must never fail a delivery.
pub fn emit(namespace: &str, metrics: &RequestMetrics) {
    emf::emit_line(&document(namespace, emf::now_ms(), metrics));
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookrelay_ingest::emf::validate as validate_emf;

    const T: i64 = 1_771_455_600_000;

    #[test]
    fn every_kind_of_document_is_valid_emf() {
        let latency = Duration::from_micros(12_500);
        for metrics in [
            RequestMetrics::Accepted {
                provider: "engine",
                publish_latency: latency,
            },
            RequestMetrics::Duplicate { provider: "rekko" },
            RequestMetrics::Rejected {
                provider: "none",
                reason: "unknown_route",
            },
            RequestMetrics::Rejected {
                provider: "standard",
                reason: "invalid_signature",
            },
            RequestMetrics::PublishFailed {
                provider: "engine",
                publish_latency: latency,
            },
        ] {
            let line = document(emf::DEFAULT_NAMESPACE, T, &metrics);
            validate_emf(&line).unwrap_or_else(|e| panic!("{metrics:?}: {e}\n{line}"));
        }
    }

    #[test]
    fn documents_carry_the_metric_its_dimensions_and_latency() {
        let line = document(
            "hookrelay",
            T,
            &RequestMetrics::Accepted {
                provider: "engine",
                publish_latency: Duration::from_micros(12_500),
            },
        );
        let doc = validate_emf(&line).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], T);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "hookrelay"
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["provider"], []])
        );
        assert_eq!(
            (doc["provider"].as_str(), doc["Accepted"].as_f64()),
            (Some("engine"), Some(1.0))
        );
        assert_eq!(doc["PublishLatency"].as_f64(), Some(12.5));

        let line = document(
            "hookrelay",
            T,
            &RequestMetrics::Rejected {
                provider: "rekko",
                reason: "invalid_signature",
            },
        );
        let doc = validate_emf(&line).unwrap();
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["provider", "reason"], ["reason"]])
        );
        assert_eq!(
            (doc["reason"].as_str(), doc["Rejected"].as_f64()),
            (Some("invalid_signature"), Some(1.0))
        );
        assert!(doc.get("PublishLatency").is_none());
    }
}
