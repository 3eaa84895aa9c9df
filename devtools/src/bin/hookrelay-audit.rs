//! The delivery audit, by hand: `hookrelay-audit [--events N] [--rounds R] [--instances K]
//! [--faults F] [--time-scale S] [--concurrency C] [--duplicates D] [--seed X] [--receiver PATH]
//! [--log-dir DIR] [--standard-queue true] [--store true] [--store-faults F] [--restart-every-secs S]
//! [--late L] [--ttl-secs T] [--claim-secs C] [--kill-in-flight true] [--twins T]`. Prints the
//! report as Markdown; exits 1 unless every event is in the queue exactly once with byte-identical data (on
//! a standard queue: extra copies only from counted ambiguous attempts; with `--kill-in-flight`,
//! also from invocations killed). See RELIABILITY.md.
//!
//! `--store true` turns the durable idempotency store on (moto's DynamoDB behind its own fault
//! proxy, `--store-faults` of its calls failing, default 0.1), replaces one instance in turn
//! every `--restart-every-secs` (default 5) while the senders run (retired between invocations,
//! as Lambda retires an environment; `--kill-in-flight true` kills it mid-invocation instead, a
//! crash), then drains the queue (moto
//! forgets the deduplication ids, as SQS does after five minutes), restarts every instance and
//! sends `--late` of the events again (default 0.2): retries beyond the FIFO window.
//!
//! `--twins T` (default 0.1) gives that fraction of engine events a twin: the same `operatorId`
//! and `sequence` from a second registration with other content, sent with the original, 2 to
//! 8 s after it, or late; each must be queued exactly once, under its own envelope id.
//!
//! `--log-dir DIR` keeps each receiver's log, at level info (a line per delivery, with its
//! dedupe key): the ids printed as in the queue more than once can be looked up there.
//!
//! The events run in `R` rounds (default: one per 1,000 events), each with a fresh queue and
//! fresh receiver processes, and each accounted for on its own. moto's SendMessage cost grows
//! with the number of messages in a FIFO queue (measured here: p50 94 ms at ~400 messages,
//! 1.25 s at ~3,000), so one 10,000-message queue would measure moto, not hookrelay.

use std::path::PathBuf;

use hookrelay_devtools::audit::{self, AuditConfig};
use hookrelay_devtools::cli::{self, number};

fn main() {
    let mut rounds = 0u64;
    let mut config = AuditConfig {
        events: 10_000,
        instances: 8,
        fault_fraction: 0.2,
        time_scale: 0.1,
        concurrency: 64,
        duplicate_fraction: 0.1,
        seed: 2026,
        receiver: cli::default_receiver(),
        log_dir: None,
        store: None,
        standard_queue: false,
        twin_fraction: 0.1,
    };
    let mut store = audit::StoreAudit {
        fault_fraction: 0.1,
        restart_every: std::time::Duration::from_secs(5),
        late_fraction: 0.2,
        ttl_secs: 3_600,
        // Shorter than the senders' last retry at the default time scale (+3 s), as the stack's
        // 10 s claim is shorter than the engine's +30 s retry.
        claim_secs: 1,
        kill_in_flight: false,
    };
    let mut store_on = false;
    for (flag, value) in cli::flag_pairs(usage) {
        let number = || number::<f64>(&flag, &value, usage);
        match flag.as_str() {
            "--events" => config.events = number() as u64,
            "--rounds" => rounds = number() as u64,
            "--instances" => config.instances = number() as usize,
            "--faults" => config.fault_fraction = number(),
            "--time-scale" => config.time_scale = number(),
            "--concurrency" => config.concurrency = number() as usize,
            "--duplicates" => config.duplicate_fraction = number(),
            "--seed" => config.seed = number() as u64,
            "--receiver" => config.receiver = PathBuf::from(&value),
            "--log-dir" => config.log_dir = Some(PathBuf::from(value)),
            "--standard-queue" => config.standard_queue = value == "true",
            "--store" => store_on = value == "true",
            "--store-faults" => store.fault_fraction = number(),
            "--restart-every-secs" => {
                store.restart_every = std::time::Duration::from_secs_f64(number())
            }
            "--late" => store.late_fraction = number(),
            "--ttl-secs" => store.ttl_secs = number() as u64,
            "--claim-secs" => store.claim_secs = number() as u64,
            "--kill-in-flight" => store.kill_in_flight = value == "true",
            "--twins" => config.twin_fraction = number(),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    cli::require_receiver(&config.receiver, usage);
    if store_on {
        config.store = Some(store);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rounds = if rounds == 0 {
        config.events.div_ceil(1_000).max(1)
    } else {
        rounds
    };
    let mut report = audit::AuditReport::default();
    for round in 0..rounds {
        let mut this_round = config.clone();
        this_round.events = config.events / rounds + u64::from(round < config.events % rounds);
        this_round.seed = config.seed + round;
        if let Some(dir) = &config.log_dir {
            let dir = dir.join(format!("round-{round}"));
            let _ = std::fs::create_dir_all(&dir);
            this_round.log_dir = Some(dir);
        }
        let result = runtime.block_on(audit::run(&this_round));
        eprintln!(
            "round {}/{rounds}: {} events, {} lost, {} duplicated, {} faults, {:.0} s",
            round + 1,
            result.events,
            result.lost,
            result.duplicated,
            result.faults.iter().map(|(_, n)| n).sum::<u64>(),
            result.sending.as_secs_f64()
        );
        report.merge(result);
    }
    println!(
        "events {} in {rounds} rounds, instances {}, faults {:.0}%, time scale {}, concurrency {}, re-sends {:.0}%, seed {}\n",
        config.events,
        config.instances,
        config.fault_fraction * 100.0,
        config.time_scale,
        config.concurrency,
        config.duplicate_fraction * 100.0,
        config.seed
    );
    print!("{}", report.markdown(&config));
    // The first few ids to look up in the receivers' logs (`--log-dir`).
    if !report.duplicated_keys.is_empty() {
        let first: Vec<&str> = report
            .duplicated_keys
            .iter()
            .take(20)
            .map(String::as_str)
            .collect();
        eprintln!(
            "in the queue more than once ({} ids; the first {}): {}",
            report.duplicated_keys.len(),
            first.len(),
            first.join(" ")
        );
    }
    std::process::exit(if report.passed() { 0 } else { 1 });
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "hookrelay-audit: {problem}\nsee the comment at the top of devtools/src/bin/hookrelay-audit.rs"
    );
    std::process::exit(2)
}
