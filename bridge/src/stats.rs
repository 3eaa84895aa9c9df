//! The bridge's counters, per stream, and their periodic report: one EMF document per stream
//! per interval on stdout (CloudWatch extracts the metrics where the log driver passes EMF, e.g.
//! FireLens or the CloudWatch agent; elsewhere they are plain JSON lines), and a log summary.
//!
//! | metric | meaning |
//! |---|---|
//! | `StreamEvents` | events read from the stream |
//! | `Published` | events SQS accepted |
//! | `Duplicate` | events dropped as already published (e.g. re-sent after a reconnect) |
//! | `Malformed` | frames that could not be routed (logged, skipped) |
//! | `ProviderErrors` | `error` control frames |
//! | `RateLimited` | `rate_limit` control frames |
//! | `Reconnects` | connections lost and re-opened |
//! | `PublishFailures` | batch entries (or whole calls) SQS did not accept; retried |
//! | `Rejected` | entries SQS refused as invalid (logged with their key; never retried) |
//! | `DedupeConflicts` | events whose key already held other content (queued under their own key) |
//! | `AmbiguousPublish` | failed sends SQS may have accepted anyway (a retry can copy on a standard queue) |
//! | `StoreFailures` | idempotency store calls that failed (the event went on; recorded after its send if the store answered by then) |
//! | `InProgress` | claims refused because another claimant held the key (the event stayed buffered) |

use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::BTreeMap;

use hookrelay_ingest::emf::{self, Definition, Member, render};
use hookrelay_ingest::stream::StreamSource;

/// One stream's counters.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Events read.
    pub events: AtomicU64,
    /// Events SQS accepted.
    pub published: AtomicU64,
    /// Events dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Frames that could not be routed.
    pub malformed: AtomicU64,
    /// `error` control frames.
    pub provider_errors: AtomicU64,
    /// `rate_limit` control frames.
    pub rate_limited: AtomicU64,
    /// Reconnections.
    pub reconnects: AtomicU64,
    /// SQS failures (retried).
    pub publish_failures: AtomicU64,
    /// Entries SQS refused as invalid.
    pub rejected: AtomicU64,
    /// Keys that already held other content.
    pub conflicts: AtomicU64,
    /// Failed sends SQS may have accepted anyway.
    pub ambiguous: AtomicU64,
    /// Store calls that failed.
    pub store_failures: AtomicU64,
    /// Claims another claimant held.
    pub in_progress: AtomicU64,
    /// Sends of content an earlier attempt may have queued more than SQS FIFO's five minutes
    /// before (docs/contract.md, "Exactly once").
    pub possible_copies: AtomicU64,
    /// Sends that may be queued under a key the store recorded nothing for (every call that
    /// would have went unanswered).
    pub unrecorded: AtomicU64,
}

impl StreamCounters {
    fn take(&self) -> [(&'static str, u64); 15] {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
        [
            ("StreamEvents", take(&self.events)),
            ("Published", take(&self.published)),
            ("Duplicate", take(&self.duplicates)),
            ("Malformed", take(&self.malformed)),
            ("ProviderErrors", take(&self.provider_errors)),
            ("RateLimited", take(&self.rate_limited)),
            ("Reconnects", take(&self.reconnects)),
            ("PublishFailures", take(&self.publish_failures)),
            ("Rejected", take(&self.rejected)),
            ("DedupeConflicts", take(&self.conflicts)),
            ("AmbiguousPublish", take(&self.ambiguous)),
            ("StoreFailures", take(&self.store_failures)),
            ("InProgress", take(&self.in_progress)),
            ("PossibleCopies", take(&self.possible_copies)),
            ("UnrecordedSends", take(&self.unrecorded)),
        ]
    }
}

/// Every stream's counters.
#[derive(Debug, Default)]
pub struct Stats {
    heisenberg: StreamCounters,
    rekko: StreamCounters,
}

/// Adds one to `counter`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// By stream only: a set without dimensions would add the bridge's counts to the receiver's
/// metrics of the same names (`Duplicate`, `Rejected`, `PublishFailures`, `StoreFailures`, ...),
/// which the receiver's `RefusalsAlarm` and dashboard read without dimensions. The stack's alarms
/// on the residuals both processes share add the bridge's per-stream counts (metric math).
const BY_STREAM: &[&[&str]] = &[&["stream"]];

impl Stats {
    /// The counters of `source`.
    pub fn of(&self, source: StreamSource) -> &StreamCounters {
        match source {
            StreamSource::Heisenberg => &self.heisenberg,
            StreamSource::Rekko => &self.rekko,
        }
    }

    /// Takes the counts since the last report and writes one EMF document per stream to stdout.
    pub fn emit(&self, namespace: &str) {
        for document in self.report(namespace, emf::now_ms()) {
            emf::emit_line(&document);
        }
    }

    /// Takes the counts since the last report and returns one EMF document per stream.
    pub fn report(&self, namespace: &str, timestamp_ms: i64) -> Vec<String> {
        StreamSource::ALL
            .into_iter()
            .map(|source| {
                let counts = self.of(source).take();
                tracing::info!(stream = source.provider(), ?counts, "stream counters");
                counters_document(
                    namespace,
                    timestamp_ms,
                    BY_STREAM,
                    &[("stream", source.provider())],
                    &counts,
                )
            })
            .collect()
    }
}

/// An EMF document of `counters` (name, value; unit Count) with `dimensions` (name, value),
/// aggregated by `dimension_sets`: the form a long-running process (the stream bridge) reports
/// its per-interval totals in. One line of JSON (no newline).
fn counters_document(
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

#[cfg(test)]
mod tests {
    use hookrelay_ingest::emf::validate as validate_emf;

    use super::*;

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

    #[test]
    fn a_report_takes_the_counts() {
        let stats = Stats::default();
        bump(&stats.of(StreamSource::Rekko).events);
        bump(&stats.of(StreamSource::Rekko).events);
        let docs = stats.report("ns", 1);
        let rekko: serde_json::Value = serde_json::from_str(&docs[1]).unwrap();
        assert_eq!(
            (rekko["stream"].as_str(), rekko["StreamEvents"].as_f64()),
            (Some("rekko"), Some(2.0))
        );
        let again: serde_json::Value = serde_json::from_str(&stats.report("ns", 2)[1]).unwrap();
        assert_eq!(again["StreamEvents"].as_f64(), Some(0.0));
        // By stream only: never added to the receiver's metrics of the same names.
        assert_eq!(
            rekko["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["stream"]])
        );
    }
}
