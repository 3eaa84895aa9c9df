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
use crate::local_dynamodb;
use crate::local_sqs;
use crate::seeded;
use crate::sender_sim::{self, EventSpec, Sender, SigningKeys, SimConfig};
use crate::stats::Percentiles;

/// The audit's test secrets (the same as events/README.md's).
pub fn test_keys() -> SigningKeys {
    SigningKeys {
        engine: "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5".into(),
        engine_twin: "hookrelay-test-engine-second-registration".into(),
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
    /// Where the instances' logs go (none if `None`; with the store, a temporary directory,
    /// since its counters are read from them).
    pub log_dir: Option<PathBuf>,
    /// The durable idempotency store, on (with its faults, restarts and late re-sends) or off.
    pub store: Option<StoreAudit>,
    /// A standard queue instead of a FIFO one: no SQS deduplication at all.
    pub standard_queue: bool,
    /// Fraction of engine events that get a twin: the same `operatorId` and `sequence` from a
    /// second registration, other content (1.0: every one). A third of them are sent with the
    /// original, a third 2 to 8 s after it (scaled like the retries), a third late (with the
    /// store: after the queue was drained; without it, 8 s after).
    pub twin_fraction: f64,
}

/// The audit with the durable store on.
#[derive(Debug, Clone)]
pub struct StoreAudit {
    /// Fraction of DynamoDB calls that fail (through a second fault proxy).
    pub fault_fraction: f64,
    /// One instance (in turn) is replaced this often while the senders run by a cold process
    /// with empty memory: retired between invocations as Lambda retires an environment, or,
    /// with `kill_in_flight`, killed whatever it holds (never answered).
    pub restart_every: Duration,
    /// Whether restarts kill an instance mid-invocation (a crash) instead of retiring it.
    pub kill_in_flight: bool,
    /// Fraction of events sent again after the senders finished, once the queue was drained
    /// (moto then forgets their deduplication ids, as SQS does after five minutes) and every
    /// instance restarted: retries beyond the FIFO window, that only the store can recognise.
    pub late_fraction: f64,
    /// `HOOKRELAY_IDEMPOTENCY_TTL_SECS`.
    pub ttl_secs: u64,
    /// `HOOKRELAY_IDEMPOTENCY_CLAIM_SECS`.
    pub claim_secs: u64,
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
    /// Whether the queue was a standard one.
    pub standard_queue: bool,
    /// With the store: DynamoDB calls the store's proxy saw.
    pub store_calls: u64,
    /// With the store: faults injected into them, by kind.
    pub store_faults: Vec<(&'static str, u64)>,
    /// Instance restarts while the senders ran (and before the late re-sends).
    pub restarts: u64,
    /// Events sent again after the queue was drained.
    pub late_resends: u64,
    /// The receivers' own counts (their EMF metrics): failed sends SQS may have accepted.
    pub ambiguous_publishes: u64,
    /// Store calls that failed (the delivery went on without them).
    pub store_failures: u64,
    /// Deliveries answered 503 `in_progress`.
    pub in_progress: u64,
    /// Dedupe conflicts.
    pub conflicts: u64,
    /// Publishes the receivers counted as possible copies SQS won't drop (`PossibleCopies`).
    pub possible_copies: u64,
    /// Events the receivers counted as possibly queued under a key the store recorded nothing
    /// for (`UnrecordedSends`).
    pub unrecorded_sends: u64,
    /// Invocations in flight when their instance was killed (a claim may be left in progress,
    /// or a send made and never committed).
    pub interrupted: u64,
    /// The receivers' `StoreLatency` per delivery with store calls, milliseconds, sorted.
    pub store_latencies_ms: Vec<f64>,
    /// The envelope ids in the queue more than once (to look each up in the receivers' logs).
    pub duplicated_keys: Vec<String>,
    /// On a standard queue: copies of an event beyond the ambiguous attempts the receivers
    /// logged for that very event (its `dedupe_key`).
    pub copies_without_a_counted_attempt: u64,
    /// Twins sent (events reusing another's `operatorId` and `sequence` with other content).
    pub twins: u64,
    /// Envelope ids carried by messages of more than one content: two events under one id, of
    /// which a consumer deduplicating on `id` would drop one. Without the store a twin reaching
    /// another instance is one (docs/contract.md, "Dedupe, in layers"), so only a run with the
    /// store fails on it.
    pub shared_ids: u64,
    /// Whether the durable store was on.
    pub store: bool,
    /// Messages whose relay signature failed (altered on the way): every consumer refuses them,
    /// so they count as neither the event nor a copy.
    pub relay_refused: u64,
    /// Events some attempt was answered `duplicate` for, never queued: a `duplicate` answer
    /// that stood for content the queue never got.
    pub misanswered_duplicates: u64,
    /// Events whose every attempt got a 5xx or no answer (their sender gave up).
    pub never_acknowledged: u64,
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
        self.standard_queue |= other.standard_queue;
        self.store_calls += other.store_calls;
        self.restarts += other.restarts;
        self.late_resends += other.late_resends;
        self.ambiguous_publishes += other.ambiguous_publishes;
        self.store_failures += other.store_failures;
        self.in_progress += other.in_progress;
        self.conflicts += other.conflicts;
        self.possible_copies += other.possible_copies;
        self.unrecorded_sends += other.unrecorded_sends;
        self.interrupted += other.interrupted;
        self.store_latencies_ms.extend(other.store_latencies_ms);
        self.duplicated_keys.extend(other.duplicated_keys);
        self.copies_without_a_counted_attempt += other.copies_without_a_counted_attempt;
        self.twins += other.twins;
        self.shared_ids += other.shared_ids;
        self.store |= other.store;
        self.relay_refused += other.relay_refused;
        self.misanswered_duplicates += other.misanswered_duplicates;
        self.never_acknowledged += other.never_acknowledged;
        self.store_latencies_ms.sort_by(f64::total_cmp);
        for (kind, count) in other.store_faults {
            match self.store_faults.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, total)) => *total += count,
                None => self.store_faults.push((kind, count)),
            }
        }
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

    /// Nothing lost, extra or altered, no envelope id carrying two contents, no `duplicate`
    /// answer for content never queued, and no copy but those a counted cause allows
    /// ([`AuditReport::copies_allowed`]): on a FIFO queue none, on a standard one no more than
    /// the receivers counted as ambiguous attempts. Each copy carries its event's envelope `id`,
    /// so consumers' id checks remove them.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && (self.shared_ids == 0 || !self.store)
            && self.misanswered_duplicates == 0
            && self.duplicated <= self.copies_allowed()
            && self.copies_without_a_counted_attempt <= self.interrupted
            && self.extra == 0
            && self.data_mismatch == 0
            && self.queued == self.events + self.duplicated
    }

    /// The copies the run may make. On a standard queue, one per attempt the receivers counted
    /// as SQS possibly accepting although its answer was lost (`AmbiguousPublish`: a failed send,
    /// or an attempt inside the SDK's retries), and per event too: no event may have more copies
    /// than attempts logged for it (`copies_without_a_counted_attempt`); on a FIFO queue none, as SQS drops those within
    /// its window and the store covers every retry after it. With instances killed in flight
    /// (`--kill-in-flight`, a crash rather than Lambda retiring an environment), also one per
    /// invocation killed: a kill between the send and the commit leaves a claim that lapses, and
    /// a retry after the FIFO window publishes again. Store failures allow none: a commit the
    /// store did not answer is tried again, and a publish whose claim failed is recorded after.
    pub fn copies_allowed(&self) -> u64 {
        let ambiguous = if self.standard_queue {
            self.ambiguous_publishes
        } else {
            0
        };
        ambiguous + self.possible_copies + self.interrupted
    }

    /// Extra copies beyond [`AuditReport::copies_allowed`].
    pub fn unexplained_copies(&self) -> u64 {
        self.duplicated.saturating_sub(self.copies_allowed())
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
             | twins (other content under a reused key) | {} |\n| messages altered on the way (refused by the relay signature, as consumers refuse them) | {} |\n\
             | messages in the queue | {} |\n| lost | {} (after a 2xx: {}) |\n| duplicated (copies by data bytes) | {} |\n| extra | {} |\n| data not byte-identical | {} |\n\
             | envelope ids carrying two contents | {} |\n| `duplicate` answers for content never queued | {} |\n| events never acknowledged (every attempt 5xx or none) | {} |\n\
             | answer time p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |\n| sending phase | {:.1} s |\n{}| verdict | {} |\n",
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
            self.twins,
            self.relay_refused,
            self.queued,
            self.lost,
            self.lost_after_ack,
            self.duplicated,
            self.extra,
            self.data_mismatch,
            self.shared_ids,
            self.misanswered_duplicates,
            self.never_acknowledged,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.sending.as_secs_f64(),
            self.store_rows(),
            match (self.passed(), self.duplicated) {
                (true, 0) => "PASS: every event exactly once, byte-identical".to_owned(),
                (true, copies) => format!(
                    "PASS: every event, byte-identical; {copies} extra copies, at most the {} counted causes allow, same envelope id (0 after consumer id dedupe)",
                    self.copies_allowed()
                ),
                (false, _) => format!(
                    "FAIL ({} copies beyond the counted causes)",
                    self.unexplained_copies()
                ),
            },
        )
    }

    fn store_rows(&self) -> String {
        if self.store_calls == 0 {
            return String::new();
        }
        let faults: Vec<String> = self
            .store_faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let total: u64 = self.store_faults.iter().map(|(_, n)| n).sum();
        format!(
            "| queue | {} |\n| DynamoDB calls | {} |\n| store faults injected | {} ({:.1}%: {}) |\n\
             | instance restarts | {} |\n| late re-sends (queue drained, instances restarted) | {} |\n\
             | receivers' counts | AmbiguousPublish {}, StoreFailures {}, InProgress {}, DedupeConflicts {}, PossibleCopies {}, UnrecordedSends {} |\n\
             | invocations killed in flight | {} |\n| copies not explained by a counted cause | {} |\n\
             | copies beyond their own event's counted causes and killed attempts | {} |\n\
             | store time per delivery p50 / p99 | {:.1} / {:.1} ms |\n",
            if self.standard_queue {
                "standard"
            } else {
                "FIFO"
            },
            self.store_calls,
            total,
            100.0 * total as f64 / self.store_calls.max(1) as f64,
            faults.join(", "),
            self.restarts,
            self.late_resends,
            self.ambiguous_publishes,
            self.store_failures,
            self.in_progress,
            self.conflicts,
            self.possible_copies,
            self.unrecorded_sends,
            self.interrupted,
            self.unexplained_copies(),
            self.copies_without_a_counted_attempt,
            percentile(&self.store_latencies_ms, 0.50),
            percentile(&self.store_latencies_ms, 0.99),
        )
    }
}

/// Runs the audit. Panics only on harness failures (moto or a process that can't start).
pub async fn run(config: &AuditConfig) -> AuditReport {
    let moto = tokio::task::spawn_blocking(crate::moto::moto)
        .await
        .expect("moto starts");
    let sqs = local_sqs::client(&moto.endpoint);
    let name = format!("hookrelay-audit-{}-{}", std::process::id(), config.seed);
    let queue_url = if config.standard_queue {
        local_sqs::create_standard_queue(&sqs, &name).await
    } else {
        local_sqs::create_fifo_queue(&sqs, &format!("{name}.fifo")).await
    }
    .expect("create the audit queue");

    let plan = FaultPlan {
        fraction: config.fault_fraction,
        seed: config.seed,
        slow_for: Duration::from_millis(2_500),
        kinds: Fault::SQS,
    };
    let proxy = FaultProxy::start(&moto.endpoint, plan)
        .await
        .expect("start the fault proxy");

    let keys = test_keys();
    // Two engine registrations: the twins are signed by the second.
    let engine_secrets = format!("{},{}", keys.engine, keys.engine_twin);
    let relay = crate::relay_keys::env();
    let mut env: Vec<(String, String)> = [
        ("HOOKRELAY_QUEUE_URL", queue_url.as_str()),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        ("HOOKRELAY_ENGINE_SECRETS", engine_secrets.as_str()),
        ("HOOKRELAY_REKKO_SECRETS", keys.rekko.as_str()),
        ("HOOKRELAY_STANDARD_SECRETS", keys.standard.as_str()),
        ("AWS_ENDPOINT_URL_SQS", proxy.url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "audit"),
        ("AWS_SECRET_ACCESS_KEY", "audit"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        // Every delivery's line when the logs are kept (`--log-dir`), to trace a copy; else
        // warnings only, as each line costs the receivers time.
        (
            "AWS_LAMBDA_LOG_LEVEL",
            if config.log_dir.is_some() {
                "info"
            } else {
                "warn"
            },
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    // The store: its table in moto, behind a fault proxy of its own (a slow answer is held
    // past the store's 500 ms attempt timeout).
    let mut store_proxy = None;
    let mut log_dir = config.log_dir.clone();
    if let Some(store) = &config.store {
        let dynamodb = local_dynamodb::client(&moto.endpoint);
        let table = format!("{name}-idempotency");
        local_dynamodb::create_idempotency_table(&dynamodb, &table)
            .await
            .expect("create the audit table");
        let proxy = FaultProxy::start(
            &moto.endpoint,
            FaultPlan {
                fraction: store.fault_fraction,
                seed: config.seed ^ 0x5703E,
                slow_for: Duration::from_millis(1_500),
                kinds: Fault::AMBIGUOUS,
            },
        )
        .await
        .expect("start the store's fault proxy");
        env.extend([
            ("HOOKRELAY_IDEMPOTENCY_TABLE".to_owned(), table),
            ("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), proxy.url.clone()),
            (
                "HOOKRELAY_IDEMPOTENCY_TTL_SECS".to_owned(),
                store.ttl_secs.to_string(),
            ),
            (
                "HOOKRELAY_IDEMPOTENCY_CLAIM_SECS".to_owned(),
                store.claim_secs.to_string(),
            ),
        ]);
        store_proxy = Some(proxy);
        // The receivers' own counts come from their EMF lines.
        let dir = log_dir.get_or_insert_with(|| {
            std::env::temp_dir().join(format!(
                "hookrelay-audit-{}-{}",
                std::process::id(),
                config.seed
            ))
        });
        let _ = std::fs::create_dir_all(dir);
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut instances = Vec::new();
    let mut logs_written = Vec::new();
    for index in 0..config.instances.max(1) {
        let log = log_dir
            .as_ref()
            .map(|dir| dir.join(format!("receiver-{index}.log")));
        if let Some(log) = &log {
            let _ = std::fs::remove_file(log);
            logs_written.push(log.clone());
        }
        let instance = LambdaInstance::start(&config.receiver, &env, log.as_deref())
            .await
            .expect("start a receiver instance");
        instances.push(instance);
    }
    let urls: Vec<String> = instances.iter().map(|i| i.url.clone()).collect();
    let instances = std::sync::Arc::new(tokio::sync::Mutex::new(instances));

    let (specs, late_twins) = event_specs(config);
    let sim = SimConfig::engine_schedule(
        config.time_scale,
        config.concurrency,
        config.duplicate_fraction,
        config.seed,
    );
    // Restarts while the senders run: one instance in turn, every `restart_every`.
    let (stop_restarts, mut stopped) = tokio::sync::watch::channel(false);
    let restarter = config.store.as_ref().map(|store| {
        let (instances, every) = (instances.clone(), store.restart_every);
        let kill_in_flight = store.kill_in_flight;
        tokio::spawn(async move {
            let (mut restarts, mut interrupted) = (0u64, 0u64);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return (restarts, interrupted),
                }
                let mut instances = instances.lock().await;
                let count = instances.len();
                if let Some(instance) = instances.get_mut(restarts as usize % count.max(1)) {
                    let killed = if kill_in_flight {
                        instance.restart().await
                    } else {
                        instance.recycle().await
                    };
                    if let Ok(killed) = killed {
                        restarts += 1;
                        interrupted += killed as u64;
                    }
                }
            }
        })
    });
    let started = Instant::now();
    let mut logs = sender_sim::run(urls.clone(), specs, keys.clone(), sim.clone()).await;
    let _ = stop_restarts.send(true);
    let (mut restarts, interrupted) = match restarter {
        Some(task) => task.await.unwrap_or_default(),
        None => (0, 0),
    };

    // Read (and delete) everything queued so far.
    let mut queued: HashMap<String, Vec<String>> = HashMap::new();
    let mut relay_refused = 0;
    let mut read = drain_into(&sqs, &queue_url, &mut queued, &mut relay_refused).await;

    // Retries beyond the FIFO window: the queue is drained, so moto has forgotten every
    // deduplication id (as SQS does after five minutes), and every instance is cold.
    let mut late_resends = 0;
    if let Some(store) = &config.store {
        for instance in instances.lock().await.iter_mut() {
            if instance.recycle().await.is_ok() {
                restarts += 1;
            }
        }
        let mut late: Vec<usize> = (0..logs.len())
            .filter(|&i| seeded::draw(config.seed ^ 0x1A7E, i as u64) < store.late_fraction)
            .collect();
        late.sort_unstable();
        let mut chosen: Vec<sender_sim::DeliveryLog> =
            late.iter().map(|&i| logs[i].clone()).collect();
        late_resends = chosen.len() as u64;
        // The late twins go out for the first time beside the late re-sends.
        let (_, twins_sent) = tokio::join!(
            sender_sim::resend_late(urls.clone(), &mut chosen, &keys, &sim),
            sender_sim::run(urls.clone(), late_twins, keys.clone(), sim.clone()),
        );
        for (&i, log) in late.iter().zip(chosen) {
            logs[i] = log;
        }
        logs.extend(twins_sent);
        read += drain_into(&sqs, &queue_url, &mut queued, &mut relay_refused).await;
    }
    let sending = started.elapsed();
    drop(instances);

    let mut report = account(&logs, &queued, read - relay_refused, &proxy, sending);
    report.relay_refused = relay_refused;
    report.standard_queue = config.standard_queue;
    report.store = config.store.is_some();
    if let Some(store_proxy) = &store_proxy {
        report.store_calls = store_proxy
            .counts
            .calls
            .load(std::sync::atomic::Ordering::Relaxed);
        report.store_faults = fault_kinds(store_proxy, Fault::AMBIGUOUS);
        report.restarts = restarts;
        report.late_resends = late_resends;
        let counts = receiver_counts(&logs_written);
        report.ambiguous_publishes = counts("AmbiguousPublish");
        report.store_failures = counts("StoreFailures");
        report.in_progress = counts("InProgress");
        report.conflicts = counts("DedupeConflicts");
        report.possible_copies = counts("PossibleCopies");
        report.unrecorded_sends = counts("UnrecordedSends");
        report.interrupted = interrupted;
        report.store_latencies_ms = receiver_values(&logs_written, "StoreLatency");
    } else if config.standard_queue {
        report.ambiguous_publishes = receiver_counts(&logs_written)("AmbiguousPublish");
    }
    {
        // Each copy against its own event's counted causes, not only the total: possible copies
        // the receivers logged for it and, on a standard queue, its ambiguous attempts. On a
        // FIFO queue also the earlier attempts a publish inside SQS's window was logged with:
        // the drain before the late re-sends stands for the five minutes the receivers' clocks
        // don't see (in AWS those publishes count as `PossibleCopies`), and the publishes whose
        // claim the store did not answer (a late one is a copy, counted as `StoreFailures`; on a
        // standard queue they count as `PossibleCopies`).
        let fields: &[&str] = if config.standard_queue {
            &["ambiguous_attempts", "possible_copies"]
        } else {
            &["possible_copies", "earlier_attempts", "unconfirmed_claims"]
        };
        let attempts = causes_by_key(&logs_written, fields);
        // An attempt answered 502 is one the emulator lost with its killed instance (between a
        // send and its commit, it may leave a copy the next attempt can't see): its event's own
        // cause, as `invocations killed in flight` counts it for the run.
        let killed: HashMap<&[u8], u64> = logs
            .iter()
            .map(|log| {
                let lost = log
                    .attempts
                    .iter()
                    .filter(|a| a.status == Some(502))
                    .count();
                (log.body.as_slice(), lost as u64)
            })
            .collect();
        // Copies are messages of the same content, whatever envelope ids they carry (an attempt
        // under its content key and one under the key are one event); their causes are those
        // logged under any of those ids. Other content under one id is `shared_ids`, apart.
        let mut ids_by_content: HashMap<&String, Vec<&String>> = HashMap::new();
        for (id, contents) in &queued {
            for content in contents {
                ids_by_content.entry(content).or_default().push(id);
            }
        }
        report.copies_without_a_counted_attempt = ids_by_content
            .iter()
            .map(|(content, ids)| {
                let copies = ids.len() as u64 - 1;
                let distinct: std::collections::HashSet<&&String> = ids.iter().collect();
                let causes: u64 = distinct
                    .iter()
                    .map(|id| attempts.get(**id).copied().unwrap_or(0))
                    .sum::<u64>()
                    + killed.get(content.as_bytes()).copied().unwrap_or(0);
                copies.saturating_sub(causes)
            })
            .sum();
    }
    report
}

/// The events to send first (in any order) and, with the store, the twins held back for the late
/// phase. Without the store a late twin goes out 8 s (scaled) after the start instead.
fn event_specs(config: &AuditConfig) -> (Vec<EventSpec>, Vec<EventSpec>) {
    let senders = [Sender::Engine, Sender::Rekko, Sender::Standard];
    let mut specs: Vec<EventSpec> = (0..config.events)
        .map(|i| EventSpec::of(senders[(i % 3) as usize], i))
        .collect();
    let mut late = Vec::new();
    let scaled = |secs: f64| Duration::from_secs_f64(secs * config.time_scale);
    for n in (0..config.events).step_by(3) {
        let roll = seeded::draw(config.seed ^ 0x7817, n);
        if roll >= config.twin_fraction {
            continue;
        }
        // Evenly: with the original, 2 to 8 s after it, late.
        let when = roll / config.twin_fraction.max(f64::MIN_POSITIVE);
        match (when * 3.0) as u32 {
            0 => specs.push(EventSpec::twin_of(n, Duration::ZERO)),
            1 => specs.push(EventSpec::twin_of(
                n,
                scaled(2.0 + 6.0 * (when * 3.0 - 1.0)),
            )),
            _ if config.store.is_some() => late.push(EventSpec::twin_of(n, Duration::ZERO)),
            _ => specs.push(EventSpec::twin_of(n, scaled(8.0))),
        }
    }
    (specs, late)
}

/// The counts in `fields` the receivers logged for each event (`dedupe_key`, which is its
/// envelope `id`): `ambiguous_attempts` (the warning of a send that succeeded after one, the
/// error of one that failed), `possible_copies` (a publish after an attempt that may have sent).
fn causes_by_key(logs: &[PathBuf], fields: &[&str]) -> HashMap<String, u64> {
    let mut causes = HashMap::new();
    for text in logs
        .iter()
        .filter_map(|log| std::fs::read_to_string(log).ok())
    {
        for line in text.lines().filter(|line| {
            fields
                .iter()
                .any(|field| line.contains(&format!("\"{field}\"")))
        }) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let logged = &entry["fields"];
            let Some(key) = logged["dedupe_key"].as_str() else {
                continue;
            };
            let count: u64 = fields.iter().filter_map(|f| logged[*f].as_u64()).sum();
            *causes.entry(key.to_owned()).or_default() += count;
        }
    }
    causes
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Receives and deletes every message, keeping each envelope's `data` under its `id`.
/// A message whose relay signature does not verify (altered on the way) is refused, as every
/// consumer refuses it, and counted in `refused`.
async fn drain_into(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    queued: &mut HashMap<String, Vec<String>>,
    refused: &mut u64,
) -> u64 {
    let trust = crate::relay_keys::trust();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    local_sqs::drain(sqs, queue_url, 3, |message| {
        let body = message.body().unwrap_or_default();
        let attribute = |name: &str| {
            message
                .message_attributes()
                .and_then(|attributes| attributes.get(name))
                .and_then(|value| value.string_value())
        };
        let relay = hookrelay::relay::ReceivedRelaySignature {
            id: attribute(hookrelay::relay::attributes::RELAY_ID),
            timestamp: attribute(hookrelay::relay::attributes::RELAY_TIMESTAMP),
            signatures: attribute(hookrelay::relay::attributes::RELAY_SIGNATURE),
        };
        if trust.verify(relay, body, now).is_err() {
            *refused += 1;
            return;
        }
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
    .expect("read the audit queue")
}

/// A counter summed over the receivers' EMF lines in `logs`.
fn receiver_counts(logs: &[PathBuf]) -> impl Fn(&str) -> u64 + '_ {
    move |metric: &str| receiver_values(logs, metric).iter().sum::<f64>() as u64
}

/// Every value of `metric` in the receivers' EMF lines in `logs`, sorted.
fn receiver_values(logs: &[PathBuf], metric: &str) -> Vec<f64> {
    let mut values: Vec<f64> = logs
        .iter()
        .filter_map(|log| std::fs::read_to_string(log).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|line| line.starts_with("{\"_aws\""))
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter_map(|doc| doc.get(metric).and_then(serde_json::Value::as_f64))
                .collect::<Vec<_>>()
        })
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

fn fault_kinds(proxy: &FaultProxy, kinds: &[Fault]) -> Vec<(&'static str, u64)> {
    kinds
        .iter()
        .map(|kind| (kind.name(), proxy.counts.of(*kind)))
        .collect()
}

/// The report for the events in `logs` against the messages `queued` (data by envelope id):
/// each event is found by its data bytes, whichever id it went out under (its key, or
/// `{key}#{digest}` after a conflict).
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
    // Every message's envelope id, by its data.
    let mut by_data: HashMap<&[u8], Vec<&str>> = HashMap::new();
    for (id, copies) in queued {
        for data in copies {
            by_data
                .entry(data.as_bytes())
                .or_default()
                .push(id.as_str());
        }
    }
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
        report.never_acknowledged += u64::from(!log.acknowledged);
        report.twins += u64::from(log.spec.twin);
        for attempt in &log.attempts {
            *answers.entry(attempt.status.unwrap_or(0)).or_default() += 1;
            latencies.push(attempt.latency.as_secs_f64() * 1000.0);
        }
        let ids = by_data
            .get(log.body.as_slice())
            .map_or(&[][..], Vec::as_slice);
        if ids.is_empty() {
            report.lost += 1;
            report.lost_after_ack += u64::from(log.acknowledged);
            report.misanswered_duplicates +=
                u64::from(log.attempts.iter().any(|attempt| attempt.duplicate));
            continue;
        }
        report.duplicated += ids.len() as u64 - 1;
        if ids.len() > 1 {
            report.duplicated_keys.push(ids[0].to_owned());
        }
        // Under its own key, or that key's conflict form.
        let own_id = |id: &&str| {
            id.strip_prefix(log.dedupe_key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
        };
        report.data_mismatch += u64::from(!ids.iter().all(own_id));
    }
    // A message no event's data matches: altered on the way, or nobody sent it.
    let sent: std::collections::HashSet<&[u8]> = logs.iter().map(|l| l.body.as_slice()).collect();
    report.extra = by_data
        .iter()
        .filter(|(data, _)| !sent.contains(*data))
        .map(|(_, ids)| ids.len() as u64)
        .sum();
    report.shared_ids = queued
        .values()
        .filter(|copies| {
            let contents: std::collections::HashSet<&String> = copies.iter().collect();
            contents.len() > 1
        })
        .count() as u64;

    let mut answers: Vec<(u16, u64)> = answers.into_iter().collect();
    answers.sort();
    report.answers = answers;
    report.latencies_ms = latencies;
    report.set_percentiles();

    report.sqs_calls = proxy
        .counts
        .calls
        .load(std::sync::atomic::Ordering::Relaxed);
    report.faults = fault_kinds(proxy, Fault::SQS);
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
