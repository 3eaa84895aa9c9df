//! `hookrelay-dev`: the developer's command line. The local lab (`up`, `trigger`, `watch`,
//! `forward`; docs/getting-started.md, "The local lab"), the smoke test for a deployed stack
//! (`send`), fixtures re-signed for now (`event`), relay keys (`relay-keygen`) and shell
//! completions. `hookrelay-dev help <command>` or `<command> --help` says what each does. This
//! file only parses and wires; the work is in the devtools library's modules.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use hookrelay_devtools::dev_cli::{Cli, Command};
use hookrelay_devtools::dev_commands::{self, TriggerOptions};
use hookrelay_devtools::fixtures::{self, CASES, PROVIDERS};
use hookrelay_devtools::lab;

fn main() -> ExitCode {
    // A closed pipe (`hookrelay-dev watch | head`) ends the command quietly, as it ends other
    // Unix tools, instead of a panic on the next print: Rust starts with SIGPIPE ignored.
    // SAFETY: resets one signal's disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
            Command::Up(args) => lab::up(args.into()).await,
            Command::Trigger {
                provider,
                event_type,
                market,
                sequence,
                fields,
                repeat,
                url,
                not_a_production_stack,
                lab,
            } => {
                dev_commands::trigger(
                    &provider,
                    event_type.as_deref(),
                    TriggerOptions {
                        market: market.as_deref(),
                        sequence,
                        fields: &fields,
                        repeat,
                        not_production: not_a_production_stack,
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
            } => dev_commands::watch(json, all, queue, &lab.lab_env).await,
            Command::Forward { to, queue, lab, .. } => {
                dev_commands::forward(&to, queue, &lab.lab_env).await
            }
            Command::Send {
                url,
                provider,
                secrets_arn,
                queue_url,
                wait_secs,
                ..
            } => {
                dev_commands::send(
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
