//! The delivery audit, small enough for CI (RELIABILITY.md has the full run and its command):
//! separate receiver processes with their own dedupe, senders retrying on the engine's schedule,
//! a fifth of SQS calls failing, and every event in the queue exactly once, byte-identical. With
//! the durable store on: a tenth of its calls failing too, instances replaced mid-run (retired
//! between invocations, as Lambda does, and killed mid-invocation, as a crash), and late re-sends
//! after the queue was drained (moto then forgets the FIFO deduplication ids, as SQS does after
//! five minutes), on a FIFO and on a standard queue.

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
        store: None,
        standard_queue: false,
        twin_fraction: 0.3,
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
    assert!(report.twins >= 10, "{table}");
    // Without the store a twin on another instance is queued under the same envelope id, but
    // it is queued: the FIFO deduplication id names the content, so SQS drops neither.
    assert_eq!(report.lost, 0, "{table}");
}

fn store_audit(standard_queue: bool, kill_in_flight: bool, seed: u64) -> AuditConfig {
    AuditConfig {
        events: 210,
        instances: 3,
        fault_fraction: 0.2,
        // Retries at +0.25 s and +1.75 s: a claim of 1 s lapses before the last one, as the
        // stack's 10 s claim lapses before the engine's +30 s retry (a claim outliving the
        // sender's retries would lose the event of an instance killed mid-delivery).
        time_scale: 0.05,
        concurrency: 12,
        duplicate_fraction: 0.1,
        seed,
        receiver: PathBuf::from(env!("CARGO_BIN_EXE_hookrelay")),
        log_dir: None,
        store: Some(audit::StoreAudit {
            fault_fraction: 0.1,
            restart_every: std::time::Duration::from_secs(2),
            late_fraction: 0.3,
            ttl_secs: 3_600,
            claim_secs: 1,
            kill_in_flight,
        }),
        standard_queue,
        twin_fraction: 0.3,
    }
}

fn assert_hostile_and_passed(report: &audit::AuditReport, table: &str) {
    assert!(report.passed(), "{table}");
    let store_faults: u64 = report.store_faults.iter().map(|(_, n)| n).sum();
    assert!(
        store_faults * 20 >= report.store_calls,
        "fewer than 5% of store calls failed:\n{table}"
    );
    assert!(report.restarts >= 3, "{table}");
    assert!(report.late_resends > 0, "{table}");
    assert!(report.twins >= 10, "{table}");
    assert_eq!(report.shared_ids, 0, "{table}");
    assert_eq!(report.misanswered_duplicates, 0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_a_fifo_queue_delivers_exactly_once_past_its_window() {
    let config = store_audit(false, false, 11);
    let report = audit::run(&config).await;
    let table = report.markdown(&config);
    assert_hostile_and_passed(&report, &table);
    assert_eq!(report.duplicated, 0, "{table}");
    assert_eq!(report.interrupted, 0, "retired, never killed:\n{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_a_standard_queue_copies_only_from_counted_ambiguous_attempts() {
    let config = store_audit(true, false, 12);
    let report = audit::run(&config).await;
    let table = report.markdown(&config);
    assert_hostile_and_passed(&report, &table);
    assert!(report.duplicated <= report.ambiguous_publishes, "{table}");
    // And event by event: no event has more copies than attempts logged for it.
    assert_eq!(report.copies_without_a_counted_attempt, 0, "{table}");
    // Copies are grouped by envelope id; an extra message with an id no event had would be
    // `extra`, which `passed` refuses.
    assert_eq!(report.extra, 0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_instances_killed_mid_delivery_lose_nothing_and_copy_only_what_they_held() {
    let config = store_audit(false, true, 13);
    let report = audit::run(&config).await;
    let table = report.markdown(&config);
    assert_hostile_and_passed(&report, &table);
    assert!(report.duplicated <= report.interrupted, "{table}");
}
