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
//! | `Rejected` | Count | `provider, reason`, `reason`, and none | any 4xx, and 503 `in_progress`; `reason` is the error code |
//! | `PublishFailures` | Count | `provider`, and none | SQS failed or timed out (503) |
//! | `PublishLatency` | Milliseconds | `provider`, and none | each SQS send, successful or not |
//! | `StoreLatency` | Milliseconds | `provider`, and none | a delivery's idempotency store calls, in all |
//! | `StoreFailures` | Count | `provider`, and none | store calls that failed or timed out (the delivery went on) |
//! | `DedupeConflicts` | Count | `provider`, and none | a key already held other content; published under its own key |
//! | `AmbiguousPublish` | Count | `provider`, and none | attempts of a send (failed in the end or retried inside the SDK) that SQS may have accepted although their answer was lost: each can be a second copy on a standard queue |
//! | `InProgress` | Count | `provider`, and none | answered 503 `in_progress`: another attempt holds the claim |
//! | `OutOfOrder` | Count | `provider`, and none | an engine sequence below its stream's highest (gap detection on; never a gap) |
//!
//! `provider` is the route's sender, or `none` for paths that route nowhere. The `reason` alone
//! set lets an alarm watch e.g. `invalid_signature` across all senders, and the set of none
//! every refusal at once (`RefusalsAlarm`: a flood, or a sender whose secret changed).
//!
//! The store's figures are a second document, written only for requests that made a store call
//! or hit one of those cases, so a receiver without a store writes exactly what it wrote before.
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

/// What one request contributes to the idempotency figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMetrics {
    /// Time in store calls, when any was made.
    pub latency: Option<Duration>,
    /// Store calls that failed.
    pub failures: u32,
    /// Whether the key held other content.
    pub conflict: bool,
    /// Attempts of the send SQS may have queued although their answer was lost (a failed send's
    /// and a successful send's earlier attempts alike): possible copies on a standard queue.
    pub ambiguous_attempts: u32,
    /// Whether the answer was 503 `in_progress`.
    pub in_progress: bool,
    /// Whether its engine sequence arrived below its stream's highest.
    pub out_of_order: bool,
    /// Whether the publish may have put a second copy in the queue that SQS won't drop: an
    /// earlier attempt of the same content may have sent it (past FIFO's five minutes, or on a
    /// standard queue).
    pub possible_copy: bool,
    /// Whether the event may be in the queue while the store recorded nothing for it.
    pub unrecorded: bool,
}

/// The idempotency document for one request from `provider`, or `None` when there is nothing to
/// report.
pub fn store_document(
    namespace: &str,
    timestamp_ms: i64,
    provider: &'static str,
    metrics: &StoreMetrics,
) -> Option<String> {
    let mut definitions = Vec::new();
    let mut members = BTreeMap::from([("provider", Member::Dimension(provider))]);
    if let Some(latency) = metrics.latency {
        definitions.push(Definition {
            name: "StoreLatency",
            unit: "Milliseconds",
        });
        members.insert("StoreLatency", Member::Value(millis(latency)));
    }
    for (name, count) in [
        ("StoreFailures", metrics.failures),
        ("DedupeConflicts", u32::from(metrics.conflict)),
        ("AmbiguousPublish", metrics.ambiguous_attempts),
        ("InProgress", u32::from(metrics.in_progress)),
        ("OutOfOrder", u32::from(metrics.out_of_order)),
        ("PossibleCopies", u32::from(metrics.possible_copy)),
        ("UnrecordedSends", u32::from(metrics.unrecorded)),
    ] {
        if count > 0 {
            definitions.push(Definition {
                name,
                unit: "Count",
            });
            members.insert(name, Member::Value(f64::from(count)));
        }
    }
    (!definitions.is_empty())
        .then(|| render(namespace, timestamp_ms, BY_PROVIDER, definitions, members))
}

const BY_PROVIDER: &[&[&str]] = &[&["provider"], &[]];
const BY_PROVIDER_AND_REASON: &[&[&str]] = &[&["provider", "reason"], &["reason"], &[]];

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

/// Writes the documents for one request to stdout, each as its own line. A write failure is
/// ignored: losing a metric must never fail a delivery.
pub fn emit(namespace: &str, metrics: &RequestMetrics, store: &StoreMetrics) {
    let now = emf::now_ms();
    emf::emit_line(&document(namespace, now, metrics));
    if let Some(line) = store_document(namespace, now, metrics.provider(), store) {
        emf::emit_line(&line);
    }
}

impl RequestMetrics {
    /// The sender the request routed to (`none` for no route).
    pub fn provider(&self) -> &'static str {
        match *self {
            Self::Accepted { provider, .. }
            | Self::Duplicate { provider }
            | Self::Rejected { provider, .. }
            | Self::PublishFailed { provider, .. } => provider,
        }
    }
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
    fn store_figures_are_their_own_document_and_only_when_there_are_some() {
        assert_eq!(
            store_document("hookrelay", T, "engine", &StoreMetrics::default()),
            None
        );
        let line = store_document(
            "hookrelay",
            T,
            "engine",
            &StoreMetrics {
                latency: Some(Duration::from_micros(3_250)),
                failures: 2,
                conflict: true,
                ambiguous_attempts: 1,
                in_progress: false,
                out_of_order: true,
                possible_copy: true,
                unrecorded: true,
            },
        )
        .unwrap();
        let doc = validate_emf(&line).unwrap();
        assert_eq!(doc["StoreLatency"].as_f64(), Some(3.25));
        assert_eq!(doc["StoreFailures"].as_f64(), Some(2.0));
        assert_eq!(doc["DedupeConflicts"].as_f64(), Some(1.0));
        assert_eq!(doc["AmbiguousPublish"].as_f64(), Some(1.0));
        assert!(doc.get("InProgress").is_none());
        assert_eq!(doc["OutOfOrder"].as_f64(), Some(1.0));
        assert_eq!(doc["PossibleCopies"].as_f64(), Some(1.0));
        assert_eq!(doc["UnrecordedSends"].as_f64(), Some(1.0));
        assert_eq!(doc["provider"], "engine");
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
            serde_json::json!([["provider", "reason"], ["reason"], []])
        );
        assert_eq!(
            (doc["reason"].as_str(), doc["Rejected"].as_f64()),
            (Some("invalid_signature"), Some(1.0))
        );
        assert!(doc.get("PublishLatency").is_none());
    }
}
