//! CloudWatch Embedded Metric Format (EMF): a metric document as one line of JSON on stdout,
//! which Lambda (or any log shipper into CloudWatch Logs) turns into metrics with no API call.
//! Rendering is pure; [`emit_line`] is the one write. The receiver's per-request documents and
//! the bridge's per-interval counters are both rendered here.
//!
//! Why not the `metrics_cloudwatch_embedded` crate: it installs a process-global recorder that
//! must be flushed after every invocation, which a library can't arrange for its callers, and its
//! Lambda integration turns on every lambda_http event type. One document per request, written
//! here with serde, is less code than adapting it.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::Value;

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "hookrelay";

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

/// One metric definition of a document.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Definition {
    /// The metric's name, e.g. `Accepted`.
    pub name: &'static str,
    /// Its CloudWatch unit, e.g. `Count`.
    pub unit: &'static str,
}

/// A root member of a document: a dimension value or a metric value.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Member {
    /// A dimension's value.
    Dimension(&'static str),
    /// A metric's value.
    Value(f64),
}

/// One EMF document as a line of JSON.
pub fn render(
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

/// Checks `line` against the EMF specification's rules for a document: a JSON object with
/// `_aws.Timestamp` (ms) and `_aws.CloudWatchMetrics` directives, each with a namespace,
/// dimension sets of at most 30 names that are string members of the root, and at most 100
/// metric definitions with a valid unit, each a numeric member of the root. For tests.
pub fn validate(line: &str) -> Result<Value, String> {
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
            if let Some(unit) = metric.get("Unit")
                && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
            {
                return Err(format!("{name}: unit {unit} is not a CloudWatch unit"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let members = BTreeMap::from([
            ("Duplicate", Member::Value(1.0)),
            ("provider", Member::Dimension("engine")),
        ]);
        let definitions = vec![Definition {
            name: "Duplicate",
            unit: "Count",
        }];
        render(
            "hookrelay",
            1_771_455_600_000,
            &[&["provider"], &[]],
            definitions,
            members,
        )
    }

    #[test]
    fn a_rendered_document_is_valid_emf() {
        let doc = validate(&sample()).unwrap();
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "hookrelay"
        );
    }

    #[test]
    fn the_validator_rejects_what_emf_forbids() {
        let good = sample();
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
            assert!(validate(&broken).is_err(), "{broken}");
        }
    }
}
