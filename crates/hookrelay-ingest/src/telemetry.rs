//! Log setup: Lambda's advanced logging controls (`AWS_LAMBDA_LOG_FORMAT=JSON`,
//! `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG` directives, else INFO), plus one rule no setting can
//! lift: the runtime and the AWS SDK never log below INFO. At TRACE, lambda_runtime logs every
//! raw invocation event (bodies and signature headers of forged requests included), and the
//! SDK's HTTP layers can log request bodies (our envelopes). hookrelay's own log lines never
//! carry a body, a signature or a secret, so its level stays as configured. Shared by the
//! receiver and the bridge (which caps its WebSocket client's crates too).

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Dependencies capped at INFO whatever the configured level.
const CAPPED_AT_INFO: [&str; 8] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "aws_config",
    "aws_sdk_sqs",
    "aws_smithy_runtime",
    "aws_smithy_http_client",
    "hyper",
    "hyper_util",
];

/// Installs the global subscriber for a Lambda, writing to stdout (which Lambda ships to
/// CloudWatch).
pub fn init() {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    install(&directives, json, &[]);
}

/// Installs the global subscriber for `directives`, as JSON lines or plain text, on stdout,
/// with `also_capped` crates capped at INFO too (for processes outside Lambda, such as the
/// stream bridge).
pub fn install(directives: &str, json: bool, also_capped: &[&str]) {
    // Fails only if a subscriber is already installed, in which case that one stays.
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber(
        directives,
        json,
        std::io::stdout,
        also_capped,
    ));
}

/// The subscriber for `directives` (a level such as `debug`, or `RUST_LOG` syntax), as JSON
/// lines or plain text.
pub fn subscriber<W>(
    directives: &str,
    json: bool,
    writer: W,
    also_capped: &[&str],
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut filter = EnvFilter::builder().parse_lossy(directives.to_ascii_lowercase());
    for target in CAPPED_AT_INFO.iter().chain(also_capped) {
        if let Ok(cap) = format!("{target}=info").parse() {
            filter = filter.add_directive(cap);
        }
    }
    let format = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        Box::new(format.json().finish())
    } else {
        Box::new(format.finish())
    }
}

/// A log writer for tests.
pub mod test_support {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// A writer that keeps everything written to it, for asserting on log lines.
    #[derive(Clone, Default)]
    pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

    impl CapturedLogs {
        /// Everything written so far.
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl Write for CapturedLogs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for CapturedLogs {
        type Writer = CapturedLogs;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::CapturedLogs;
    use super::*;

    #[test]
    fn no_level_setting_lets_the_runtime_log_raw_events() {
        for directives in ["trace", "TRACE", "lambda_runtime=trace,trace", "debug"] {
            let logs = CapturedLogs::default();
            let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber(
                directives,
                true,
                logs.clone(),
                &["tokio_tungstenite"],
            ));
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "RAW-EVENT", "raw JSON event");
            tracing::debug!(target: "aws_smithy_runtime::client", body = "SQS-BODY", "request");
            tracing::info!(target: "lambda_runtime", "runtime info still shows");
            tracing::debug!(target: "tokio_tungstenite::handshake", frame = "WS-FRAME", "frame");
            tracing::debug!(target: "hookrelay::pipeline", "own debug line");
            let text = logs.text();
            assert!(
                !text.contains("RAW-EVENT")
                    && !text.contains("SQS-BODY")
                    && !text.contains("WS-FRAME"),
                "{directives}: {text}"
            );
            assert!(
                text.contains("runtime info still shows"),
                "{directives}: {text}"
            );
            assert!(text.contains("own debug line"), "{directives}: {text}");
        }
    }

    #[test]
    fn json_format_writes_one_json_object_per_line() {
        let logs = CapturedLogs::default();
        let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber(
            "info",
            true,
            logs.clone(),
            &[],
        ));
        tracing::info!(provider = "engine", outcome = "accepted", "webhook handled");
        let line: serde_json::Value = serde_json::from_str(logs.text().trim()).unwrap();
        assert_eq!(line["fields"]["outcome"], "accepted");
    }
}
