//! The local lab as a user drives it: `hookrelay-dev up` spawned from the checkout (moto, the
//! receiver under `cargo lambda watch`, the bridge against the stream stand-ins), then
//! `trigger` for every event type of the seeds, `watch`, and `forward` to a handler process
//! that answers 503 once, then is killed and restarted, and one message sealed by a foreign key
//! that it must refuse; last, `forward` against a deleted queue and without credentials. Every `hookrelay-dev` subcommand's `--help` too. Each wait is
//! bounded, so a hang fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hookrelay::senders;
use hookrelay_devtools::event_catalog;
use hookrelay_devtools::moto::{free_port, test_python};

const DEV: &str = env!("CARGO_BIN_EXE_hookrelay-dev");

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn dev(args: &[&str]) -> Output {
    Command::new(DEV)
        .args(args)
        .current_dir(project())
        .output()
        .expect("run hookrelay-dev")
}

#[test]
fn every_subcommand_has_help_and_the_tool_a_version() {
    let help = dev(&["--help"]);
    assert!(help.status.success());
    let listed = String::from_utf8(help.stdout).unwrap();
    let subcommands = [
        "up",
        "trigger",
        "watch",
        "forward",
        "event",
        "send",
        "relay-keygen",
        "completions",
    ];
    for subcommand in subcommands {
        assert!(
            listed.contains(&format!("  {subcommand} ")),
            "{subcommand} missing from --help"
        );
        let out = dev(&[subcommand, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{subcommand} --help: {out:?}");
        assert!(
            text.contains(&format!("Usage: hookrelay-dev {subcommand}")),
            "{subcommand} --help: {text}"
        );
    }
    let version = dev(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        concat!("hookrelay-dev ", env!("CARGO_PKG_VERSION"))
    );
    // Piped into a reader that stops early, it ends quietly (no panic).
    let mut piped = Command::new(DEV)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(piped.stdout.take()); // the reader went away before the first line
    let mut stderr = String::new();
    piped
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    piped.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let completions = dev(&["completions", "bash"]);
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("complete -F"));
    // A mistake says what to do, with the usage, and exits 2.
    let wrong = dev(&["send", "--url", "http://127.0.0.1:9/"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--provider"));
    let remote = dev(&[
        "trigger",
        "engine",
        "ORDER_MATCHED",
        "--url",
        "https://hooks.example.com",
    ]);
    assert_eq!(remote.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&remote.stderr).contains("--not-a-production-stack"));
    let forward = dev(&["forward", "--to", "http://127.0.0.1:9/"]);
    assert_eq!(forward.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&forward.stderr).contains("--i-own-this-queue"));
}

/// A child process killed when the test ends, however it ends.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `command`'s output, or a panic if it has not finished within `seconds`.
fn output_within(command: &mut Command, seconds: u64) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    match receive.recv_timeout(Duration::from_secs(seconds)) {
        Ok(output) => output.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on the child this helper spawned.
            unsafe {
                libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL);
            }
            panic!("{command:?} did not finish within {seconds} s");
        }
    }
}

/// `hookrelay-dev up`, stopped as a user stops it (Ctrl-C) when the test ends however it ends.
struct Lab(Child);

impl Drop for Lab {
    fn drop(&mut self) {
        signal(&self.0, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), signal);
    }
}

/// Lines of a child's stream, read on a thread.
fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    within: Duration,
    what: &str,
    found: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if found(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("{what}: not within {} s", within.as_secs()),
        }
    }
}

/// The test's stand-in for a user's handler: logs `<envelope id> <status>` per POST, after
/// answering; with `fail_first`, answers its first POST 503.
fn handler(port: u16, log: &Path, fail_first: bool) -> Spawned {
    let script = r#"
import http.server, sys
port, log, fail_first = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
state = {"failed": not fail_first}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        envelope_id = self.headers["hookrelay-envelope-id"]
        ok = state["failed"] and b'"id":' in body and self.headers["webhook-signature"].startswith("v1a,")
        state["failed"] = True
        status = 200 if ok else 503
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()
        self.wfile.flush()
        with open(log, "a") as f:
            f.write(f"{envelope_id} {status}\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;
    let child = Command::new(test_python())
        .args(["-c", script, &port.to_string(), log.to_str().unwrap()])
        .arg(if fail_first { "1" } else { "0" })
        .spawn()
        .expect("start the handler");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the handler did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Spawned(child)
}

fn logged(log: &Path) -> Vec<(String, u16)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (id, status) = line.rsplit_once(' ')?;
            Some((id.to_owned(), status.parse().ok()?))
        })
        .collect()
}

fn trigger(lab_env: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["trigger"];
    all.extend(args);
    all.extend(["--lab-env", lab_env.to_str().unwrap()]);
    let out = dev(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The envelope id in a trigger's answer line.
fn answered_id(stdout: &str) -> String {
    let start = stdout.find("\"id\":\"").expect("an id in the answer") + 6;
    stdout[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn the_lab_takes_triggers_shows_them_in_watch_and_forwards_across_a_handler_restart() {
    let state = tempdir();
    let lab_env = state.join("lab.env");
    let (port, aws_port) = (free_port(), free_port());
    let bridge = Path::new(DEV).with_file_name("hookrelay-bridge");
    assert!(
        bridge.exists(),
        "no {} (cargo build -p hookrelay-bridge; the workspace's tests build it)",
        bridge.display()
    );
    let mut up = Command::new(DEV)
        .args(["up", "--streams", "--state-dir", state.to_str().unwrap()])
        .args([
            "--port",
            &port.to_string(),
            "--aws-port",
            &aws_port.to_string(),
        ])
        .current_dir(project())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hookrelay-dev up");
    let up_out = lines(up.stdout.take().unwrap());
    let up_err = lines(up.stderr.take().unwrap());
    let mut up = Lab(up);
    let ready = std::panic::catch_unwind(|| {
        // A first build of the receiver under `cargo lambda watch` takes minutes on 2 cores.
        wait_for_line(&up_out, Duration::from_secs(900), "up ready", |l| {
            l.contains("ready in")
        })
    });
    if ready.is_err() {
        let log = std::fs::read_to_string(state.join("receiver-watch.log")).unwrap_or_default();
        let errors: Vec<String> = up_err.try_iter().collect();
        panic!("up was not ready: {errors:?}\n{log}");
    }
    let printed: Vec<String> =
        std::iter::from_fn(|| up_out.recv_timeout(Duration::from_secs(2)).ok())
            .take_while(|l| !l.contains("Ctrl-C stops the lab"))
            .collect();
    let exports: BTreeMap<String, String> = printed
        .iter()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    for variable in [
        "HOOKRELAY_LAB_URL",
        "HOOKRELAY_QUEUE_URL",
        "HOOKRELAY_RELAY_PUBLIC_KEYS",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(
            exports.contains_key(variable),
            "{variable} not printed: {printed:?}"
        );
    }
    assert!(lab_env.exists());
    let queue_url = exports["HOOKRELAY_QUEUE_URL"].clone();
    let endpoint = exports["AWS_ENDPOINT_URL"].clone();
    assert!(
        queue_url.starts_with(&endpoint),
        "{queue_url} is not behind the lab's endpoint {endpoint}"
    );

    // watch, from the first message the lab accepted (the bridge's stream events included).
    let mut watch = Command::new(DEV)
        .args([
            "watch",
            "--json",
            "--all",
            "--lab-env",
            lab_env.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start watch");
    let watched = lines(watch.stdout.take().unwrap());
    let watch = Spawned(watch);

    // trigger: every event type of every provider, each answered, signed and in the queue.
    let mut triggered = BTreeSet::new();
    for sender in senders::SENDERS {
        for event_type in event_catalog::event_types(sender) {
            let (ok, stdout, stderr) = trigger(
                &lab_env,
                &[sender.name, event_type, "--market", "lab-market"],
            );
            assert!(ok, "trigger {} {event_type}: {stdout}{stderr}", sender.name);
            assert!(stdout.contains("\"accepted\""), "{stdout}");
            assert!(stdout.contains("relay signature verified"), "{stdout}");
            triggered.insert(answered_id(&stdout));
        }
    }
    // The trigger commands docs/getting-started.md shows, as written.
    let guide = std::fs::read_to_string(project().join("docs/getting-started.md")).unwrap();
    let section = guide
        .split("## The local lab")
        .nth(1)
        .expect("the lab's section")
        .split("\n## ")
        .next()
        .unwrap();
    let documented: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("hookrelay-dev trigger "))
        .collect();
    assert!(documented.len() >= 4, "{documented:?}");
    for line in documented {
        let command = line.split('#').next().unwrap();
        let words: Vec<&str> = command.split_whitespace().skip(2).collect();
        let (ok, stdout, stderr) = trigger(&lab_env, &words);
        assert!(ok, "{line}: {stdout}{stderr}");
        for answer in stdout.lines().filter(|l| l.contains(" → ")) {
            assert!(
                answer.contains("\"accepted\"") || answer.contains("\"duplicate\""),
                "{line}: {answer}"
            );
        }
        triggered.insert(answered_id(&stdout));
    }

    // The same delivery sent twice, as a sender retries: the second is answered `duplicate`.
    let (ok, stdout, _) = trigger(
        &lab_env,
        &[
            "engine",
            "ORDER_MATCHED",
            "--sequence",
            "500",
            "--repeat",
            "2",
        ],
    );
    assert!(ok, "{stdout}");
    let answers: Vec<&str> = stdout.lines().filter(|l| l.contains(" → ")).collect();
    assert_eq!(answers.len(), 2, "{stdout}");
    assert!(
        answers[0].contains("\"accepted\"") && answers[1].contains("\"duplicate\""),
        "{stdout}"
    );
    triggered.insert(answered_id(&stdout));
    let (ok, listed, _) = trigger(&lab_env, &["rekko"]);
    assert!(ok && listed.contains("  whale_alert"), "{listed}");
    let (ok, _, stderr) = trigger(&lab_env, &["engine", "NOT_A_TYPE"]);
    assert!(
        !ok && stderr.contains("ORDER_MATCHED"),
        "an unknown type names the known ones: {stderr}"
    );

    // watch saw each triggered event once, verified, and each stream event once.
    let expected_streams = 18; // the stand-ins' demo: 12 trades and 6 Rekko events
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut via_stream = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.keys().filter(|id| triggered.contains(*id)).count() < triggered.len()
        || via_stream < expected_streams)
        && Instant::now() < deadline
    {
        if let Ok(line) = watched.recv_timeout(Duration::from_secs(1)) {
            let envelope: serde_json::Value =
                serde_json::from_str(&line).expect("watch --json prints envelopes");
            if envelope["via"] == "stream" {
                via_stream += 1;
            }
            *seen
                .entry(envelope["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    for line in watched.try_iter() {
        let envelope: serde_json::Value = serde_json::from_str(&line).unwrap();
        *seen
            .entry(envelope["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let missing: Vec<_> = triggered
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "watch missed {missing:?}");
    assert_eq!(via_stream, expected_streams, "stream events watched");
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "watch printed twice: {repeated:?}");
    drop(watch);

    // SIGUSR1 restarts the receiver cold; the lab keeps its queue and answers again.
    signal(&up.0, libc::SIGUSR1);
    wait_for_line(
        &up_out,
        Duration::from_secs(300),
        "the receiver restarted",
        |l| l.contains("receiver restarted in"),
    );
    let queued: BTreeSet<String> = seen.keys().cloned().collect();

    // forward: the handler answers its first POST 503 (kept, delivered again), the rest 200.
    let handler_port = free_port();
    let log = state.join("handler.log");
    let first_handler = handler(handler_port, &log, true);
    let to = format!("http://127.0.0.1:{handler_port}/events");
    let mut forward = Command::new(DEV)
        .args([
            "forward",
            "--to",
            &to,
            "--i-own-this-queue",
            "--lab-env",
            lab_env.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start forward");
    let forward_err = lines(forward.stderr.take().unwrap());
    let forward = Spawned(forward);
    let delivered = |log: &Path| -> BTreeSet<String> {
        logged(log)
            .into_iter()
            .filter(|(_, s)| *s == 200)
            .map(|(id, _)| id)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered(&log) != queued {
        assert!(
            Instant::now() < deadline,
            "forward delivered {:?} of {}",
            delivered(&log).len(),
            queued.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before_restart = logged(&log);
    assert_eq!(before_restart.iter().filter(|(_, s)| *s == 503).count(), 1);

    // The handler goes away for longer than five receives would take with any backoff of a
    // second or more (the queue's redrive policy moves a message after 5); events arrive
    // meanwhile; it comes back on the same port.
    let _ = forward_err.try_iter().count();
    drop(first_handler);
    let mut later = BTreeSet::new();
    for n in 0..5 {
        let sequence = (1_000 + n).to_string();
        let (ok, stdout, stderr) = trigger(
            &lab_env,
            &["engine", "PRICE_UPDATED", "--sequence", &sequence],
        );
        assert!(ok, "{stdout}{stderr}");
        later.insert(answered_id(&stdout));
    }
    wait_for_line(
        &forward_err,
        Duration::from_secs(60),
        "a refused POST kept",
        |l| l.contains("not delivered") && l.contains("kept in flight"),
    );
    std::thread::sleep(Duration::from_secs(35));
    let _second_handler = handler(handler_port, &log, false);
    let all: BTreeSet<String> = queued.union(&later).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered(&log) != all {
        assert!(
            Instant::now() < deadline,
            "after the restart, delivered {} of {}",
            delivered(&log).len(),
            all.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2)); // anything sent twice would arrive by now
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for (id, status) in logged(&log) {
        if status == 200 {
            *answered.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = answered.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "POSTs answered 200 more than once: {twice:?}"
    );
    drop(forward);

    // Nothing went to the dead-letter queue, and nothing is left in the queue.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sqs = hookrelay_devtools::local_sqs::client(&endpoint);
    let dead_letter_url = exports["HOOKRELAY_DEAD_LETTER_QUEUE_URL"].clone();
    for (queue, what) in [
        (&queue_url, "the queue"),
        (&dead_letter_url, "the dead-letter queue"),
    ] {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let answer = runtime
            .block_on(
                sqs.get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(A::All)
                    .send(),
            )
            .unwrap();
        let count = |name: A| {
            answer
                .attributes()
                .and_then(|a| a.get(&name))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            (
                count(A::ApproximateNumberOfMessages),
                count(A::ApproximateNumberOfMessagesNotVisible)
            ),
            ("0".to_owned(), "0".to_owned()),
            "{what} is not empty"
        );
    }

    // A message sealed by a key the lab does not trust is never POSTed, nor deleted: it stays
    // in the queue for its redrive policy. (It is sent once the killed forward's last long poll,
    // at most 5 s, has ended: a poll still open would take it, as SQS's would.)
    std::thread::sleep(Duration::from_secs(6));
    let forged_id = "engine:forged:1";
    let forged_body = format!(
        r#"{{"version":1,"id":"{forged_id}","provider":"engine","type":"ORDER_MATCHED","market_id":"m","sequence":1,"delivery_id":null,"occurred_at":null,"received_at":"2026-12-07T00:00:00.000Z","data":{{}}}}"#
    );
    let now_secs = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let sealed =
        hookrelay_devtools::relay_keys::foreign_signer().sign(forged_id, now_secs, &forged_body);
    let string = |value: String| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    runtime
        .block_on(
            sqs.send_message()
                .queue_url(&queue_url)
                .message_body(&forged_body)
                .message_group_id("forged")
                .message_deduplication_id("forged-1")
                .message_attributes("relay_id", string(sealed.id))
                .message_attributes("relay_timestamp", string(sealed.timestamp))
                .message_attributes("relay_signature", string(sealed.signatures))
                .send(),
        )
        .expect("send the forged message");
    let mut refusing = Command::new(DEV)
        .args(["forward", "--to", &to, "--i-own-this-queue"])
        .args(["--lab-env", lab_env.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start forward");
    let refusing_err = lines(refusing.stderr.take().unwrap());
    let refusing = Spawned(refusing);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut said = Vec::new();
    while !said
        .iter()
        .any(|l: &String| l.contains("NOT handed over") && l.contains("relay signature"))
    {
        assert!(
            Instant::now() < deadline,
            "the forged message was not refused within 60 s: {said:?}"
        );
        if let Ok(line) = refusing_err.recv_timeout(Duration::from_secs(1)) {
            said.push(line);
        }
    }
    drop(refusing);
    assert!(
        logged(&log).iter().all(|(id, _)| id != forged_id),
        "a forged message was POSTed"
    );
    let held = runtime
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send(),
        )
        .unwrap();
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| -> u32 {
        held.attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse().ok())
            .unwrap_or_default()
    };
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        1,
        "the forged message was deleted"
    );

    // Fails loudly: no credentials at all, then a deleted queue.
    let no_credentials = output_within(
        Command::new(DEV)
            .args(["forward", "--to", &to, "--i-own-this-queue"])
            .args(["--queue", &queue_url])
            .env_clear()
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "HOOKRELAY_RELAY_PUBLIC_KEYS",
                &exports["HOOKRELAY_RELAY_PUBLIC_KEYS"],
            ),
        60,
    );
    assert!(!no_credentials.status.success());
    assert!(
        String::from_utf8_lossy(&no_credentials.stderr).contains("credentials"),
        "{no_credentials:?}"
    );
    runtime
        .block_on(sqs.delete_queue().queue_url(&queue_url).send())
        .expect("delete the lab's queue");
    let gone = output_within(
        Command::new(DEV)
            .args(["forward", "--to", &to, "--i-own-this-queue"])
            .args(["--lab-env", lab_env.to_str().unwrap()]),
        60,
    );
    assert!(!gone.status.success());
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(
        said.contains("NonExistentQueue") || said.contains("QueueDoesNotExist"),
        "{said}"
    );

    // Ctrl-C: the lab stops cleanly, the receiver with it, and takes its lab.env along.
    signal(&up.0, libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = up.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "up did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "up exited {status}");
    assert!(!lab_env.exists(), "lab.env outlived the lab");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the receiver outlived the lab"
    );
    let _ = std::fs::remove_dir_all(&state);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookrelay-lab-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a run with the same pid before
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
