//! What the dev tools' command lines share: `--flag value` pairs, and where the receiver binary
//! is by default (next to the tool, as `cargo build --release` leaves them).

use std::path::{Path, PathBuf};

/// The command line's arguments as `(flag, value)` pairs; an odd one out goes to `usage`.
pub fn flag_pairs(usage: fn(&str) -> !) -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.chunks(2)
        .map(|pair| match pair {
            [flag, value] => (flag.clone(), value.clone()),
            _ => usage(&format!("{} needs a value", pair[0])),
        })
        .collect()
}

/// `value` parsed as a `T`, or a message naming `flag` to `usage`.
pub fn number<T: std::str::FromStr>(flag: &str, value: &str, usage: fn(&str) -> !) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("{flag}: not a number")))
}

/// The binary `name` next to the running tool (as cargo leaves a workspace's binaries).
pub fn beside_this_tool(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
}

/// The `hookrelay` binary next to the running tool.
pub fn default_receiver() -> PathBuf {
    beside_this_tool("hookrelay").unwrap_or_else(|| PathBuf::from("target/release/hookrelay"))
}

/// Sends a missing receiver binary to `usage`, with the command that builds it.
pub fn require_receiver(receiver: &Path, usage: fn(&str) -> !) {
    if !receiver.exists() {
        usage(&format!(
            "no receiver binary at {} (cargo build --release --bin hookrelay)",
            receiver.display()
        ));
    }
}
