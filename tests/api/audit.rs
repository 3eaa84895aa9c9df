//! The delivery audit, small enough for CI (RELIABILITY.md has the full run and its command):
//! separate receiver processes with their own dedupe, senders retrying on the engine's schedule,
//! a fifth of SQS calls failing, and every event in the queue exactly once, byte-identical.

use std::path::PathBuf;

use hookrelay_devtools::audit::{self, AuditConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_exactly_once_through_faults_retries_and_several_instances() {
    let config = AuditConfig {
        events: 240,
        instances: 3,
        fault_fraction: 0.2,
        time_scale: 0.02,
        concurrency: 12,
        duplicate_fraction: 0.1,
        seed: 7,
        receiver: PathBuf::from(env!("CARGO_BIN_EXE_hookrelay")),
        log_dir: None,
    };
    let report = audit::run(&config).await;
    let table = report.markdown(&config);
    assert!(report.passed(), "{table}");
    // The run must really have been hostile, or passing proves nothing.
    let faults: u64 = report.faults.iter().map(|(_, n)| n).sum();
    assert!(
        faults * 10 >= report.sqs_calls,
        "fewer than 10% of SQS calls failed:\n{table}"
    );
    assert!(
        report.faults.iter().all(|(_, n)| *n > 0),
        "every kind of fault must occur:\n{table}"
    );
    assert!(report.resends > 0, "{table}");
    assert_eq!(report.acknowledged, report.events, "{table}");
}
