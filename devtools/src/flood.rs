//! The public URL under a flood: genuine engine deliveries on the engine's own schedule
//! (attempt, +5 s, +30 s; 10 s timeout) beside a flood of junk (bad signatures and unknown
//! paths), both sent to the receiver behind a Function URL with reserved concurrency
//! ([`crate::throttled_url`]), against moto's SQS. It measures what share of genuine events
//! still gets through, how much of the flood reaches the function (each such request is
//! refused and counted in `Rejected`), and how much is throttled at the URL (429, never an
//! invocation). docs/operations.md, "Reserved concurrency", reads its figures.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::audit::test_keys;
use crate::local_sqs;
use crate::sender_sim::{self, EventSpec, Sender, SimConfig};
use crate::throttled_url::ThrottledFunctionUrl;

/// What to run.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The receiver binary.
    pub receiver: PathBuf,
    /// Reserved concurrency: instances behind the URL (and `10 ×` this, requests per second).
    pub reserved: usize,
    /// Genuine engine events per second.
    pub genuine_per_second: f64,
    /// Junk requests per second (0: no flood).
    pub flood_per_second: f64,
    /// How long events and junk are sent.
    pub duration: Duration,
    /// Seed of the send order.
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Default)]
pub struct FloodReport {
    /// Genuine events sent.
    pub events: u64,
    /// Genuine events some attempt of which was acknowledged (2xx).
    pub acknowledged: u64,
    /// Genuine attempts by answer (0: timeout or no connection).
    pub genuine_answers: BTreeMap<u16, u64>,
    /// Junk requests by answer.
    pub junk_answers: BTreeMap<u16, u64>,
    /// Requests the URL handed to an instance.
    pub invoked: u64,
    /// Requests the URL answered 429: every instance busy, or over the request rate.
    pub throttled_busy: u64,
    /// Requests the URL answered 429 for the request rate.
    pub throttled_rate: u64,
    /// How long the sending took, the senders' retries included.
    pub elapsed: Duration,
}

impl FloodReport {
    /// The share of genuine events acknowledged.
    pub fn delivered_share(&self) -> f64 {
        self.acknowledged as f64 / self.events.max(1) as f64
    }

    /// The report as Markdown.
    pub fn markdown(&self, config: &FloodConfig) -> String {
        let answers = |map: &BTreeMap<u16, u64>| {
            map.iter()
                .map(|(status, n)| {
                    if *status == 0 {
                        format!("timeout {n}")
                    } else {
                        format!("{status}: {n}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let junk: u64 = self.junk_answers.values().sum();
        let refused_by_function: u64 = self
            .junk_answers
            .iter()
            .filter(|(status, _)| **status != 429 && **status != 0)
            .map(|(_, n)| n)
            .sum();
        format!(
            "| figure | value |\n|---|---|\n\
             | reserved concurrency (requests per second cap) | {} ({}) |\n\
             | genuine events per second / junk per second | {} / {} |\n\
             | sending, retries included | {:.0} s |\n\
             | genuine events delivered | {} of {} ({:.1} %) |\n\
             | genuine attempts' answers | {} |\n\
             | junk requests' answers | {} ({}) |\n\
             | junk that reached the function (counted in `Rejected`) | {} ({:.1} per second) |\n\
             | throttled at the URL: busy / over the rate | {} / {} |\n",
            config.reserved,
            10 * config.reserved,
            config.genuine_per_second,
            config.flood_per_second,
            self.elapsed.as_secs_f64(),
            self.acknowledged,
            self.events,
            100.0 * self.delivered_share(),
            answers(&self.genuine_answers),
            answers(&self.junk_answers),
            junk,
            refused_by_function,
            refused_by_function as f64 / self.elapsed.as_secs_f64().max(1.0),
            self.throttled_busy,
            self.throttled_rate,
        )
    }
}

/// Runs one flood. Panics only on harness failures (moto or a process that can't start).
pub async fn run(config: &FloodConfig) -> FloodReport {
    let moto = tokio::task::spawn_blocking(crate::moto::moto)
        .await
        .expect("moto starts");
    let sqs = local_sqs::client(&moto.endpoint);
    let name = format!(
        "hookrelay-flood-{}-{}.fifo",
        std::process::id(),
        config.seed
    );
    let queue_url = local_sqs::create_fifo_queue(&sqs, &name)
        .await
        .expect("create the flood queue");
    let keys = test_keys();
    let relay = crate::relay_keys::env();
    let env = [
        ("HOOKRELAY_QUEUE_URL", queue_url.as_str()),
        (relay[0].0, relay[0].1.as_str()),
        (relay[1].0, relay[1].1.as_str()),
        ("HOOKRELAY_ENGINE_SECRETS", keys.engine.as_str()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "flood"),
        ("AWS_SECRET_ACCESS_KEY", "flood"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "warn"),
    ];
    let front = ThrottledFunctionUrl::start(&config.receiver, &env, config.reserved, None)
        .await
        .expect("start the throttled function URL");

    let events = (config.genuine_per_second * config.duration.as_secs_f64()).round() as u64;
    let mut arrivals = poisson(config.genuine_per_second, config.seed);
    let specs: Vec<EventSpec> = (0..events)
        .map(|n| EventSpec {
            delay: arrivals.next().unwrap_or_default(),
            ..EventSpec::of(Sender::Engine, n)
        })
        .collect();
    let sim = SimConfig::engine_schedule(1.0, events.max(1) as usize, 0.0, config.seed);
    let started = Instant::now();
    // The flood lasts until the last genuine attempt is answered: retries meet it too.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let junk = tokio::spawn(flood(
        front.url.clone(),
        config.flood_per_second,
        config.seed,
        stopped,
    ));
    // The queue is drained as it fills: moto's FIFO send slows with the messages a queue
    // holds, and this measures the cap, not moto.
    let drainer = {
        let (sqs, queue_url, mut stopped) = (sqs.clone(), queue_url.clone(), stop.subscribe());
        tokio::spawn(async move {
            while !*stopped.borrow_and_update() {
                if local_sqs::drain(&sqs, &queue_url, 1, |_| {}).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    };
    let logs = sender_sim::run(vec![front.url.clone()], specs, keys, sim).await;
    let _ = stop.send(true);
    let junk_answers = junk.await.unwrap_or_default();
    let _ = drainer.await;
    let mut report = FloodReport {
        events,
        elapsed: started.elapsed(),
        junk_answers,
        ..FloodReport::default()
    };
    for log in &logs {
        report.acknowledged += u64::from(log.acknowledged);
        for attempt in &log.attempts {
            *report
                .genuine_answers
                .entry(attempt.status.unwrap_or(0))
                .or_default() += 1;
        }
    }
    let count =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    report.invoked = count(&front.counts.invoked);
    report.throttled_busy = count(&front.counts.throttled_busy);
    report.throttled_rate = count(&front.counts.throttled_rate);
    report
}

/// Arrival times of a Poisson process at `per_second` from the start (seeded): evenly spaced
/// requests would line up with the rate's refills and be admitted or refused by their phase.
fn poisson(per_second: f64, seed: u64) -> impl Iterator<Item = Duration> {
    let mut at = 0.0;
    (0u64..).map(move |n| {
        at += -(1.0 - crate::seeded::draw(seed, n)).ln() / per_second;
        Duration::from_secs_f64(at)
    })
}

/// Sends junk at `per_second` (Poisson arrivals) until `stop` says so: nine in ten to `/engine` with a signature
/// that is not the secret's, one in ten to a path that routes nowhere. Returns the answers.
async fn flood(
    url: String,
    per_second: f64,
    seed: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> BTreeMap<u16, u64> {
    let mut answers = BTreeMap::new();
    if per_second <= 0.0 {
        return answers;
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let client = Arc::new(client);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let mut arrivals = poisson(per_second, seed ^ 0xF100D);
    for n in 0u64.. {
        let next = start + arrivals.next().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => break,
        }
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let body = format!(
                r#"{{"id":"junk-{seed}-{n}","sequence":{n},"eventType":"ORDER_MATCHED","marketId":"m","operatorId":"op-flood","payload":{{}},"timestamp":"2026-02-18T23:00:00.000Z"}}"#
            );
            let path = if n % 10 == 9 { "/wp-login.php" } else { "/engine" };
            let request = Request::post(format!("{url}{path}"))
                .header("content-type", "application/json")
                .header("x-webhook-signature", format!("sha256={}", "0".repeat(64)))
                .body(Full::new(Bytes::from(body)))
                .expect("a request");
            match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
                Ok(Ok(response)) => response.status().as_u16(),
                _ => 0,
            }
        }));
    }
    for task in tasks {
        *answers.entry(task.await.unwrap_or(0)).or_default() += 1;
    }
    answers
}
