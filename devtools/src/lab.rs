//! The local lab, `hookrelay-dev up`: the whole stack on this machine, kept running until Ctrl-C.
//! A local AWS endpoint (moto) behind the lab's tap ([`crate::sqs_tap`]), the queue, its
//! dead-letter queue and the tables as `template.yaml` creates them, the receiver under
//! `cargo lambda watch` (rebuilt when a source file is saved), and with `--streams` the bridge
//! reading stand-ins of both providers' streams. It writes what a bot needs to point at it into
//! `lab.env` (one `export` line per variable; [`LabFile`] reads it back for `trigger`, `watch` and
//! `forward`) and the receiver's own variables into `hookrelay.env`, the file
//! `cargo lambda watch --env-file` takes. See docs/getting-started.md, "The local lab".
//!
//! The secrets are the fixtures' test secrets (events/README.md): the lab is for this machine
//! only. The relay key pair is made on the first `up` and kept in `lab-relay-keys.env` (mode
//! 0600) so a bot configured with the public key keeps working across restarts of the lab.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hookrelay::relay::RelaySigningKey;
use hookrelay::senders;
use hookrelay_ingest::settings;
use tokio::process::{Child, Command};

use crate::fixtures;
use crate::signals::Stop;
use crate::sqs_tap::SqsTap;

/// The receiver's default port (`cargo lambda watch`'s own default).
pub const DEFAULT_PORT: u16 = 9000;
/// The lab's AWS endpoint's default port.
pub const DEFAULT_AWS_PORT: u16 = 4566;
/// The file of `export` lines `up` writes, under the state directory.
pub const LAB_FILE: &str = "lab.env";
/// The lab's queue, as the template names its queue's suffix.
pub const QUEUE_NAME: &str = "hookrelay-events.fifo";
/// The lab's dead-letter queue.
pub const DEAD_LETTER_QUEUE_NAME: &str = "hookrelay-events-dlq.fifo";
/// The variable holding the receiver's base URL in `lab.env`.
pub const LAB_URL: &str = "HOOKRELAY_LAB_URL";
/// The variable holding the lab's AWS endpoint (and tap) in `lab.env`.
pub const LAB_ENDPOINT: &str = "AWS_ENDPOINT_URL";
/// The region the lab's clients use.
const REGION: &str = "us-east-1";
/// The stream stand-ins' token.
const STREAM_TOKEN: &str = "lab-stream-token";
/// How long `up` waits for the receiver's first answer (a first build takes minutes).
const READY_TIMEOUT: Duration = Duration::from_secs(900);

/// What `hookrelay-dev up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The hookrelay checkout (where `cargo lambda watch` runs).
    pub project: PathBuf,
    /// Where the lab writes its files and logs (default `<project>/.local`).
    pub state_dir: PathBuf,
    /// The receiver's port.
    pub port: u16,
    /// The AWS endpoint's port.
    pub aws_port: u16,
    /// Also run the bridge against the stream stand-ins.
    pub streams: bool,
    /// Extra receiver variables (`--set NAME=VALUE`), over the lab's own.
    pub settings: Vec<(String, String)>,
}

/// `lab.env` read back: the lab's variables by name.
#[derive(Debug, Clone, Default)]
pub struct LabFile {
    /// Where it was read from.
    pub path: PathBuf,
    values: BTreeMap<String, String>,
}

impl LabFile {
    /// Reads `path`; `Ok(None)` when there is none (no lab has been started there).
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("{}: {error}", path.display())),
        };
        Ok(Some(Self {
            path: path.to_owned(),
            values: parse_env_lines(&text),
        }))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name`, or an error saying the lab file lacks it.
    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("{} has no {name}", self.path.display()))
    }
}

/// `NAME=value` and `export NAME="value"` lines; comments and blank lines skipped.
fn parse_env_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// `"value"` as a double-quoted shell word (`$`, `` ` ``, `"` and `\` escaped).
fn shell_quoted(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The lab's relay key pair: the one kept in `path`, or a new one written there (mode 0600).
fn relay_key(path: &Path) -> Result<RelaySigningKey, String> {
    if let Ok(text) = fs::read_to_string(path)
        && let Some(key) = parse_env_lines(&text).get(settings::RELAY_SIGNING_KEYS)
    {
        return RelaySigningKey::parse(key).map_err(|e| format!("{}: {e}", path.display()));
    }
    let key = crate::relay_keys::generate()?;
    let text = format!(
        "# The local lab's relay signing key (hookrelay-dev up); delete this file for a new one.\n{}={}\n",
        settings::RELAY_SIGNING_KEYS,
        key.to_text()
    );
    write_private(path, &text)?;
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // An existing file keeps its mode when opened: set it.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A tool from the checkout's `.venv` (where the run command installs it), else from `PATH`.
fn venv_tool(project: &Path, name: &str) -> Result<PathBuf, String> {
    let in_venv = project.join(".venv/bin").join(name);
    if in_venv.exists() {
        return Ok(in_venv);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.exists())
        .ok_or_else(|| {
            format!(
                "no {name} in {} or on PATH: run scripts/run-local.sh once (it installs the lab's \
                 tools into .venv), or `source scripts/venv.sh run`",
                project.join(".venv/bin").display()
            )
        })
}

/// A binary built next to this tool (`target/debug`), with the command that builds it.
fn sibling_binary(name: &str, package: &str) -> Result<PathBuf, String> {
    let path = crate::cli::beside_this_tool(name).ok_or("no path for this tool")?;
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "no {} (build it: cargo build -p {package} --bin {name})",
            path.display()
        ))
    }
}

fn port_free(port: u16) -> Result<(), String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map(drop)
        .map_err(|e| {
            format!("port {port} on 127.0.0.1 is taken ({e}): is a lab already up? pick another with --port / --aws-port")
        })
}

/// A child process and what to call it.
struct Running {
    name: &'static str,
    child: Child,
    /// The signal that asks it to stop cleanly.
    stop_signal: i32,
}

impl Running {
    /// Sends `signal` to the child's process group (the child and everything it started).
    fn signal(&self, signal: i32) {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on the process group of a child we spawned (its own group, see
            // `lab_child`) and have not reaped; no memory is involved.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }
}

/// `command` as a lab process: in a process group of its own (so stopping it reaches what it
/// started, such as the receiver under `cargo lambda watch`), sent SIGTERM by the kernel if
/// `up` dies without stopping it, and killed if `up` drops it.
fn lab_child(command: &mut Command) -> &mut Command {
    command.process_group(0).kill_on_drop(true);
    // SAFETY: prctl(2) only, between fork and exec, allocating nothing.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command
}

/// Asks each process to stop, waits up to 10 s for each, then kills what is left.
async fn stop_all(running: &mut [Running]) {
    for process in running.iter() {
        process.signal(process.stop_signal);
    }
    for process in running.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), process.child.wait())
            .await
            .is_err()
        {
            let _ = process.child.kill().await;
        }
    }
}

/// Runs the lab until Ctrl-C, SIGTERM or SIGHUP (or until one of its processes dies: an error).
pub async fn up(options: UpOptions) -> Result<(), String> {
    let started = Instant::now();
    // From here on Ctrl-C, SIGTERM and SIGHUP stop the lab cleanly, a first build included.
    let stop = Stop::on_signals();
    let project = options.project.canonicalize().map_err(|e| {
        format!(
            "{}: {e} (run hookrelay-dev up from your hookrelay checkout, or pass --project)",
            options.project.display()
        )
    })?;
    let manifest = fs::read_to_string(project.join("Cargo.toml")).unwrap_or_default();
    if !manifest.contains("name = \"hookrelay-receiver\"") {
        return Err(format!(
            "{} is not a hookrelay checkout (no hookrelay-receiver in Cargo.toml): run from the \
             checkout or pass --project",
            project.display()
        ));
    }
    let state = &options.state_dir;
    fs::create_dir_all(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let python = venv_tool(&project, "python")?;
    let cargo_lambda = venv_tool(&project, "cargo-lambda")?;
    port_free(options.port)?;
    let bridge_binaries = if options.streams {
        Some((
            sibling_binary("hookrelay-stream-sim", "hookrelay-devtools")?,
            sibling_binary("hookrelay-bridge", "hookrelay-bridge")?,
        ))
    } else {
        None
    };

    // 1. The AWS endpoint: moto on a free port, behind the tap on the lab's port.
    let moto = tokio::task::spawn_blocking(move || {
        crate::moto::spawn(&python, crate::moto::free_port(), None)
    })
    .await
    .map_err(|e| e.to_string())??;
    let tap = SqsTap::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, options.aws_port)),
        &moto.endpoint,
    )
    .await
    .map_err(|e| {
        format!(
            "port {} on 127.0.0.1: {e}: is a lab already up? pick another with --aws-port",
            options.aws_port
        )
    })?;
    let endpoint = tap.url.clone();

    // 2. The queue, its dead-letter queue and the tables, as template.yaml creates them.
    let (queue_url, dead_letter_url) = create_queues(&endpoint).await?;
    let dynamodb = crate::local_dynamodb::client(&endpoint);
    crate::local_dynamodb::create_idempotency_table(&dynamodb, "hookrelay-idempotency").await?;
    crate::local_dynamodb::create_sequence_table(&dynamodb, "hookrelay-sequences").await?;

    // 3. The receiver's variables, and the receiver under `cargo lambda watch`.
    let key = relay_key(&state.join("lab-relay-keys.env"))?;
    let public_key = key.public_key().to_string();
    let aws = [
        ("AWS_REGION", REGION.to_owned()),
        // Python's botocore reads only this one.
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
    ];
    let secrets = [
        (senders::ENGINE.secrets_variable, fixtures::ENGINE_SECRET),
        (senders::REKKO.secrets_variable, fixtures::REKKO_SECRET),
        (
            senders::STANDARD.secrets_variable,
            fixtures::STANDARD_SECRET,
        ),
    ];
    let mut receiver: Vec<(String, String)> = vec![
        (settings::QUEUE_URL.into(), queue_url.clone()),
        (settings::RELAY_SIGNING_KEYS.into(), key.to_text()),
        (settings::RELAY_PUBLIC_KEYS.into(), public_key.clone()),
        ("AWS_ENDPOINT_URL_SQS".into(), endpoint.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB".into(), endpoint.clone()),
        (
            settings::IDEMPOTENCY_TABLE.into(),
            "hookrelay-idempotency".into(),
        ),
        (settings::SEQUENCE_GAPS.into(), "on".into()),
        (
            settings::SEQUENCE_TABLE.into(),
            "hookrelay-sequences".into(),
        ),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    receiver.extend(
        secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    receiver.extend(aws.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    for (name, value) in &options.settings {
        receiver.retain(|(existing, _)| existing != name);
        receiver.push((name.clone(), value.clone()));
    }
    let receiver_env = state.join("hookrelay.env");
    let receiver_text: String = receiver
        .iter()
        .map(|(k, v)| format!("{k}={}\n", shell_quoted(v)))
        .collect();
    write_private(&receiver_env, &receiver_text)?;
    let receiver_log = state.join("receiver.log");
    let watch = ReceiverCommand {
        cargo_lambda,
        project: project.clone(),
        port: options.port,
        env_file: receiver_env.clone(),
        log: receiver_log.clone(),
        watch_log: state.join("receiver-watch.log"),
    };
    let _ = fs::remove_file(&receiver_log);
    let mut running = vec![watch.spawn()?];
    let base = format!("http://127.0.0.1:{}/lambda-url/hookrelay", options.port);

    let result = async {
        eprintln!(
            "hookrelay-dev: waiting for the receiver (cargo lambda watch builds it on first use; \
             logs: {})",
            receiver_log.display()
        );
        wait_until_answering(&base, &mut running[0], &stop).await?;

        // 4. The streams, optionally.
        if let Some((sim, bridge)) = &bridge_binaries {
            let streams = start_streams(sim, bridge, state, &receiver, &mut running).await?;
            eprintln!("hookrelay-dev: the bridge reads {streams}");
        }

        // 5. What a bot needs.
        let mut exports: Vec<(String, String)> = vec![
            (LAB_URL.into(), base.clone()),
            (settings::QUEUE_URL.into(), queue_url.clone()),
            ("HOOKRELAY_DEAD_LETTER_QUEUE_URL".into(), dead_letter_url.clone()),
            (settings::RELAY_PUBLIC_KEYS.into(), public_key.clone()),
            (LAB_ENDPOINT.into(), endpoint.clone()),
        ];
        // The senders' secrets as the receiver has them (after any --set), for `trigger`.
        exports.extend(
            receiver
                .iter()
                .filter(|(name, _)| secrets.iter().any(|(variable, _)| variable == name))
                .cloned(),
        );
        exports.extend(aws.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let lab_file = state.join(LAB_FILE);
        let lab_text = format!(
            "# The hookrelay local lab (hookrelay-dev up), valid while it runs; the secrets are \
             the fixtures' test secrets.\n{}",
            exports
                .iter()
                .map(|(k, v)| format!("export {k}={}\n", shell_quoted(v)))
                .collect::<String>()
        );
        write_private(&lab_file, &lab_text)?;
        println!("hookrelay local lab: ready in {:.1} s\n", started.elapsed().as_secs_f64());
        for sender in senders::SENDERS {
            println!("  webhook    {base}/{}", sender.name);
        }
        println!("  queue      {queue_url}");
        println!("  dead-letter queue {dead_letter_url}");
        println!("  AWS endpoint {endpoint} (SQS, DynamoDB; any credentials)");
        println!("  relay public key {public_key}");
        println!("  logs       {}", receiver_log.display());
        println!("\nPoint a bot at it (these lines are also in {}):\n", lab_file.display());
        print!("{}", exports.iter().map(|(k, v)| format!("export {k}={}\n", shell_quoted(v))).collect::<String>());
        println!(
            "\nThen, in another terminal:\n  hookrelay-dev trigger engine ORDER_MATCHED   \
             # a signed delivery of any event type\n  hookrelay-dev watch                         \
             # every message the queue accepts, verified\n  hookrelay-dev forward --to \
             http://127.0.0.1:8000/events --i-own-this-queue\n\nSaving a source file rebuilds \
             the receiver; `kill -USR1 {}` restarts it cold (its memory empty). Ctrl-C stops the lab.",
            std::process::id()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        wait_for_stop(&mut running, &watch, &base, &stop).await
    }
    .await;
    stop_all(&mut running).await;
    let _ = fs::remove_file(state.join(LAB_FILE));
    drop(moto);
    result
}

async fn create_queues(endpoint: &str) -> Result<(String, String), String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = crate::local_sqs::client(endpoint);
    let dead_letter = sqs
        .create_queue()
        .queue_name(DEAD_LETTER_QUEUE_NAME)
        .attributes(A::FifoQueue, "true")
        .attributes(A::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| {
            format!(
                "create {DEAD_LETTER_QUEUE_NAME}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url
        .unwrap_or_default();
    let dead_letter_arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "{DEAD_LETTER_QUEUE_NAME}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .attributes()
        .and_then(|a| a.get(&A::QueueArn))
        .cloned()
        .unwrap_or_default();
    let queue = sqs
        .create_queue()
        .queue_name(QUEUE_NAME)
        .attributes(A::FifoQueue, "true")
        .attributes(A::VisibilityTimeout, "180")
        .attributes(A::DeduplicationScope, "messageGroup")
        .attributes(A::FifoThroughputLimit, "perMessageGroupId")
        .attributes(A::MessageRetentionPeriod, "345600")
        .attributes(
            A::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dead_letter_arn}","maxReceiveCount":"5"}}"#),
        )
        .send()
        .await
        .map_err(|e| {
            format!(
                "create {QUEUE_NAME}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url
        .unwrap_or_default();
    Ok((queue, dead_letter))
}

/// Waits until the receiver answers a `GET` (with its own 405): built, started and serving.
async fn wait_until_answering(base: &str, watch: &mut Running, stop: &Stop) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("{base}/engine");
    let client = crate::http_client::HttpClient::new();
    loop {
        if stop.requested() {
            return Err("stopped before the receiver answered".into());
        }
        if let Ok(Some(status)) = watch.child.try_wait() {
            return Err(format!(
                "{} exited ({status}) before the receiver answered",
                watch.name
            ));
        }
        if let Ok((405, _)) = client
            .request("GET", &url, &[], "", Duration::from_secs(5))
            .await
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the receiver did not answer at {url} within {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = stop.wait() => {}
        }
    }
}

/// Starts the stream stand-ins and the bridge; returns what the bridge reads.
async fn start_streams(
    sim: &Path,
    bridge: &Path,
    state: &Path,
    receiver: &[(String, String)],
    running: &mut Vec<Running>,
) -> Result<String, String> {
    use tokio::io::AsyncBufReadExt;
    let mut stand_ins = lab_child(&mut Command::new(sim))
        .args(["--token", STREAM_TOKEN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            fs::File::create(state.join("stream-sim.log")).map_err(|e| e.to_string())?,
        ))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", sim.display()))?;
    let stdout = stand_ins.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("the stream stand-ins: {e}"))?;
    let urls: serde_json::Value = serde_json::from_str(&line)
        .map_err(|e| format!("the stream stand-ins said {line:?}: {e}"))?;
    let url = |key: &str| urls[key].as_str().unwrap_or_default().to_owned();
    running.push(Running {
        name: "the stream stand-ins",
        child: stand_ins,
        stop_signal: libc::SIGTERM,
    });
    let keep = [
        settings::QUEUE_URL,
        settings::IDEMPOTENCY_TABLE,
        settings::RELAY_SIGNING_KEYS,
        settings::RELAY_PUBLIC_KEYS,
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ];
    let child = lab_child(&mut Command::new(bridge))
        .env_clear()
        .envs(
            receiver
                .iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .cloned(),
        )
        .env("HOOKRELAY_HEISENBERG_TOKEN", STREAM_TOKEN)
        .env("HOOKRELAY_HEISENBERG_URL", url("heisenberg_ws"))
        .env("HOOKRELAY_REKKO_API_KEY", STREAM_TOKEN)
        .env("HOOKRELAY_REKKO_STREAM_URL", url("rekko_stream"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            fs::File::create(state.join("bridge.log")).map_err(|e| e.to_string())?,
        ))
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", bridge.display()))?;
    running.push(Running {
        name: "hookrelay-bridge",
        child,
        stop_signal: libc::SIGTERM,
    });
    Ok(format!(
        "{} and {} (logs: {})",
        url("heisenberg_ws"),
        url("rekko_stream"),
        state.join("bridge.log").display()
    ))
}

/// How the lab runs the receiver: `cargo lambda watch` on the lab's port with its env file.
struct ReceiverCommand {
    cargo_lambda: PathBuf,
    project: PathBuf,
    port: u16,
    env_file: PathBuf,
    /// The function's output (appended to across restarts).
    log: PathBuf,
    /// cargo lambda's own output (the builds).
    watch_log: PathBuf,
}

impl ReceiverCommand {
    fn spawn(&self) -> Result<Running, String> {
        let append = |path: &Path| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let child = lab_child(&mut Command::new(&self.cargo_lambda))
            .args(["lambda", "watch", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--env-file")
            .arg(&self.env_file)
            .current_dir(&self.project)
            .stdin(Stdio::null())
            .stdout(append(&self.log)?)
            .stderr(append(&self.watch_log)?)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.cargo_lambda.display()))?;
        Ok(Running {
            name: "cargo lambda watch",
            child,
            stop_signal: libc::SIGINT,
        })
    }
}

/// Until Ctrl-C, SIGTERM or SIGHUP (`Ok`), or one of the lab's processes exits (an error).
/// SIGUSR1 restarts the receiver: a cold instance, its in-memory dedupe window empty, as after Lambda
/// recycles an execution environment.
async fn wait_for_stop(
    running: &mut [Running],
    receiver: &ReceiverCommand,
    base: &str,
    stop: &Stop,
) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut restart = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = stop.wait() => break,
            _ = restart.recv() => {
                let started = Instant::now();
                stop_all(&mut running[..1]).await;
                running[0] = receiver.spawn()?;
                wait_until_answering(base, &mut running[0], stop).await?;
                println!(
                    "receiver restarted in {:.1} s (a cold instance: its memory is empty)",
                    started.elapsed().as_secs_f64()
                );
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
            _ = check.tick() => {
                for process in running.iter_mut() {
                    if let Ok(Some(status)) = process.child.try_wait() {
                        return Err(format!("{} exited ({status}); stopping the lab", process.name));
                    }
                }
            }
        }
    }
    eprintln!("hookrelay-dev: stopping the lab");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_round_trip_through_shell_quoting() {
        let value = r#"a "b" $c \d"#;
        let text = format!("# comment\n\nexport X={}\nY=plain\n", shell_quoted(value));
        let parsed = parse_env_lines(&text);
        assert_eq!(parsed["Y"], "plain");
        // The file is for a shell; read back, the escapes stay (no value the lab writes has any).
        assert_eq!(parsed["X"], r#"a \"b\" \$c \\d"#);
        assert_eq!(
            parse_env_lines("export Q=\"http://x/1\"")["Q"],
            "http://x/1"
        );
    }
}
