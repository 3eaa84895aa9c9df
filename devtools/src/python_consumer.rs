//! Runs the Python consumer example (`examples/python/consume.py`, through
//! `tests/python/check_consumer.py`) over a queue and reads its verdict on each message: an
//! independent check of the relay signature (pyca/cryptography's Ed25519, not our code).

use std::path::PathBuf;
use std::process::Command;

/// What the Python consumer decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonVerdict {
    /// The SQS message id.
    pub message_id: String,
    /// Whether it would act on the message.
    pub accepted: bool,
    /// Whether it refused a genuine message for its age alone.
    pub age_only: bool,
    /// Why it refused, if it did.
    pub error: Option<String>,
}

/// The Python consumer's verdict on every message in `queue_url` (at `endpoint`, moto's), trusting
/// `public_keys`. It receives (making messages invisible for 30 s) and deletes nothing.
pub fn verdicts(endpoint: &str, queue_url: &str, public_keys: &str) -> Vec<PythonVerdict> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = crate::moto::test_python();
    let output = Command::new(&python)
        .arg(root.join("tests/python/check_consumer.py"))
        .args(["--queue-url", queue_url])
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("HOOKRELAY_RELAY_PUBLIC_KEYS", public_keys)
        .env_remove("HOOKRELAY_RELAY_VERIFICATION")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", python.display()));
    assert!(
        output.status.success(),
        "the Python consumer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let verdict: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a verdict line ({e}): {line}"));
            PythonVerdict {
                message_id: verdict["message_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                accepted: verdict["accepted"] == true,
                age_only: verdict["age_only"] == true,
                error: verdict["error"].as_str().map(str::to_owned),
            }
        })
        .collect()
}
