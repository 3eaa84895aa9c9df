//! `hookrelay-dev`'s command line: every subcommand, flag and help text, parsed with clap
//! (per-command `--help`, `--version`, suggestions, shell completions). Pure; the binary wires
//! each command to its module. A test parses every `hookrelay-dev` command the docs show, so a
//! doc can't drift from the tool.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::lab;

#[derive(Parser)]
#[command(
    name = "hookrelay-dev",
    version,
    about = "hookrelay's developer tools: a local lab, triggers, a queue watcher, forwarding to localhost, smoke tests",
    after_help = "Start with `hookrelay-dev up` in your hookrelay checkout, then `trigger` and `watch` in another terminal.\nDocs: docs/getting-started.md"
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Where `up` wrote the lab's variables, for the commands that read them.
#[derive(clap::Args, Clone)]
pub struct LabArg {
    /// The lab's variables, as `hookrelay-dev up` wrote them.
    #[arg(long, value_name = "FILE", default_value = ".local/lab.env")]
    pub lab_env: PathBuf,
}

/// `hookrelay-dev`'s subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Start the local lab and keep it running until Ctrl-C: local AWS endpoints, the queue and
    /// tables, the receiver under `cargo lambda watch` (rebuilt on save), optionally the bridge.
    Up(UpArgs),
    /// Send one signed delivery of any event type to a running receiver (the lab's by default),
    /// print the answer and the envelope that arrived in the queue.
    Trigger {
        /// engine, rekko or standard.
        provider: String,
        /// The event type, e.g. ORDER_MATCHED (engine), whale_alert (rekko), any type (standard).
        /// Without one, the provider's types are listed.
        event_type: Option<String>,
        /// The market (engine marketId, Rekko market_id, data.market_id).
        #[arg(long)]
        market: Option<String>,
        /// The engine's sequence number [default: one more than the last trigger's].
        #[arg(long)]
        sequence: Option<u64>,
        /// A payload field, KEY=VALUE; VALUE is JSON if it parses, else text; a.b=1 sets a nested key (repeatable).
        #[arg(long = "field", value_name = "KEY=VALUE")]
        fields: Vec<String>,
        /// Send the same signed delivery this many times, as a sender retries (the receiver answers the repeats `duplicate`).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// A receiver's base URL instead of the lab's (signed with HOOKRELAY_<PROVIDER>_SECRETS).
        #[arg(long)]
        url: Option<String>,
        /// Confirms a --url off this machine is a stack no live consumer reads (trigger sends real event types).
        #[arg(long, requires = "url")]
        not_a_production_stack: bool,
        #[command(flatten)]
        lab: LabArg,
    },
    /// Print each message the lab's queue accepts, verified and decoded, one line each, without
    /// taking it from your bot (the lab's tap); or consume a queue of your own with --queue.
    Watch {
        /// Print each verified envelope as JSON, one per line.
        #[arg(long)]
        json: bool,
        /// Start with every message the lab has accepted so far, not only new ones.
        #[arg(long)]
        all: bool,
        /// Receive from this queue instead (it takes the messages: a queue only you read).
        #[arg(long, value_name = "URL", requires = "i_own_this_queue")]
        queue: Option<String>,
        /// Confirms --queue is yours: watch deletes what it prints.
        #[arg(long)]
        i_own_this_queue: bool,
        #[command(flatten)]
        lab: LabArg,
    },
    /// Receive from a queue, check each relay signature and POST each envelope to a local
    /// handler, deleting it only after a 2xx; like `stripe listen --forward-to`.
    Forward {
        /// The handler's URL, e.g. http://127.0.0.1:8000/events.
        #[arg(long, value_name = "URL")]
        to: String,
        /// The queue [default: the lab's]; AWS credentials, region and endpoint from the environment.
        #[arg(long, value_name = "URL")]
        queue: Option<String>,
        /// Required: forward takes the messages away from the queue's other consumers.
        #[arg(long, required = true)]
        i_own_this_queue: bool,
        #[command(flatten)]
        lab: LabArg,
    },
    /// Print an events/ fixture re-signed for now, for `cargo lambda invoke --data-file`.
    Event {
        /// engine, rekko or standard.
        provider: String,
        /// valid, duplicate, forged, stale, malformed or base64.
        case: String,
        /// Sign for this time instead of now (Unix seconds).
        #[arg(long, value_name = "UNIX_SECONDS")]
        at: Option<i64>,
    },
    /// The smoke test for a deployed stack: one signed delivery that consumers skip; exits 0 only
    /// on `200 accepted`, optionally after finding it in the queue.
    Send {
        /// The Function URL (or any of the stack's webhook URLs).
        #[arg(long)]
        url: String,
        /// engine, rekko or standard.
        #[arg(long)]
        provider: String,
        /// The Secrets Manager secret holding the provider's secret [default: $HOOKRELAY_SECRETS_ARN].
        #[arg(long, value_name = "ARN")]
        secrets_arn: Option<String>,
        /// Then wait for the message in this queue, check it and delete it.
        #[arg(long, value_name = "URL", requires = "i_own_this_queue")]
        queue_url: Option<String>,
        /// Confirms --queue-url is yours (each receive counts toward its redrive policy).
        #[arg(long)]
        i_own_this_queue: bool,
        /// How long to wait for the message.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// Print a new relay key pair: HOOKRELAY_RELAY_SIGNING_KEYS=whsk_... and HOOKRELAY_RELAY_PUBLIC_KEYS=whpk_...
    RelayKeygen,
    /// Print a shell completion script, e.g. `hookrelay-dev completions bash > ~/.local/share/bash-completion/completions/hookrelay-dev`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `hookrelay-dev up`'s flags.
#[derive(clap::Args)]
pub struct UpArgs {
    /// Your hookrelay checkout.
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// Where the lab writes lab.env, the receiver's env file and the logs [default: <project>/.local].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The receiver's port (its URLs: http://127.0.0.1:PORT/lambda-url/hookrelay/<provider>).
    #[arg(long, default_value_t = lab::DEFAULT_PORT)]
    pub port: u16,
    /// The port of the lab's AWS endpoint (SQS and DynamoDB, through the tap `watch` reads).
    #[arg(long, default_value_t = lab::DEFAULT_AWS_PORT)]
    pub aws_port: u16,
    /// Also run hookrelay-bridge against stand-ins of Heisenberg's WebSocket and Rekko's SSE feed.
    #[arg(long)]
    pub streams: bool,
    /// A receiver variable over the lab's own, e.g. --set HOOKRELAY_DEDUPE_WINDOW_SECS=60 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = name_value)]
    pub settings: Vec<(String, String)>,
}

impl From<UpArgs> for lab::UpOptions {
    fn from(args: UpArgs) -> Self {
        Self {
            state_dir: args
                .state_dir
                .unwrap_or_else(|| args.project.join(".local")),
            project: args.project,
            port: args.port,
            aws_port: args.aws_port,
            streams: args.streams,
            settings: args.settings,
        }
    }
}

/// `NAME=VALUE` as a pair (`up --set`).
pub fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shell words of one command line: quotes kept together (their text, unquoted), an
    /// unquoted `$( … )` opened up so the command inside is read, and the line cut at an
    /// unquoted `#`, `|`, `;`, `&&` or `>`.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quote = None;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '"' | '\'') => quote = Some(c),
                (None, '$') if chars.peek() == Some(&'(') => {
                    chars.next();
                }
                (None, ')') => {}
                (None, '#' | '|' | ';' | '>' | '&') => break,
                (None, c) if c.is_whitespace() => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                (None, c) => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }

    /// The arguments after `hookrelay-dev` (or `--bin hookrelay-dev --`) in `line`, if it runs
    /// it; a shell expansion (`"$AT"`, `"$(out QueueUrl)"`) stands for a value, written `1`.
    fn dev_arguments(line: &str) -> Option<Vec<String>> {
        let words: Vec<String> = words(line)
            .into_iter()
            .map(|w| {
                if w.starts_with('$') {
                    "1".to_owned()
                } else {
                    w
                }
            })
            .collect();
        let at = words.iter().position(|w| w == "hookrelay-dev")?;
        let rest = &words[at + 1..];
        let is_bin_flag = at > 0 && words[at - 1] == "--bin";
        match rest.first().map(String::as_str) {
            Some("--") => Some(rest[1..].to_vec()),
            _ if is_bin_flag => None, // `cargo build --bin hookrelay-dev`: not a run
            Some(_) => Some(rest.to_vec()),
            None => None,
        }
    }

    /// Every `hookrelay-dev` command in the docs' code blocks (`true`) and inline code
    /// (`false`: it may name a command without its required arguments), continuation lines
    /// joined.
    fn documented_commands() -> Vec<(String, String, bool)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![root.join("README.md"), root.join("events/README.md")];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
        let mut commands = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            let mut in_block = false;
            let mut pending = String::new();
            for line in text.lines() {
                if line.trim_start().starts_with("```") {
                    in_block = !in_block;
                    continue;
                }
                if in_block {
                    pending.push_str(line.trim_end_matches('\\'));
                    pending.push(' ');
                    if !line.ends_with('\\') {
                        commands.push((name.clone(), std::mem::take(&mut pending), true));
                    }
                } else {
                    // Inline code that starts with the tool's name.
                    for (n, span) in line.split('`').enumerate() {
                        if n % 2 == 1 && span.starts_with("hookrelay-dev ") {
                            commands.push((name.clone(), span.to_owned(), false));
                        }
                    }
                }
            }
        }
        commands
    }

    #[test]
    fn every_command_the_docs_show_parses() {
        let mut checked = 0;
        for (file, line, complete) in documented_commands() {
            let Some(arguments) = dev_arguments(&line) else {
                continue;
            };
            let parsed = Cli::try_parse_from(
                std::iter::once("hookrelay-dev".to_owned()).chain(arguments.clone()),
            )
            .map(drop)
            .or_else(|error| match error.kind() {
                clap::error::ErrorKind::MissingRequiredArgument if !complete => Ok(()),
                _ => Err(error),
            });
            assert!(
                parsed.is_ok(),
                "{file}: `{}` does not parse: {}",
                line.trim(),
                parsed.err().map(|e| e.to_string()).unwrap_or_default()
            );
            checked += 1;
        }
        // The README, getting-started, events/README and operations show it at least this often.
        assert!(checked >= 15, "only {checked} documented commands found");
    }

    #[test]
    fn the_doc_reader_finds_commands_in_every_form_and_only_runs() {
        let run = dev_arguments(
            r#"HOOKRELAY_SECRETS_ARN="$SECRETS_ARN" cargo run -q -p hookrelay-devtools --bin hookrelay-dev -- send --url "$(out RekkoWebhookUrl)" --provider rekko"#,
        )
        .unwrap();
        assert_eq!(run, ["send", "--url", "1", "--provider", "rekko"]);
        assert_eq!(
            dev_arguments("KEYS=$(cargo run -q -p hookrelay-devtools --bin hookrelay-dev -- relay-keygen)   # two lines").unwrap(),
            ["relay-keygen"]
        );
        assert_eq!(
            dev_arguments("hookrelay-dev watch --json    # the whole envelope").unwrap(),
            ["watch", "--json"]
        );
        assert!(dev_arguments("cargo build --locked --bin hookrelay-dev").is_none());
        // A wrong flag is caught.
        assert!(
            Cli::try_parse_from(["hookrelay-dev", "trigger", "engine", "--markt", "x"]).is_err()
        );
    }
}
