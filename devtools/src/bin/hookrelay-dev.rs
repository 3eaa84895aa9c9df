//! `hookrelay-dev`: small developer commands.
//!
//! ```text
//! hookrelay-dev event <engine|rekko|standard> <valid|duplicate|forged|stale|malformed|base64> [--at UNIX_SECONDS]
//! ```
//!
//! `event` prints an `events/` fixture re-signed for now (or `--at`), with the fixtures' test
//! secrets (events/README.md), for `cargo lambda invoke --data-file`: the committed fixtures are
//! signed for a fixed date, which the replay window refuses. Signing is the library's.

use std::process::ExitCode;

use hookrelay_devtools::fixtures::{self, CASES, PROVIDERS};

const USAGE: &str = "usage: hookrelay-dev event <engine|rekko|standard> <valid|duplicate|forged|stale|malformed|base64> [--at UNIX_SECONDS]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["event", provider, case, rest @ ..] => event(provider, case, rest),
        _ => fail(USAGE),
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
        None => fail("the time is out of range"),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("hookrelay-dev: {message}");
    ExitCode::from(2)
}
