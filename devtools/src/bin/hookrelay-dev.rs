//! `hookrelay-dev`: the developer's command line. The local lab (`up`, `trigger`, `watch`,
//! `forward`; docs/getting-started.md, "The local lab"), the smoke test for a deployed stack
//! (`send`), fixtures re-signed for now (`event`), relay keys (`relay-keygen`) and shell
//! completions. `hookrelay-dev help <command>` or `<command> --help` says what each does. This
//! file only parses and wires; the work is in the devtools library's modules.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use clap::{CommandFactory, Parser};
use hookrelay::relay::RelayTrust;
use hookrelay::senders::{self, Sender};
use hookrelay_devtools::dev_cli::{Cli, Command};
use hookrelay_devtools::event_catalog::{self, Trigger};
use hookrelay_devtools::fixtures::{self, CASES, PROVIDERS};
use hookrelay_devtools::http_client::HttpClient;
use hookrelay_devtools::lab::{self, LabFile, UpOptions};
use hookrelay_devtools::queue_reader::{self, PostSink, Sink, Stop, VerifiedMessage};
use hookrelay_devtools::{smoke, sqs_tap};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Event { provider, case, at } => return event(&provider, &case, at),
        Command::RelayKeygen => return relay_keygen(),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hookrelay-dev",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        other => other,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("no runtime: {error}")),
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Up {
                project,
                state_dir,
                port,
                aws_port,
                streams,
                settings,
            } => {
                let state_dir = state_dir.unwrap_or_else(|| project.join(".local"));
                lab::up(UpOptions {
                    project,
                    state_dir,
                    port,
                    aws_port,
                    streams,
                    settings,
                })
                .await
            }
            Command::Trigger {
                provider,
                event_type,
                market,
                sequence,
                fields,
                repeat,
                url,
                lab,
            } => {
                trigger(
                    &provider,
                    event_type.as_deref(),
                    TriggerOptions {
                        market: market.as_deref(),
                        sequence,
                        fields: &fields,
                        repeat,
                    },
                    url,
                    &lab.lab_env,
                )
                .await
            }
            Command::Watch {
                json,
                all,
                queue,
                lab,
                ..
            } => watch(json, all, queue, &lab.lab_env).await,
            Command::Forward { to, queue, lab, .. } => forward(&to, queue, &lab.lab_env).await,
            Command::Send {
                url,
                provider,
                secrets_arn,
                queue_url,
                wait_secs,
                ..
            } => {
                send(
                    &url,
                    &provider,
                    secrets_arn.or_else(|| std::env::var("HOOKRELAY_SECRETS_ARN").ok()),
                    queue_url,
                    Duration::from_secs(wait_secs),
                )
                .await
            }
            Command::Event { .. } | Command::RelayKeygen | Command::Completions { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => fail(&problem),
    }
}

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
            "no lab at {} (it exists while `hookrelay-dev up` runs): start one, or pass --lab-env / --url",
            path.display()
        )
    })
}

/// The next engine sequence for `trigger`: one more than the last, kept beside the lab file.
fn next_sequence(lab_env: &Path) -> u64 {
    let path = lab_env.with_file_name("trigger-sequence");
    let next = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(1, |last| last + 1);
    let _ = std::fs::write(&path, next.to_string());
    next
}

/// What `trigger` sends, beyond the provider and the type.
struct TriggerOptions<'a> {
    market: Option<&'a str>,
    sequence: Option<u64>,
    fields: &'a [String],
    repeat: u32,
}

async fn trigger(
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
    } = options;
    let sender = sender_named(provider)?;
    let Some(event_type) = event_type else {
        return Err(format!(
            "name an event type; {provider}'s: {}",
            event_catalog::event_types(sender).join(", ")
        ));
    };
    let fields = fields
        .iter()
        .map(|field| event_catalog::parse_field(field).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let lab = LabFile::read(lab_env)?;
    let (base, secret) = match url {
        Some(url) => {
            let secret = std::env::var(sender.secrets_variable)
                .ok()
                .or_else(|| {
                    lab.as_ref()
                        .and_then(|l| l.get(sender.secrets_variable).map(str::to_owned))
                })
                .ok_or_else(|| {
                    format!(
                        "--url needs the provider's secret in {}",
                        sender.secrets_variable
                    )
                })?;
            (url, secret)
        }
        None => {
            let lab = running_lab(lab_env)?;
            (
                lab.require(lab::LAB_URL)?.to_owned(),
                lab.require(sender.secrets_variable)?.to_owned(),
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
    let sequence = sequence.unwrap_or_else(|| next_sequence(lab_env));
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
    let tap = lab
        .as_ref()
        .and_then(|l| l.get(lab::LAB_ENDPOINT).map(str::to_owned));
    let latest = match &tap {
        Some(tap) => sqs_tap::read(tap, u64::MAX, Duration::ZERO)
            .await
            .ok()
            .map(|p| p.latest),
        None => None,
    };
    let target = smoke::route_url(&base, sender);
    let client = HttpClient::new();
    let started = Instant::now();
    let mut first_answer = String::new();
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
        if first_answer.is_empty() {
            first_answer = answer;
        }
    }
    let answer = first_answer;
    // The envelope, when the lab's tap can show it.
    let (Some(tap), Some(latest), Some(lab)) = (tap, latest, lab) else {
        return Ok(());
    };
    let trust = lab_trust(&lab)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = latest;
    while Instant::now() < deadline {
        let page = sqs_tap::read(&tap, after, Duration::from_millis(500)).await?;
        after = page.latest;
        for message in page.messages {
            let Ok(envelope) = queue_reader::verify(
                &trust,
                &message.body,
                &message.attributes,
                queue_reader::unix_now(),
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
    if answer.contains("\"duplicate\"") {
        println!("(a duplicate: nothing new was queued)");
        return Ok(());
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

async fn watch(json: bool, all: bool, queue: Option<String>, lab_env: &Path) -> Result<(), String> {
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
    let mut after = if all {
        0
    } else {
        sqs_tap::read(&tap, u64::MAX, Duration::ZERO).await?.latest
    };
    eprintln!(
        "hookrelay-dev: watching {} through the lab's tap (nothing is received from the queue); Ctrl-C stops",
        lab.get(hookrelay_ingest::settings::QUEUE_URL)
            .unwrap_or("the lab's queue")
    );
    while !stop.requested() {
        let page = tokio::select! {
            page = sqs_tap::read(&tap, after, Duration::from_secs(10)) => page?,
            () = stop.wait() => break,
        };
        after = page.latest.max(after);
        for message in page.messages {
            after = after.max(message.number);
            match queue_reader::verify(
                &trust,
                &message.body,
                &message.attributes,
                queue_reader::unix_now(),
            ) {
                Ok(envelope) => {
                    let accepted = time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(message.accepted_at_ms) * 1_000_000,
                    )
                    .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
                    printer.print(accepted, &envelope, &message.body);
                }
                Err(problem) => println!("message {} REFUSED: {problem}", message.message_id),
            }
        }
    }
    Ok(())
}

async fn forward(to: &str, queue: Option<String>, lab_env: &Path) -> Result<(), String> {
    let (sqs, queue, trust) = match queue {
        Some(queue) => {
            let sdk =
                hookrelay_aws::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
            (aws_sdk_sqs::Client::new(&sdk), queue, env_trust()?)
        }
        None => {
            let lab = running_lab(lab_env)?;
            let sqs = hookrelay_devtools::local_sqs::client(lab.require(lab::LAB_ENDPOINT)?);
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

async fn send(
    url: &str,
    provider: &str,
    secrets_arn: Option<String>,
    queue_url: Option<String>,
    wait: Duration,
) -> Result<(), String> {
    let Some(sender) = smoke::sender(provider) else {
        return Err("--provider is engine, rekko or standard".into());
    };
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

fn relay_keygen() -> ExitCode {
    match hookrelay_devtools::relay_keys::generate() {
        Ok(key) => {
            println!(
                "{}={}",
                hookrelay_ingest::settings::RELAY_SIGNING_KEYS,
                key.to_text()
            );
            println!(
                "{}={}",
                hookrelay_ingest::settings::RELAY_PUBLIC_KEYS,
                key.public_key()
            );
            ExitCode::SUCCESS
        }
        Err(problem) => fail(&problem),
    }
}

fn event(provider: &str, case: &str, at: Option<i64>) -> ExitCode {
    let now = at.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    if !PROVIDERS.contains(&provider) || !CASES.contains(&case) {
        return fail(&format!(
            "no fixture {provider}-{case}: providers {}, cases {}",
            PROVIDERS.join(", "),
            CASES.join(", ")
        ));
    }
    match fixtures::render(provider, case, now) {
        Some(event) => {
            print!("{event}");
            ExitCode::SUCCESS
        }
        None => fail(&format!(
            "no fixture {provider}-{case} at that time (a provider without samples has none)"
        )),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("hookrelay-dev: {message}");
    ExitCode::from(1)
}
