//! One emulated Lambda instance on one loopback port: the Lambda Runtime API (which the real
//! `hookrelay` binary, started here as a child process, polls through `AWS_LAMBDA_RUNTIME_API`)
//! and a Function URL front end, where any other HTTP request becomes an API Gateway v2 event
//! for the function. Invocations run one at a time, as in one Lambda instance; several
//! instances are several of these.
//!
//! Like Lambda, the front end base64-encodes bodies whose content type is not textual. A
//! function that posts to `/error`, or doesn't answer within the timeout, is answered 502.
//!
//! An instance can be replaced two ways: [`LambdaInstance::recycle`] as Lambda retires an
//! execution environment (between invocations: nothing new is handed to it, the one it holds is
//! answered, then it stops and a cold process takes its place; invocations arriving meanwhile
//! wait, as for a cold start), and [`LambdaInstance::restart`] as a crash (killed whatever it
//! holds; what it held is never answered).
//!
//! The function can run under Lambda's CPU share for a memory size ([`CpuPlacement`],
//! `crate::cpu_share`): its process joins a cgroup quota before it execs (init throttled) or at
//! its first poll of `/next` (init at full speed). The emulator itself always runs unthrottled,
//! as Lambda's Runtime API is outside the function's share.
//!
//! For the benchmarks it also keeps time: when the process was spawned, when it first polled
//! `/runtime/invocation/next` (the end of its init), and for each invocation how long the
//! function held it (from handing the event over to receiving its answer).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::cpu_share::{CpuCgroup, InitModel};

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/";
/// How long the emulator waits for an invocation's answer, its time in the queue for a busy
/// instance included.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(15);

/// The deadline an invocation gets when the function takes it (`Lambda-Runtime-Deadline-Ms`):
/// template.yaml's `ReceiverFunction` `Timeout` (tests/api/template.rs checks they agree), so
/// the receiver's time budget is the one it has in AWS.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(8);

/// What the function did with one invocation.
#[derive(Debug)]
pub enum Invocation {
    /// It posted a response (the Function URL response JSON).
    Response(Vec<u8>),
    /// It posted an error, or gave no answer in time.
    Error(String),
}

/// An invocation's outcome and how long the function held it.
struct Answer {
    invocation: Invocation,
    in_function: Duration,
}

struct Queued {
    id: String,
    event: Vec<u8>,
    done: oneshot::Sender<Answer>,
}

struct Dispatched {
    done: oneshot::Sender<Answer>,
    at: Instant,
}

struct Shared {
    to_function: mpsc::UnboundedSender<Queued>,
    next_for_function: Mutex<mpsc::UnboundedReceiver<Queued>>,
    waiting: std::sync::Mutex<HashMap<String, Dispatched>>,
    next_id: AtomicU64,
    first_poll: OnceLock<Instant>,
    /// Whether invocations are handed to the function (false while it is being recycled).
    dispatching: watch::Sender<bool>,
    /// Which function process is current: a poll made by an earlier one takes nothing.
    generation: AtomicU64,
    /// A process to move into its CPU quota at its first poll (init at full speed).
    join_at_first_poll: std::sync::Mutex<Option<(Arc<CpuCgroup>, u32)>>,
}

/// Where the function's process runs: under a cgroup's CPU quota, joined as `init` says.
#[derive(Debug, Clone)]
pub struct CpuPlacement {
    /// The quota.
    pub cgroup: Arc<CpuCgroup>,
    /// When the process joins it.
    pub init: InitModel,
}

/// The function's process: a program, its arguments and its working directory.
#[derive(Debug, Clone)]
pub struct FunctionCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory (the emulator's if `None`).
    pub dir: Option<PathBuf>,
}

/// A running emulated instance and its function process.
pub struct LambdaInstance {
    /// `http://127.0.0.1:<port>`: POST webhooks here.
    pub url: String,
    shared: Arc<Shared>,
    child: Child,
    spawned_at: Instant,
    spawn: Spawn,
}

/// How the function process is started (again, on [`LambdaInstance::restart`]).
struct Spawn {
    command: FunctionCommand,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
    address: SocketAddr,
    cpu: Option<CpuPlacement>,
}

impl Spawn {
    /// Starts the process, placed in its CPU quota (at once, or at its first poll of
    /// `shared`'s Runtime API).
    fn child(&self, shared: &Shared) -> std::io::Result<Child> {
        let child = self.process()?;
        if let (Some(cpu), Some(pid)) = (&self.cpu, child.id())
            && cpu.init == InitModel::FullSpeed
        {
            *shared
                .join_at_first_poll
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((cpu.cgroup.clone(), pid));
        }
        Ok(child)
    }

    fn process(&self) -> std::io::Result<Child> {
        let output = || match &self.log {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from),
            None => Ok(Stdio::null()),
        };
        let mut process = match &self.cpu {
            // Throttled init: a shell joins the quota, then execs the function in its place.
            Some(cpu) if cpu.init == InitModel::Throttled => {
                let mut shell = Command::new("/bin/sh");
                shell
                    .arg("-c")
                    .arg(r#"echo $$ > "$0" && exec "$@""#)
                    .arg(cpu.cgroup.procs_file())
                    .arg(&self.command.program)
                    .args(&self.command.args);
                shell
            }
            _ => {
                let mut process = Command::new(&self.command.program);
                process.args(&self.command.args);
                process
            }
        };
        if let Some(dir) = &self.command.dir {
            process.current_dir(dir);
        }
        process
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", self.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "hookrelay")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdout(output()?)
            .stderr(output()?)
            .kill_on_drop(true)
            .spawn()
    }
}

impl LambdaInstance {
    /// Starts the emulator and `binary` against it with `env` (plus the Lambda variables).
    /// The function's stdout and stderr go to `log` if given, else nowhere.
    pub async fn start(
        binary: &Path,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> std::io::Result<Self> {
        let command = FunctionCommand {
            program: binary.to_owned(),
            args: Vec::new(),
            dir: None,
        };
        Self::start_command(&command, env, log).await
    }

    /// [`LambdaInstance::start`] for any command (a Python runtime interface client, say).
    pub async fn start_command(
        command: &FunctionCommand,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> std::io::Result<Self> {
        Self::start_placed(command, env, log, None).await
    }

    /// [`LambdaInstance::start_command`], with the process under a CPU quota if `cpu` says so.
    pub async fn start_placed(
        command: &FunctionCommand,
        env: &[(&str, &str)],
        log: Option<&Path>,
        cpu: Option<CpuPlacement>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?;
        let (to_function, next_for_function) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            to_function,
            next_for_function: Mutex::new(next_for_function),
            waiting: std::sync::Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            first_poll: OnceLock::new(),
            dispatching: watch::Sender::new(true),
            generation: AtomicU64::new(0),
            join_at_first_poll: std::sync::Mutex::new(None),
        });
        let server_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = server_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| route(shared.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let spawn = Spawn {
            command: command.clone(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log: log.map(Path::to_owned),
            address,
            cpu,
        };
        let spawned_at = Instant::now();
        let child = spawn.child(&shared)?;
        Ok(Self {
            url: format!("http://{address}"),
            shared,
            child,
            spawned_at,
            spawn,
        })
    }

    /// Invocations handed to the function and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.shared
            .waiting
            .lock()
            .map_or(0, |waiting| waiting.len())
    }

    /// Kills the function process and starts a new one against the same Runtime API (and so
    /// behind the same URL): a cold instance with empty memory, as when Lambda replaces one
    /// that crashed. An invocation the old process held is never answered: its caller gets an
    /// error at once. Returns how many it held.
    pub async fn restart(&mut self) -> std::io::Result<usize> {
        self.pause().await;
        let replaced = self.replace().await;
        self.shared.dispatching.send_replace(true);
        replaced
    }

    /// Replaces the function process as Lambda retires an environment: stops handing it
    /// invocations, waits (up to the invocation timeout) until what it holds is answered, then
    /// stops it and starts a cold one, which takes the invocations that waited meanwhile.
    /// Returns how many invocations it still held when stopped (0 unless one outlived the
    /// timeout).
    pub async fn recycle(&mut self) -> std::io::Result<usize> {
        self.pause().await;
        let deadline = Instant::now() + INVOCATION_TIMEOUT;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let replaced = self.replace().await;
        self.shared.dispatching.send_replace(true);
        replaced
    }

    /// Stops handing invocations to the function. Returns once no poll is between taking an
    /// invocation and recording it as dispatched (a poll does both while holding the queue, and
    /// re-reads `dispatching` after locking it), so `in_flight` is then exact.
    async fn pause(&self) {
        self.shared.dispatching.send_replace(false);
        drop(self.shared.next_for_function.lock().await);
    }

    /// Kills the process, fails what it held (dropping their answer channels), and starts a new
    /// one as the current generation. Returns how many invocations it held.
    async fn replace(&mut self) -> std::io::Result<usize> {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let held = self
            .shared
            .waiting
            .lock()
            .map(|mut waiting| waiting.drain().count())
            .unwrap_or(0);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.child = self.spawn.child(&self.shared)?;
        self.spawned_at = Instant::now();
        Ok(held)
    }

    /// The function's init: from spawning its process to its first poll for an invocation.
    /// Waits up to `timeout` for that poll; `None` if it doesn't come.
    pub async fn init_duration(&self, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(polled) = self.shared.first_poll.get() {
                return Some(polled.duration_since(self.spawned_at));
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// The function process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the function process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Invokes the function with a raw event (any bytes), bypassing the Function URL front end.
    pub async fn invoke_raw(&self, event: Vec<u8>) -> Invocation {
        invoke(&self.shared, event).await.0
    }

    /// [`LambdaInstance::invoke_raw`], with how long the function held the invocation (from
    /// the event leaving the Runtime API to the answer arriving), if it answered.
    pub async fn invoke_timed(&self, event: Vec<u8>) -> (Invocation, Option<Duration>) {
        invoke(&self.shared, event).await
    }

    /// The function process's peak resident set size (`VmHWM`), in KiB (Linux only).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// The next invocation (its id and event) for a poll of `/next`, recorded as dispatched; `None`
/// when the emulator
/// shuts down or the polling process has been replaced. While the instance is being recycled
/// the poll waits without taking anything (and without holding the queue).
async fn next_invocation(shared: &Shared) -> Option<(String, Vec<u8>)> {
    let generation = shared.generation.load(Ordering::SeqCst);
    let mut dispatching = shared.dispatching.subscribe();
    loop {
        dispatching.wait_for(|on| *on).await.ok()?;
        if shared.generation.load(Ordering::SeqCst) != generation {
            return None;
        }
        let mut queue = shared.next_for_function.lock().await;
        // Paused or replaced while this poll waited for the queue: take nothing.
        if !*dispatching.borrow_and_update() {
            continue;
        }
        if shared.generation.load(Ordering::SeqCst) != generation {
            return None;
        }
        tokio::select! {
            biased;
            paused = dispatching.wait_for(|on| !*on) => {
                paused.ok()?;
            }
            next = queue.recv() => {
                let queued = next?;
                // Its caller gave up while it waited for this busy instance (the sender's
                // attempt timed out): never run it. In Lambda it would not have waited; another
                // environment would have run it at once, while the caller was still there.
                if queued.done.is_closed() {
                    continue;
                }
                let dispatched = Dispatched {
                    done: queued.done,
                    at: Instant::now(),
                };
                shared.waiting.lock().unwrap().insert(queued.id.clone(), dispatched);
                drop(queue);
                return Some((queued.id, queued.event));
            }
        }
    }
}

async fn invoke(shared: &Shared, event: Vec<u8>) -> (Invocation, Option<Duration>) {
    let id = format!(
        "emulated-{:08}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let (done, answer) = oneshot::channel();
    let queued = Queued {
        id: id.clone(),
        event,
        done,
    };
    if shared.to_function.send(queued).is_err() {
        let error = Invocation::Error("the emulator is shutting down".into());
        return (error, None);
    }
    match tokio::time::timeout(INVOCATION_TIMEOUT, answer).await {
        Ok(Ok(answer)) => (answer.invocation, Some(answer.in_function)),
        Ok(Err(_)) => (Invocation::Error("the invocation was dropped".into()), None),
        Err(_) => {
            // No longer in flight: a late answer finds nothing to complete.
            if let Ok(mut waiting) = shared.waiting.lock() {
                waiting.remove(&id);
            }
            let error = format!("no answer within {INVOCATION_TIMEOUT:?}");
            (Invocation::Error(error), None)
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn route(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Some(runtime_path) = path.strip_prefix(RUNTIME_PREFIX) else {
        return Ok(function_url(&shared, request).await);
    };
    if runtime_path == "invocation/next" {
        shared.first_poll.get_or_init(Instant::now);
        let join = shared
            .join_at_first_poll
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((cgroup, pid)) = join
            && let Err(error) = cgroup.add(pid)
        {
            eprintln!("the function runs unthrottled: {error}");
        }
        let Some((id, event)) = next_invocation(&shared).await else {
            return Ok(text(StatusCode::GONE, "shutting down"));
        };
        let deadline = std::time::SystemTime::now() + FUNCTION_TIMEOUT;
        let deadline_ms = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut response = text(StatusCode::OK, event);
        let headers = response.headers_mut();
        // Lambda always sends the content type; awslambdaric's native client crashes without it.
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
        headers.insert(
            "lambda-runtime-deadline-ms",
            deadline_ms.to_string().parse().unwrap(),
        );
        headers.insert(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:hookrelay"
                .parse()
                .unwrap(),
        );
        headers.insert(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".parse().unwrap(),
        );
        return Ok(response);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let (id, outcome) = match runtime_path
        .strip_prefix("invocation/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((id, "response")) => (id, Invocation::Response(body)),
        Some((id, "error")) => (
            id,
            Invocation::Error(String::from_utf8_lossy(&body).into_owned()),
        ),
        _ => return Ok(text(StatusCode::ACCEPTED, "")), // init/error and anything else: noted, ignored
    };
    if let Some(dispatched) = shared.waiting.lock().unwrap().remove(id) {
        let _ = dispatched.done.send(Answer {
            invocation: outcome,
            in_function: dispatched.at.elapsed(),
        });
    }
    Ok(text(StatusCode::ACCEPTED, ""))
}

/// Lambda leaves these content types as text; others arrive base64-encoded.
fn is_textual(content_type: &str) -> bool {
    let content_type = content_type.to_ascii_lowercase();
    content_type.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded"]
            .iter()
            .any(|t| content_type.contains(t))
}

async fn function_url(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let mut headers = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            // Function URLs join repeated headers with commas.
            Some(serde_json::Value::String(existing)) => *existing = format!("{existing},{value}"),
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (body, is_base64) = match std::str::from_utf8(&body) {
        Ok(text) if is_textual(&content_type) => (text.to_owned(), false),
        _ => (BASE64.encode(&body), true),
    };
    let event = function_url_event(&method, &path, headers, body, is_base64);
    match invoke(shared, event).await.0 {
        Invocation::Response(json) => function_response(&json),
        Invocation::Error(error) => text(StatusCode::BAD_GATEWAY, error),
    }
}

/// The Function URL event (API Gateway v2 payload, as JSON bytes) for a request: what the
/// Runtime API hands the function.
pub fn function_url_event(
    method: &str,
    path: &str,
    headers: serde_json::Map<String, serde_json::Value>,
    body: String,
    is_base64: bool,
) -> Vec<u8> {
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "emulated",
            "domainName": "emulated.lambda-url.us-east-1.on.aws",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "emulator"},
            "requestId": "emulated",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": is_base64,
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

fn function_response(json: &[u8]) -> Response<Full<Bytes>> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return text(
            StatusCode::BAD_GATEWAY,
            "the function's response is not JSON",
        );
    };
    let status = value["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok());
    let body = value["body"].as_str().unwrap_or_default();
    let body = if value["isBase64Encoded"].as_bool() == Some(true) {
        BASE64.decode(body).unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = text(status.unwrap_or(StatusCode::BAD_GATEWAY), body);
    if let Some(headers) = value["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(hyper::header::HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}
