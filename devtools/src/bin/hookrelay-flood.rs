//! The public URL under a flood, by hand: `hookrelay-flood [--reserved N] [--genuine R]
//! [--flood F] [--secs S] [--seed X] [--receiver PATH]`. Genuine engine deliveries at `R` per
//! second on the engine's retry schedule beside `F` junk requests per second, for `S` seconds,
//! to the receiver behind a Function URL with reserved concurrency `N` (429 past `N` in flight
//! or `10 × N` requests in a second, as Lambda throttles). Prints the report as Markdown.
//! docs/operations.md ("Reserved concurrency") has the runs and what they say.

use std::path::PathBuf;
use std::time::Duration;

use hookrelay_devtools::cli::{self, number};
use hookrelay_devtools::flood::{self, FloodConfig};

fn main() {
    let mut config = FloodConfig {
        receiver: cli::default_receiver(),
        reserved: 2,
        genuine_per_second: 8.0,
        flood_per_second: 160.0,
        duration: Duration::from_secs(60),
        seed: 2026,
    };
    for (flag, value) in cli::flag_pairs(usage) {
        let number = || number::<f64>(&flag, &value, usage);
        match flag.as_str() {
            "--reserved" => config.reserved = number() as usize,
            "--genuine" => config.genuine_per_second = number(),
            "--flood" => config.flood_per_second = number(),
            "--secs" => config.duration = Duration::from_secs_f64(number()),
            "--seed" => config.seed = number() as u64,
            "--receiver" => config.receiver = PathBuf::from(&value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    cli::require_receiver(&config.receiver, usage);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(flood::run(&config));
    print!("{}", report.markdown(&config));
}

fn usage(problem: &str) -> ! {
    eprintln!("hookrelay-flood: {problem}");
    eprintln!("see the comment at the top of devtools/src/bin/hookrelay-flood.rs");
    std::process::exit(2);
}
