//! A Function URL under reserved concurrency, as Lambda throttles one: `N` emulated instances
//! ([`crate::lambda_emulator`]) behind one loopback port, each taking one invocation at a time. A
//! request that finds all `N` busy, or arrives beyond `10 × N` in the current second, is
//! answered 429 without reaching the function. The Lambda developer guide, "Throttling function
//! URLs": "Whenever your function concurrency exceeds the reserved concurrency, your function URL
//! returns an HTTP `429` status code. If your function receives a request that exceeds the 10x
//! RPS maximum based on your configured reserved concurrency, you also receive an HTTP `429`
//! error." How the rate is counted is not documented; here it is a token bucket refilled at
//! `10 × N` a second and holding one second's worth, so a request is admitted by when it
//! arrives, not by its place in a clock second. The body of Lambda's 429 is not documented
//! either; this one says `Rate Exceeded.`.
//!
//! The instances are started warm (no cold starts under the cap): what this models is the cap.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::lambda_emulator::LambdaInstance;

/// What the front answered, so far.
#[derive(Debug, Default)]
pub struct ThrottleCounts {
    /// Requests handed to an instance.
    pub invoked: AtomicU64,
    /// Requests answered 429 because every instance was busy.
    pub throttled_busy: AtomicU64,
    /// Requests answered 429 for the request rate (over `10 × N` in one second).
    pub throttled_rate: AtomicU64,
}

/// A running front and its instances.
pub struct ThrottledFunctionUrl {
    /// `http://127.0.0.1:<port>`: POST webhooks here.
    pub url: String,
    /// The answers so far.
    pub counts: Arc<ThrottleCounts>,
    /// The instances (kept here so they live as long as the front).
    pub instances: Vec<LambdaInstance>,
}

struct Front {
    targets: Vec<String>,
    idle: Mutex<Vec<usize>>,
    /// The rate's tokens and when they were last topped up.
    tokens: Mutex<(f64, Instant)>,
    requests_per_second: f64,
    counts: Arc<ThrottleCounts>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ThrottledFunctionUrl {
    /// Starts `reserved` instances of `binary` with `env` (each logging to `log_dir`, if given)
    /// behind one throttled front.
    pub async fn start(
        binary: &Path,
        env: &[(&str, &str)],
        reserved: usize,
        log_dir: Option<&Path>,
    ) -> std::io::Result<Self> {
        let reserved = reserved.max(1);
        let mut instances = Vec::with_capacity(reserved);
        for index in 0..reserved {
            let log = log_dir.map(|dir| dir.join(format!("receiver-{index}.log")));
            instances.push(LambdaInstance::start(binary, env, log.as_deref()).await?);
        }
        let counts = Arc::new(ThrottleCounts::default());
        let front = Arc::new(Front {
            targets: instances.iter().map(|i| i.url.clone()).collect(),
            idle: Mutex::new((0..reserved).collect()),
            tokens: Mutex::new((10.0 * reserved as f64, Instant::now())),
            requests_per_second: 10.0 * reserved as f64,
            counts: counts.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(serve(listener, front));
        Ok(Self {
            url,
            counts,
            instances,
        })
    }
}

async fn serve(listener: TcpListener, front: Arc<Front>) {
    while let Ok((stream, _)) = listener.accept().await {
        let front = front.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let front = front.clone();
                async move { Ok::<_, Infallible>(front.handle(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Front {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.within_rate() {
            self.counts.throttled_rate.fetch_add(1, Ordering::Relaxed);
            return throttled();
        }
        let Some(index) = self.take_idle() else {
            self.counts.throttled_busy.fetch_add(1, Ordering::Relaxed);
            return throttled();
        };
        self.counts.invoked.fetch_add(1, Ordering::Relaxed);
        let answer = self.forward(index, request).await;
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(index);
        answer
    }

    /// Takes one of the rate's tokens; false when there is none.
    fn within_rate(&self) -> bool {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let refilled =
            tokens.0 + now.duration_since(tokens.1).as_secs_f64() * self.requests_per_second;
        *tokens = (refilled.min(self.requests_per_second), now);
        if tokens.0 >= 1.0 {
            tokens.0 -= 1.0;
            true
        } else {
            false
        }
    }

    fn take_idle(&self) -> Option<usize> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    async fn forward(&self, index: usize, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = bytes_of(body).await;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut forwarded = Request::builder()
            .method(parts.method)
            .uri(format!("{}{path}", self.targets[index]));
        for (name, value) in &parts.headers {
            forwarded = forwarded.header(name, value);
        }
        let Ok(forwarded) = forwarded.body(Full::new(body)) else {
            return text(StatusCode::BAD_REQUEST, "unforwardable request");
        };
        match self.client.request(forwarded).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                Response::from_parts(parts, Full::new(bytes_of(body).await))
            }
            Err(_) => text(StatusCode::BAD_GATEWAY, "the instance did not answer"),
        }
    }
}

/// A body's bytes (none if it broke off).
async fn bytes_of(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

fn throttled() -> Response<Full<Bytes>> {
    text(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"Message":"Rate Exceeded."}"#,
    )
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
