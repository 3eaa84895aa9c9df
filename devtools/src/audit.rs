//! The delivery audit: many events through several receiver instances at once (separate
//! processes, each with its own in-memory dedupe, behind the Lambda emulator), every delivery
//! retried by the simulated senders' rules, with a fraction of SQS calls failing through the
//! fault proxy. Then the whole queue is read and every event accounted for: each must appear
//! exactly once, with `data` byte-identical to what the sender signed, and nothing else.
//!
//! Independence from moto's one difference from SQS (it forgets the deduplication id of a deleted
//! message): nothing is deleted while deliveries are in flight. The queue is drained (received
//! and deleted) only after every sender has finished, so every send happens while SQS and moto
//! remember the same ids. Every retry falls inside SQS's 5-minute deduplication interval, since
//! the engine's last retry is at +35 s, so real SQS would deduplicate the same sends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::fault_proxy::{Fault, FaultPlan, FaultProxy};
use crate::lambda_emulator::LambdaInstance;
use crate::local_sqs;
use crate::sender_sim::{self, EventSpec, Sender, SigningKeys, SimConfig};
use crate::stats::Percentiles;

/// The audit's test secrets (the same as events/README.md's).
pub fn test_keys() -> SigningKeys {
    SigningKeys {
        engine: "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5".into(),
        rekko: "hookrelay-test-rekko-secret".into(),
        standard: "whsec_aG9va3JlbGF5LXRlc3Qtc3RhbmRhcmQtc2VjcmV0ISE=".into(),
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Distinct events (spread over the three senders).
    pub events: u64,
    /// Receiver instances (processes).
    pub instances: usize,
    /// Fraction of SQS calls that fail.
    pub fault_fraction: f64,
    /// Scale of the senders' retry delays (1.0 = the engine's 5 s and 30 s).
    pub time_scale: f64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Fraction of acknowledged deliveries the senders send again.
    pub duplicate_fraction: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// The `hookrelay` binary to run.
    pub receiver: PathBuf,
    /// Where the instances' logs go (none if `None`).
    pub log_dir: Option<PathBuf>,
}

/// What the audit found.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// Distinct events sent.
    pub events: u64,
    /// HTTP deliveries made (first attempts, retries and re-sends).
    pub deliveries: u64,
    /// Retries after a failed attempt.
    pub retries: u64,
    /// Re-sends of acknowledged deliveries.
    pub resends: u64,
    /// Answers by status (0 = timeout or connection failure).
    pub answers: Vec<(u16, u64)>,
    /// Events some attempt got a 2xx for.
    pub acknowledged: u64,
    /// SQS calls the proxy saw.
    pub sqs_calls: u64,
    /// Faults injected, by kind.
    pub faults: Vec<(&'static str, u64)>,
    /// Messages read from the queue.
    pub queued: u64,
    /// Events sent but not in the queue.
    pub lost: u64,
    /// Of those, events a sender was told were accepted (the failure that matters most).
    pub lost_after_ack: u64,
    /// Events in the queue more than once (extra copies).
    pub duplicated: u64,
    /// Messages for no event that was sent.
    pub extra: u64,
    /// Messages whose `data` differs from the signed body.
    pub data_mismatch: u64,
    /// Answer time percentiles over all answered attempts, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest answer.
    pub max_ms: f64,
    /// Wall time of the sending phase.
    pub sending: Duration,
    /// Every answered attempt's time, milliseconds, sorted (for merging rounds).
    pub latencies_ms: Vec<f64>,
}

impl AuditReport {
    /// Adds another round's figures to these (each round has its own queue, so every count
    /// simply adds up).
    pub fn merge(&mut self, other: AuditReport) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.retries += other.retries;
        self.resends += other.resends;
        self.acknowledged += other.acknowledged;
        self.sqs_calls += other.sqs_calls;
        self.queued += other.queued;
        self.lost += other.lost;
        self.lost_after_ack += other.lost_after_ack;
        self.duplicated += other.duplicated;
        self.extra += other.extra;
        self.data_mismatch += other.data_mismatch;
        self.sending += other.sending;
        for (status, count) in other.answers {
            match self.answers.iter_mut().find(|(s, _)| *s == status) {
                Some((_, total)) => *total += count,
                None => self.answers.push((status, count)),
            }
        }
        self.answers.sort();
        for (kind, count) in other.faults {
            match self.faults.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, total)) => *total += count,
                None => self.faults.push((kind, count)),
            }
        }
        self.latencies_ms.extend(other.latencies_ms);
        self.set_percentiles();
    }

    fn set_percentiles(&mut self) {
        let summary = Percentiles::of(&mut self.latencies_ms);
        (self.p50_ms, self.p99_ms, self.max_ms) = (summary.p50, summary.p99, summary.max);
    }

    /// Nothing lost, duplicated, extra or altered.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.extra == 0
            && self.data_mismatch == 0
            && self.queued == self.events
    }

    /// The report as a Markdown table.
    pub fn markdown(&self, config: &AuditConfig) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("timeout {n}")
                } else {
                    format!("{s}: {n}")
                }
            })
            .collect();
        let total_faults: u64 = self.faults.iter().map(|(_, n)| n).sum();
        format!(
            "| figure | value |\n|---|---|\n\
             | events | {} |\n| receiver instances | {} |\n| deliveries (HTTP requests) | {} ({} retries, {} re-sends of acknowledged deliveries) |\n\
             | answers | {} |\n| SQS calls | {} |\n| faults injected | {} ({:.1}% of calls: {}) |\n\
             | messages in the queue | {} |\n| lost | {} (after a 2xx: {}) |\n| duplicated | {} |\n| extra | {} |\n| data not byte-identical | {} |\n\
             | answer time p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |\n| sending phase | {:.1} s |\n| verdict | {} |\n",
            self.events,
            config.instances,
            self.deliveries,
            self.retries,
            self.resends,
            answers.join(", "),
            self.sqs_calls,
            total_faults,
            100.0 * total_faults as f64 / self.sqs_calls.max(1) as f64,
            faults.join(", "),
            self.queued,
            self.lost,
            self.lost_after_ack,
            self.duplicated,
            self.extra,
            self.data_mismatch,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.sending.as_secs_f64(),
            if self.passed() {
                "PASS: every event exactly once, byte-identical"
            } else {
                "FAIL"
            },
        )
    }
}

/// Runs the audit. Panics only on harness failures (moto or a process that can't start).
pub async fn run(config: &AuditConfig) -> AuditReport {
    let moto = tokio::task::spawn_blocking(crate::moto::moto)
        .await
        .expect("moto starts");
    let sqs = local_sqs::client(&moto.endpoint);
    let name = format!(
        "hookrelay-audit-{}-{}.fifo",
        std::process::id(),
        config.seed
    );
    let queue_url = local_sqs::create_fifo_queue(&sqs, &name)
        .await
        .expect("create the audit queue");

    let plan = FaultPlan {
        fraction: config.fault_fraction,
        seed: config.seed,
        slow_for: Duration::from_millis(2_500),
    };
    let proxy = FaultProxy::start(&moto.endpoint, plan)
        .await
        .expect("start the fault proxy");

    let keys = test_keys();
    let relay = crate::relay_keys::env();
    let env = [
        ("HOOKRELAY_QUEUE_URL", queue_url.as_str()),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        ("HOOKRELAY_ENGINE_SECRETS", keys.engine.as_str()),
        ("HOOKRELAY_REKKO_SECRETS", keys.rekko.as_str()),
        ("HOOKRELAY_STANDARD_SECRETS", keys.standard.as_str()),
        ("AWS_ENDPOINT_URL_SQS", proxy.url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "audit"),
        ("AWS_SECRET_ACCESS_KEY", "audit"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "warn"),
    ];
    let mut instances = Vec::new();
    for index in 0..config.instances.max(1) {
        let log = config
            .log_dir
            .as_ref()
            .map(|dir| dir.join(format!("receiver-{index}.log")));
        let instance = LambdaInstance::start(&config.receiver, &env, log.as_deref())
            .await
            .expect("start a receiver instance");
        instances.push(instance);
    }

    let specs: Vec<EventSpec> = (0..config.events)
        .map(|i| EventSpec {
            sender: [Sender::Engine, Sender::Rekko, Sender::Standard][(i % 3) as usize],
            n: i,
        })
        .collect();
    let sim = SimConfig::engine_schedule(
        config.time_scale,
        config.concurrency,
        config.duplicate_fraction,
        config.seed,
    );
    let started = Instant::now();
    let logs = sender_sim::run(
        instances.iter().map(|i| i.url.clone()).collect(),
        specs,
        keys,
        sim,
    )
    .await;
    let sending = started.elapsed();
    drop(instances);

    // Every sender is done: now read (and delete) everything.
    let mut queued: HashMap<String, Vec<String>> = HashMap::new();
    let read = local_sqs::drain(&sqs, &queue_url, 3, |message| {
        let body = message.body().unwrap_or_default();
        let (id, data) = match hookrelay::Envelope::from_json(body) {
            Ok(envelope) => (envelope.id.clone(), envelope.signed_data().to_owned()),
            Err(_) => (
                format!("<not an envelope #{}>", queued.len()),
                String::new(),
            ),
        };
        queued.entry(id).or_default().push(data);
    })
    .await
    .expect("read the audit queue");

    account(&logs, &queued, read, &proxy, sending)
}

fn account(
    logs: &[sender_sim::DeliveryLog],
    queued: &HashMap<String, Vec<String>>,
    read: u64,
    proxy: &FaultProxy,
    sending: Duration,
) -> AuditReport {
    let mut report = AuditReport {
        events: logs.len() as u64,
        queued: read,
        sending,
        ..AuditReport::default()
    };
    let mut answers: HashMap<u16, u64> = HashMap::new();
    let mut latencies = Vec::new();
    for log in logs {
        report.deliveries += log.attempts.len() as u64;
        report.resends += log.attempts.iter().filter(|a| a.resend).count() as u64;
        report.retries += log
            .attempts
            .iter()
            .filter(|a| !a.resend)
            .count()
            .saturating_sub(1) as u64;
        report.acknowledged += u64::from(log.acknowledged);
        for attempt in &log.attempts {
            *answers.entry(attempt.status.unwrap_or(0)).or_default() += 1;
            latencies.push(attempt.latency.as_secs_f64() * 1000.0);
        }
        match queued.get(&log.dedupe_key) {
            None => {
                report.lost += 1;
                report.lost_after_ack += u64::from(log.acknowledged);
            }
            Some(copies) => {
                report.duplicated += copies.len() as u64 - 1;
                let identical = copies
                    .iter()
                    .all(|data| data.as_bytes() == log.body.as_slice());
                report.data_mismatch += u64::from(!identical);
            }
        }
    }
    let sent: std::collections::HashSet<&str> =
        logs.iter().map(|l| l.dedupe_key.as_str()).collect();
    report.extra = queued
        .iter()
        .filter(|(id, _)| !sent.contains(id.as_str()))
        .map(|(_, c)| c.len() as u64)
        .sum();

    let mut answers: Vec<(u16, u64)> = answers.into_iter().collect();
    answers.sort();
    report.answers = answers;
    report.latencies_ms = latencies;
    report.set_percentiles();

    report.sqs_calls = proxy
        .counts
        .calls
        .load(std::sync::atomic::Ordering::Relaxed);
    report.faults = [
        ("HTTP 500", Fault::Http500),
        ("throttled", Fault::Throttled),
        ("reset before forwarding", Fault::ResetBefore),
        ("reset after forwarding", Fault::ResetAfter),
        ("slower than the client timeout", Fault::Slow),
    ]
    .iter()
    .map(|(name, kind)| (*name, proxy.counts.of(*kind)))
    .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(events: u64, lost: u64, latencies: &[f64]) -> AuditReport {
        let mut report = AuditReport {
            events,
            queued: events - lost,
            lost,
            answers: vec![(200, events)],
            faults: vec![("HTTP 500", 2)],
            latencies_ms: latencies.to_vec(),
            ..AuditReport::default()
        };
        report.set_percentiles();
        report
    }

    #[test]
    fn rounds_merge_by_adding_counts_and_pooling_latencies() {
        let mut total = AuditReport::default();
        total.merge(round(3, 0, &[1.0, 2.0, 3.0]));
        total.merge(round(2, 0, &[10.0, 20.0]));
        assert_eq!((total.events, total.queued, total.lost), (5, 5, 0));
        assert_eq!(total.answers, vec![(200, 5)]);
        assert_eq!(total.faults, vec![("HTTP 500", 4)]);
        assert_eq!((total.p50_ms, total.max_ms), (3.0, 20.0));
        assert!(total.passed());

        total.merge(round(1, 1, &[]));
        assert!(
            !total.passed(),
            "a lost event in any round fails the whole audit"
        );
    }
}
