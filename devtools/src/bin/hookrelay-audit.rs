//! The delivery audit, by hand: `hookrelay-audit [--events N] [--instances K] [--faults F]
//! [--time-scale S] [--concurrency C] [--duplicates D] [--seed X] [--receiver PATH]
//! [--log-dir DIR]`. Prints the report as Markdown; exits 1 unless every event is in the queue
//! exactly once with byte-identical data. See RELIABILITY.md.

use std::path::PathBuf;

use hookrelay_devtools::audit::{self, AuditConfig};

fn main() {
    let mut config = AuditConfig {
        events: 10_000,
        instances: 8,
        fault_fraction: 0.2,
        time_scale: 0.1,
        concurrency: 64,
        duplicate_fraction: 0.1,
        seed: 2026,
        receiver: std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("hookrelay")))
            .unwrap_or_else(|| PathBuf::from("target/release/hookrelay")),
        log_dir: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            usage(&format!("{} needs a value", pair[0]))
        };
        let number = || {
            value
                .parse::<f64>()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number")))
        };
        match flag.as_str() {
            "--events" => config.events = number() as u64,
            "--instances" => config.instances = number() as usize,
            "--faults" => config.fault_fraction = number(),
            "--time-scale" => config.time_scale = number(),
            "--concurrency" => config.concurrency = number() as usize,
            "--duplicates" => config.duplicate_fraction = number(),
            "--seed" => config.seed = number() as u64,
            "--receiver" => config.receiver = PathBuf::from(value),
            "--log-dir" => config.log_dir = Some(PathBuf::from(value)),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if !config.receiver.exists() {
        usage(&format!(
            "no receiver binary at {} (cargo build --release --bin hookrelay)",
            config.receiver.display()
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(audit::run(&config));
    println!(
        "events {}, instances {}, faults {:.0}%, time scale {}, concurrency {}, re-sends {:.0}%, seed {}\n",
        config.events,
        config.instances,
        config.fault_fraction * 100.0,
        config.time_scale,
        config.concurrency,
        config.duplicate_fraction * 100.0,
        config.seed
    );
    print!("{}", report.markdown(&config));
    std::process::exit(if report.passed() { 0 } else { 1 });
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "hookrelay-audit: {problem}\nsee the comment at the top of devtools/src/bin/hookrelay-audit.rs"
    );
    std::process::exit(2)
}
