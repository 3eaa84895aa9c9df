//! What `hookrelay-dev`'s client commands do: `trigger`, `watch` and `forward` against the local
//! lab (or a queue of your own), and `send`, the smoke test for a deployed stack. The command
//! line is in [`crate::dev_cli`]; docs/getting-started.md, "The local lab", is the user's view.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use hookrelay::relay::RelayTrust;
use hookrelay::senders::{self, Sender};

use crate::event_catalog::{self, Trigger};
use crate::http_client::HttpClient;
use crate::lab::{self, LabFile};
use crate::queue_reader::{self, PostSink, Sink, VerifiedMessage};
use crate::signals::Stop;
use crate::{smoke, sqs_tap};

fn sender_named(provider: &str) -> Result<Sender, String> {
    senders::by_name(provider).ok_or_else(|| {
        format!(
            "no provider {provider:?}: engine, rekko or standard (the bridge's Heisenberg stream has no webhook)"
        )
    })
}

/// The running lab's variables, or an error saying how to start one.
fn running_lab(path: &Path) -> Result<LabFile, String> {
    LabFile::read(path)?.ok_or_else(|| {
        format!(
            "no lab at {} (it exists while `hookrelay-dev up` runs): start one, or pass --lab-env",
            path.display()
        )
    })
}

/// The next engine sequence for `trigger`: one more than the last, kept beside the lab file.
fn next_sequence(lab_env: &Path) -> Result<u64, String> {
    let path = lab_env.with_file_name("trigger-sequence");
    let next = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(1, |last| last + 1);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, next.to_string())
        .map_err(|e| format!("{}: {e} (or pass --sequence)", path.display()))?;
    Ok(next)
}

/// Whether `url` points at this machine.
fn is_loopback(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What `trigger` sends, beyond the provider and the type.
pub struct TriggerOptions<'a> {
    /// `--market`.
    pub market: Option<&'a str>,
    /// `--sequence`.
    pub sequence: Option<u64>,
    /// `--field`s, unparsed.
    pub fields: &'a [String],
    /// `--repeat`.
    pub repeat: u32,
    /// `--not-a-production-stack`.
    pub not_production: bool,
}

/// `hookrelay-dev trigger`: one delivery of `event_type` from `provider`, signed, sent, answered
/// and (for the lab) found in the queue.
pub async fn trigger(
    provider: &str,
    event_type: Option<&str>,
    options: TriggerOptions<'_>,
    url: Option<String>,
    lab_env: &Path,
) -> Result<(), String> {
    let TriggerOptions {
        market,
        sequence,
        fields,
        repeat,
        not_production,
    } = options;
    let sender = sender_named(provider)?;
    let Some(event_type) = event_type else {
        let note = if sender == senders::STANDARD {
            " (any type is accepted; these have their own data)"
        } else {
            ""
        };
        println!("{provider}'s event types{note}:");
        for event_type in event_catalog::event_types(sender) {
            println!("  {event_type}");
        }
        return Ok(());
    };
    let fields = fields
        .iter()
        .map(|field| event_catalog::parse_field(field).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let (base, secret, lab) = match url {
        Some(url) => {
            if !is_loopback(&url) && !not_production {
                return Err(format!(
                    "{url} is not on this machine: trigger sends real event types (ORDER_MATCHED \
                     moves a bot; `send`'s smoke test is the one consumers skip). Add \
                     --not-a-production-stack if no live consumer reads that stack's queue"
                ));
            }
            let secret = std::env::var(sender.secrets_variable).map_err(|_| {
                format!(
                    "--url signs with {}: set it to the receiver's secret",
                    sender.secrets_variable
                )
            })?;
            // The lab's tap shows only the lab's queue.
            (url, secret, None)
        }
        None => {
            let lab = running_lab(lab_env)?;
            (
                lab.require(lab::LAB_URL)?.to_owned(),
                lab.require(sender.secrets_variable)?.to_owned(),
                Some(lab),
            )
        }
    };
    // The first of a comma-separated list signs, as the sender would with its current secret.
    let secret = secret
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let now = time::OffsetDateTime::now_utc();
    let nonce = u64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or_default();
    let sequence = match sequence {
        Some(sequence) => sequence,
        None => next_sequence(lab_env)?,
    };
    let delivery = event_catalog::build(
        &Trigger {
            sender,
            event_type,
            market,
            sequence,
            fields: &fields,
            now,
            nonce,
        },
        &secret,
    )
    .map_err(|e| e.to_string())?;
    let client = HttpClient::new();
    let tap = lab
        .as_ref()
        .and_then(|l| l.get(lab::LAB_ENDPOINT).map(str::to_owned));
    let latest = match &tap {
        Some(tap) => sqs_tap::read(&client, tap, u64::MAX, Duration::ZERO)
            .await
            .ok()
            .map(|p| p.latest),
        None => None,
    };
    let target = smoke::route_url(&base, sender);
    let started = Instant::now();
    let mut first_answer = None;
    for _ in 0..repeat {
        let sent = Instant::now();
        let (status, answer) = client
            .request(
                "POST",
                &target,
                &delivery.headers,
                delivery.body.clone(),
                Duration::from_secs(15),
            )
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        println!(
            "{provider} {} → {status} {answer} ({} ms)",
            delivery_type(&delivery.body, event_type),
            sent.elapsed().as_millis()
        );
        if !(200..300).contains(&status) {
            return Err(format!("{target} answered {status}"));
        }
        first_answer.get_or_insert(answer);
    }
    if first_answer.is_some_and(|answer| answer.contains("\"duplicate\"")) {
        println!("(a duplicate: nothing new was queued)");
        return Ok(());
    }
    // The envelope, when the lab's tap can show it.
    let (Some(tap), Some(latest), Some(lab)) = (tap, latest, lab) else {
        return Ok(());
    };
    let trust = lab_trust(&lab)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = latest;
    while Instant::now() < deadline {
        let page = sqs_tap::read(&client, &tap, after, Duration::from_millis(500)).await?;
        after = page.latest;
        for message in page.messages {
            let Ok(envelope) = hookrelay::consumer::verified_envelope(
                &trust,
                &message.body,
                &message.attributes,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ) else {
                continue;
            };
            if envelope.id == delivery.envelope_id {
                println!(
                    "in the queue after {} ms, relay signature verified:\n{}",
                    started.elapsed().as_millis(),
                    pretty(&message.body)
                );
                return Ok(());
            }
        }
    }
    Err(format!(
        "{} not seen in the lab's queue within 5 s",
        delivery.envelope_id
    ))
}

/// The event type as sent (the catalog normalises case).
fn delivery_type(body: &str, asked: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("eventType")
                .or_else(|| v.get("type"))
                .and_then(|t| t.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| asked.to_owned())
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

fn lab_trust(lab: &LabFile) -> Result<RelayTrust, String> {
    let keys = lab.require(hookrelay_ingest::settings::RELAY_PUBLIC_KEYS)?;
    RelayTrust::parse(keys)
        .map_err(|e| format!("{}: the relay public keys: {e}", lab.path.display()))
}

/// The relay public keys from the environment (a deployed stack's consumers' variable).
fn env_trust() -> Result<RelayTrust, String> {
    let env = hookrelay::config::Env::new(|name: &str| std::env::var(name).ok());
    match hookrelay::consumer::relay_trust_from_env(&env) {
        Ok(Some(trust)) => Ok(trust),
        Ok(None) => Err(
            "relay signatures are always checked here: unset HOOKRELAY_RELAY_VERIFICATION".into(),
        ),
        Err(problem) => Err(format!("the relay public keys: {problem}")),
    }
}

/// One line per envelope: when (`at`), what it is, its id.
fn summary(at: time::OffsetDateTime, envelope: &hookrelay::Envelope) -> String {
    let time = at
        .format(time::macros::format_description!(
            "[hour]:[minute]:[second].[subsecond digits:3]"
        ))
        .unwrap_or_default();
    let market = envelope.market_id.as_deref().unwrap_or("-");
    let sequence = envelope
        .sequence
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    format!(
        "{time}  {:<10} {:<22} market={market} seq={sequence} via={} id={}  relay signature ok",
        envelope.provider,
        envelope.event_type,
        serde_json::to_value(envelope.via)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        envelope.id
    )
}

/// What `watch` prints for one verified message.
struct PrintSink {
    json: bool,
}

impl PrintSink {
    fn print(&self, at: time::OffsetDateTime, envelope: &hookrelay::Envelope, body: &str) {
        use std::io::Write;
        if self.json {
            println!("{body}");
        } else {
            println!("{}", summary(at, envelope));
        }
        let _ = std::io::stdout().flush();
    }
}

impl Sink for PrintSink {
    async fn take(&mut self, message: &VerifiedMessage) -> Result<String, String> {
        self.print(
            time::OffsetDateTime::now_utc(),
            &message.envelope,
            &message.body,
        );
        Ok("printed".into())
    }
}

/// `hookrelay-dev watch`: the lab's tap, or a queue of your own (`queue`), printed.
pub async fn watch(
    json: bool,
    all: bool,
    queue: Option<String>,
    lab_env: &Path,
) -> Result<(), String> {
    let mut printer = PrintSink { json };
    let stop = Stop::on_signals();
    if let Some(queue) = queue {
        let sdk = hookrelay_aws::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        return queue_reader::run(&sqs, &queue, &env_trust()?, &mut printer, &stop).await;
    }
    let lab = running_lab(lab_env)?;
    let trust = lab_trust(&lab)?;
    let tap = lab.require(lab::LAB_ENDPOINT)?.to_owned();
    let client = HttpClient::new();
    let mut after = if all {
        0
    } else {
        sqs_tap::read(&client, &tap, u64::MAX, Duration::ZERO)
            .await?
            .latest
    };
    eprintln!(
        "hookrelay-dev: watching {} through the lab's tap (nothing is received from the queue); Ctrl-C stops",
        lab.get(hookrelay_ingest::settings::QUEUE_URL)
            .unwrap_or("the lab's queue")
    );
    while !stop.requested() {
        let page = tokio::select! {
            page = sqs_tap::read(&client, &tap, after, Duration::from_secs(10)) => page?,
            () = stop.wait() => break,
        };
        after = page.latest.max(after);
        for message in page.messages {
            after = after.max(message.number);
            match hookrelay::consumer::verified_envelope(
                &trust,
                &message.body,
                &message.attributes,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ) {
                Ok(envelope) => {
                    let accepted = time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(message.accepted_at_ms) * 1_000_000,
                    )
                    .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
                    printer.print(accepted, &envelope, &message.body);
                }
                Err(problem) => eprintln!("message {} REFUSED: {problem}", message.message_id),
            }
        }
    }
    Ok(())
}

/// `hookrelay-dev forward`: a queue (the lab's by default) POSTed to `to`.
pub async fn forward(to: &str, queue: Option<String>, lab_env: &Path) -> Result<(), String> {
    let (sqs, queue, trust) = match queue {
        Some(queue) => {
            let sdk =
                hookrelay_aws::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
            (aws_sdk_sqs::Client::new(&sdk), queue, env_trust()?)
        }
        None => {
            let lab = running_lab(lab_env)?;
            let sqs = crate::local_sqs::client(lab.require(lab::LAB_ENDPOINT)?);
            let queue = lab
                .require(hookrelay_ingest::settings::QUEUE_URL)?
                .to_owned();
            (sqs, queue, lab_trust(&lab)?)
        }
    };
    eprintln!(
        "hookrelay-dev: forwarding {queue} to {to} (deleting each message after a 2xx); Ctrl-C stops"
    );
    let mut sink = ForwardPrinter {
        post: PostSink {
            url: to.to_owned(),
            client: HttpClient::new(),
        },
    };
    queue_reader::run(&sqs, &queue, &trust, &mut sink, &Stop::on_signals()).await
}

/// POSTs, and prints one line per delivered envelope.
struct ForwardPrinter {
    post: PostSink,
}

impl Sink for ForwardPrinter {
    async fn take(&mut self, message: &VerifiedMessage) -> Result<String, String> {
        let outcome = self.post.take(message).await?;
        println!(
            "{}  {outcome}",
            summary(time::OffsetDateTime::now_utc(), &message.envelope)
        );
        Ok(outcome)
    }
}

/// `hookrelay-dev send`: the smoke test (devtools/src/smoke.rs).
pub async fn send(
    url: &str,
    provider: &str,
    secrets_arn: Option<String>,
    queue_url: Option<String>,
    wait: Duration,
) -> Result<(), String> {
    let sender = sender_named(provider)?;
    let sdk = hookrelay_aws::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
    let env_secret = std::env::var(sender.secrets_variable).ok();
    if env_secret.is_some() && secrets_arn.is_some() {
        eprintln!(
            "hookrelay-dev: signing with {} from the environment, not the Secrets Manager secret",
            sender.secrets_variable
        );
    }
    let secret = smoke::secret(sender, env_secret.as_deref(), secrets_arn.as_deref(), &sdk).await?;
    let now = time::OffsetDateTime::now_utc();
    let nonce = u64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or_default();
    let delivery = smoke::delivery(sender, &secret, now, nonce);
    let target = smoke::route_url(url, sender);
    let (status, body) = smoke::send(&target, &delivery)
        .await
        .map_err(|problem| format!("{target}: {problem}"))?;
    println!("{target} answered {status} {body}");
    if !(status == 200 && body.contains("\"accepted\"")) {
        return Err("the smoke test was not accepted".into());
    }
    if let Some(queue_url) = queue_url {
        let trust =
            env_trust().map_err(|e| format!("--queue-url checks the relay signature: {e}"))?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let found = smoke::check_queue(&sqs, &queue_url, &delivery, &secret, &trust, wait).await?;
        println!(
            "{} found in the queue, relay signature, envelope and signature checked, deleted ({} other message(s) handed back untouched)",
            found.id, found.returned
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        for url in [
            "http://127.0.0.1:9000/lambda-url/hookrelay",
            "http://localhost:9000",
            "http://[::1]:9000/x",
            "127.0.0.5",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://abc.lambda-url.us-east-1.on.aws/",
            "http://127.0.0.1.example.com/",
            "http://10.0.0.1:9000",
            "https://user@hooks.example.com",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
