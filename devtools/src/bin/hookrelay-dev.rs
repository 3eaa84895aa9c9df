//! `hookrelay-dev`: small developer commands.
//!
//! ```text
//! hookrelay-dev event <engine|rekko|standard> <valid|duplicate|forged|stale|malformed|base64> [--at UNIX_SECONDS]
//! hookrelay-dev send --url <FUNCTION_URL> --provider <engine|rekko|standard>
//!                    [--secrets-arn ARN] [--queue-url URL --i-own-this-queue] [--wait-secs N]
//! hookrelay-dev relay-keygen
//! ```
//!
//! `event` prints an `events/` fixture re-signed for now (or `--at`), with the fixtures' test
//! secrets (events/README.md), for `cargo lambda invoke --data-file`: the committed fixtures are
//! signed for a fixed date, which the replay window refuses. Signing is the library's.
//!
//! `send` is the smoke test for a deployed stack (devtools/src/smoke.rs): one delivery of type
//! `hookrelay.smoke_test` (market `hookrelay-smoke`, which consumers acknowledge and skip),
//! signed with the provider's real secret: from `HOOKRELAY_<PROVIDER>_SECRETS` (its first entry)
//! or else the Secrets Manager secret `--secrets-arn` / `HOOKRELAY_SECRETS_ARN` (AWS credentials
//! and region from the environment, as the SDK reads them). It prints the answer and exits 0 only
//! on `200 accepted`. With `--queue-url` and `--i-own-this-queue` it then waits (default 30 s) for
//! its own message, checks its relay signature against `HOOKRELAY_RELAY_PUBLIC_KEYS` (required
//! then), the envelope and the provider's signature, and deletes it; any other message it
//! receives is handed straight back and never deleted.
//!
//! `relay-keygen` prints a new relay key pair from the OS's random source, as the two variables
//! `HOOKRELAY_RELAY_SIGNING_KEYS=whsk_...` (the private key: into its own secret) and
//! `HOOKRELAY_RELAY_PUBLIC_KEYS=whpk_...` (the public key: to consumers and the template's
//! `RelayPublicKeys`).

use std::process::ExitCode;
use std::time::Duration;

use aws_config::BehaviorVersion;
use hookrelay_devtools::fixtures::{self, CASES, PROVIDERS};
use hookrelay_devtools::smoke;

const USAGE: &str = "usage: hookrelay-dev event <engine|rekko|standard> <valid|duplicate|forged|stale|malformed|base64> [--at UNIX_SECONDS]
       hookrelay-dev send --url <FUNCTION_URL> --provider <engine|rekko|standard> [--secrets-arn ARN] [--queue-url URL --i-own-this-queue] [--wait-secs N]
       hookrelay-dev relay-keygen";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["event", provider, case, rest @ ..] => event(provider, case, rest),
        ["relay-keygen"] => relay_keygen(),
        ["send", rest @ ..] => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(send(rest)),
            Err(error) => fail(&format!("no runtime: {error}")),
        },
        _ => fail(USAGE),
    }
}

async fn send(args: &[&str]) -> ExitCode {
    let mut url = None;
    let mut provider = None;
    let mut secrets_arn = std::env::var("HOOKRELAY_SECRETS_ARN").ok();
    let mut queue_url = None;
    let mut owned = false;
    let mut wait = Duration::from_secs(30);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if *flag == "--i-own-this-queue" {
            owned = true;
            continue;
        }
        let Some(value) = args.next() else {
            return fail(&format!("{flag} needs a value\n{USAGE}"));
        };
        match *flag {
            "--url" => url = Some(value.to_string()),
            "--provider" => provider = Some(value.to_string()),
            "--secrets-arn" => secrets_arn = Some(value.to_string()),
            "--queue-url" => queue_url = Some(value.to_string()),
            "--wait-secs" => match value.parse() {
                Ok(seconds) => wait = Duration::from_secs(seconds),
                Err(_) => return fail("--wait-secs takes whole seconds"),
            },
            other => return fail(&format!("unknown flag {other}\n{USAGE}")),
        }
    }
    let (Some(url), Some(provider)) = (url, provider) else {
        return fail(&format!("--url and --provider are required\n{USAGE}"));
    };
    let Some(sender) = smoke::sender(&provider) else {
        return fail("--provider is engine, rekko or standard");
    };
    if queue_url.is_some() && !owned {
        return fail(
            "--queue-url receives from the queue (each receive counts toward its redrive policy): \
             add --i-own-this-queue to confirm it is yours",
        );
    }
    let sdk = hookrelay_aws::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
    let env_secret = std::env::var(sender.secrets_variable).ok();
    if env_secret.is_some() && secrets_arn.is_some() {
        eprintln!(
            "hookrelay-dev: signing with {} from the environment, not the Secrets Manager secret",
            sender.secrets_variable
        );
    }
    let secret =
        match smoke::secret(sender, env_secret.as_deref(), secrets_arn.as_deref(), &sdk).await {
            Ok(secret) => secret,
            Err(problem) => return fail(&problem),
        };
    let now = time::OffsetDateTime::now_utc();
    let nonce = u64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or_default();
    let delivery = smoke::delivery(sender, &secret, now, nonce);
    let target = smoke::route_url(&url, sender);
    let (status, body) = match smoke::send(&target, &delivery).await {
        Ok(answer) => answer,
        Err(problem) => return fail(&format!("{target}: {problem}")),
    };
    println!("{target} answered {status} {body}");
    if !(status == 200 && body.contains("\"accepted\"")) {
        return fail("the smoke test was not accepted");
    }
    if let Some(queue_url) = queue_url {
        let env = hookrelay::config::Env::new(|name: &str| std::env::var(name).ok());
        let trust = match hookrelay::consumer::relay_trust_from_env(&env) {
            Ok(Some(trust)) => trust,
            Ok(None) => {
                return fail("--queue-url checks the relay signature: it can't be turned off");
            }
            Err(problem) => {
                return fail(&format!(
                    "--queue-url needs the relay public keys: {problem}"
                ));
            }
        };
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        match smoke::check_queue(&sqs, &queue_url, &delivery, &secret, &trust, wait).await {
            Ok(found) => println!(
                "{} found in the queue, relay signature, envelope and signature checked, deleted ({} other message(s) handed back untouched)",
                found.id, found.returned
            ),
            Err(problem) => return fail(&problem),
        }
    }
    ExitCode::SUCCESS
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

fn event(provider: &str, case: &str, rest: &[&str]) -> ExitCode {
    let now = match rest {
        [] => time::OffsetDateTime::now_utc().unix_timestamp(),
        ["--at", seconds] => match seconds.parse() {
            Ok(seconds) => seconds,
            Err(_) => return fail("--at takes Unix seconds"),
        },
        _ => return fail(USAGE),
    };
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
    ExitCode::from(2)
}
