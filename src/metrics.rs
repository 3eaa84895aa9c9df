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
//! Why not the `metrics_cloudwatch_embedded` crate: it installs a process-global recorder that
//! must be flushed after every invocation, which a library can't arrange for its callers, and its
//! Lambda integration turns on every lambda_http event type. One document per request, written
//! here with serde, is less code than adapting it.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "hookrelay";

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

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "_aws")]
    aws: Metadata<'a>,
    #[serde(flatten)]
    members: BTreeMap<&'static str, Member>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata<'a> {
    timestamp: i64,
    cloud_watch_metrics: [Directive<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'a str,
    dimensions: &'static [&'static [&'static str]],
    metrics: Vec<Definition>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    name: &'static str,
    unit: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Member {
    Dimension(&'static str),
    Value(f64),
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

/// An EMF document of `counters` (name, value; unit Count) with `dimensions` (name, value),
/// aggregated by `dimension_sets`: the form a long-running process (the stream bridge) reports
/// its per-interval totals in. One line of JSON (no newline).
pub fn counters_document(
    namespace: &str,
    timestamp_ms: i64,
    dimension_sets: &'static [&'static [&'static str]],
    dimensions: &[(&'static str, &'static str)],
    counters: &[(&'static str, u64)],
) -> String {
    let mut members: BTreeMap<&'static str, Member> = dimensions
        .iter()
        .map(|&(name, value)| (name, Member::Dimension(value)))
        .collect();
    let mut definitions = Vec::with_capacity(counters.len());
    for &(name, value) in counters {
        definitions.push(Definition {
            name,
            unit: "Count",
        });
        // Counts per interval stay far below 2^53, where f64 is exact.
        members.insert(name, Member::Value(value as f64));
    }
    render(
        namespace,
        timestamp_ms,
        dimension_sets,
        definitions,
        members,
    )
}

/// One EMF document as a line of JSON.
fn render(
    namespace: &str,
    timestamp_ms: i64,
    dimensions: &'static [&'static [&'static str]],
    metrics: Vec<Definition>,
    members: BTreeMap<&'static str, Member>,
) -> String {
    let document = Document {
        aws: Metadata {
            timestamp: timestamp_ms,
            cloud_watch_metrics: [Directive {
                namespace,
                dimensions,
                metrics,
            }],
        },
        members,
    };
    // Strings, integers and finite floats only: serialisation cannot fail.
    serde_json::to_string(&document).unwrap_or_default()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Writes the document for one request to stdout as its own line. A write failure is ignored:
/// losing a metric must never fail a delivery.
pub fn emit(namespace: &str, metrics: &RequestMetrics) {
    emit_line(&document(namespace, now_ms(), metrics));
}

/// The current time in Unix milliseconds, as EMF's `_aws.Timestamp` wants it.
pub fn now_ms() -> i64 {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(now_ms).unwrap_or(i64::MAX)
}

/// Writes one EMF document to stdout as its own line, ignoring write failures.
pub fn emit_line(document: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{document}");
}

#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::Value;

    /// Checks `line` against the EMF specification's rules for a document: a JSON object with
    /// `_aws.Timestamp` (ms) and `_aws.CloudWatchMetrics` directives, each with a namespace,
    /// dimension sets of at most 30 names that are string members of the root, and at most 100
    /// metric definitions with a valid unit, each a numeric member of the root.
    pub fn validate_emf(line: &str) -> Result<Value, String> {
        const UNITS: [&str; 27] = [
            "Seconds",
            "Microseconds",
            "Milliseconds",
            "Bytes",
            "Kilobytes",
            "Megabytes",
            "Gigabytes",
            "Terabytes",
            "Bits",
            "Kilobits",
            "Megabits",
            "Gigabits",
            "Terabits",
            "Percent",
            "Count",
            "Bytes/Second",
            "Kilobytes/Second",
            "Megabytes/Second",
            "Gigabytes/Second",
            "Terabytes/Second",
            "Bits/Second",
            "Kilobits/Second",
            "Megabits/Second",
            "Gigabits/Second",
            "Terabits/Second",
            "Count/Second",
            "None",
        ];
        if line.contains('\n') {
            return Err("a document must be one line".into());
        }
        let root: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let aws = root
            .get("_aws")
            .and_then(Value::as_object)
            .ok_or("no _aws object")?;
        aws.get("Timestamp")
            .and_then(Value::as_i64)
            .filter(|t| *t > 0)
            .ok_or("_aws.Timestamp must be epoch ms")?;
        let directives = aws
            .get("CloudWatchMetrics")
            .and_then(Value::as_array)
            .ok_or("no CloudWatchMetrics array")?;
        for directive in directives {
            let namespace = directive["Namespace"]
                .as_str()
                .ok_or("Namespace must be a string")?;
            if namespace.is_empty() || namespace.len() > 1024 || namespace.starts_with("AWS/") {
                return Err(format!("bad Namespace {namespace:?}"));
            }
            for set in directive["Dimensions"]
                .as_array()
                .ok_or("Dimensions must be an array")?
            {
                let set = set.as_array().ok_or("a dimension set must be an array")?;
                if set.len() > 30 {
                    return Err("more than 30 dimensions in a set".into());
                }
                for name in set {
                    let name = name.as_str().ok_or("dimension names are strings")?;
                    let value = root.get(name).and_then(Value::as_str);
                    if !value.is_some_and(|v| !v.is_empty() && v.len() <= 1024) {
                        return Err(format!("dimension {name} is not a non-empty string member"));
                    }
                }
            }
            let metrics = directive["Metrics"]
                .as_array()
                .ok_or("Metrics must be an array")?;
            if metrics.is_empty() || metrics.len() > 100 {
                return Err("1 to 100 metrics per directive".into());
            }
            for metric in metrics {
                let name = metric["Name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .ok_or("metric Name")?;
                if let Some(unit) = metric.get("Unit") {
                    if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
                        return Err(format!("{name}: unit {unit} is not a CloudWatch unit"));
                    }
                }
                match root.get(name) {
                    Some(Value::Number(_)) => {}
                    Some(Value::Array(values))
                        if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                    _ => return Err(format!("metric {name} has no numeric member")),
                }
            }
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::validate_emf;
    use super::*;

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
            let line = document(DEFAULT_NAMESPACE, T, &metrics);
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

    #[test]
    fn the_validator_rejects_what_emf_forbids() {
        let good = document(
            "hookrelay",
            T,
            &RequestMetrics::Duplicate { provider: "engine" },
        );
        for broken in [
            good.replace("\"provider\":\"engine\"", "\"provider\":7"),
            good.replace("\"Duplicate\":1.0", "\"Duplicate\":\"1\""),
            good.replace("\"Unit\":\"Count\"", "\"Unit\":\"Things\""),
            good.replace(
                "\"Namespace\":\"hookrelay\"",
                "\"Namespace\":\"AWS/Lambda\"",
            ),
            good.replace("\"Timestamp\":", "\"Time\":"),
        ] {
            assert!(validate_emf(&broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn counters_documents_are_valid_emf() {
        const BY_STREAM: &[&[&str]] = &[&["stream"], &[]];
        let line = counters_document(
            "hookrelay",
            1_700_000_000_000,
            BY_STREAM,
            &[("stream", "heisenberg")],
            &[("StreamEvents", 12), ("Reconnects", 0)],
        );
        let doc = validate_emf(&line).unwrap_or_else(|e| panic!("{e}\n{line}"));
        assert_eq!(doc["stream"], "heisenberg");
        assert_eq!(
            (doc["StreamEvents"].as_f64(), doc["Reconnects"].as_f64()),
            (Some(12.0), Some(0.0))
        );
    }
}
