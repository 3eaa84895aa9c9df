//! Stand-ins for the providers' streams, speaking the providers' protocols (docs/contract.md, "The senders") on loopback ports, each
//! connection following a script: Heisenberg's WebSocket gateway (Bearer check at the upgrade
//! with a 401, `GET /event-types`, the `subscribe` → `subscribed` exchange, `error` and
//! `rate_limit` frames, pings, close codes such as 4001, abrupt disconnects) and Rekko's SSE feed
//! (Bearer check, bare JSON lines or `data:` framing, abrupt disconnects). They record what
//! clients did (connections, refused tokens, subscribe frames, pongs, queries) for tests to check.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The catalog `GET /event-types` answers: `polymarket.trade` with its 24 fields, the twelve
/// the seed lists as filterable marked so.
pub fn event_type_catalog() -> String {
    const FIELDS: [(&str, &str, bool); 24] = [
        ("id", "string", false),
        ("side", "string", true),
        ("size", "float", false),
        ("price", "float", false),
        ("timestamp", "string", false),
        ("transaction_hash", "string", true),
        ("order_hash", "string", true),
        ("block_number", "integer", false),
        ("condition_id", "string", true),
        ("asset", "string", true),
        ("title", "string", false),
        ("slug", "string", true),
        ("event_slug", "string", true),
        ("outcome", "string", true),
        ("outcome_index", "integer", true),
        ("icon", "string", false),
        ("maker", "string", true),
        ("taker", "string", true),
        ("proxy_wallet", "string", true),
        ("name", "string", false),
        ("pseudonym", "string", false),
        ("bio", "string", false),
        ("profile_image", "string", false),
        ("profile_image_optimized", "string", false),
    ];
    let fields: Vec<serde_json::Value> = FIELDS
        .iter()
        .map(|(name, kind, filterable)| {
            serde_json::json!({"name": name, "type": kind, "filterable": filterable})
        })
        .collect();
    serde_json::json!([{
        "name": "polymarket.trade",
        "label": "polymarket_trades_realtime",
        "description": "",
        "schema": {"fields": fields}
    }])
    .to_string()
}

/// A `polymarket.trade` frame shaped like the provider's example, the `n`th trade in market `slug`.
pub fn trade_frame(n: u64, slug: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = |what: &str| format!("0x{}", hex::encode(Sha256::digest(format!("{what}-{n}"))));
    let (transaction_hash, order_hash) = (hash("transaction"), hash("order"));
    serde_json::json!({
        "type": "polymarket.trade",
        "source": "polymarket-trade-scraper",
        "timestamp": format!("2026-05-27T13:50:{:02}.167247+00:00", n % 60),
        "data": {
            "id": format!("{transaction_hash}_{order_hash}"),
            "side": if n.is_multiple_of(2) { "BUY" } else { "SELL" },
            "size": 11 + n % 7,
            "price": 0.53,
            "timestamp": format!("2026-05-27T13:49:{:02}+00:00", n % 60),
            "transaction_hash": transaction_hash,
            "order_hash": order_hash,
            "block_number": 87_514_326 + n,
            "condition_id": "0x9ad19824c4f1b4e3f2c76a2d7f2d9",
            "asset": "67025362363793",
            "title": "Bitcoin Up or Down - May 27, 9:50AM-9:55AM ET",
            "slug": slug,
            "event_slug": "btc-updown-5m",
            "outcome": "Up",
            "outcome_index": 0,
            "icon": "https://polymarket-upload.s3.amazonaws.com/BTC+fullsize.png",
            "maker": "0x55338cd1b8220",
            "taker": "0x6833c01b5cfe1",
            "proxy_wallet": "0x55338cd1b8220",
            "name": null,
            "pseudonym": null,
            "bio": null,
            "profile_image": null,
            "profile_image_optimized": null
        }
    })
    .to_string()
}

/// A Rekko event object (one line of the feed), the `n`th, cycling through the provider's types.
pub fn rekko_event(n: u64) -> String {
    let market = format!("KXFED-26MAR{:02}", n % 30);
    let timestamp = format!("2026-03-21T14:{:02}:{:02}Z", (n / 60) % 60, n % 60);
    match n % 3 {
        0 => serde_json::json!({"type": "price_shift", "market_id": market, "platform": "kalshi",
            "old_yes": 0.62, "new_yes": 0.68, "change_pct": 9.7, "seq": n, "timestamp": timestamp}),
        1 => serde_json::json!({"type": "whale_alert", "market_id": market, "platform": "kalshi",
            "side": "yes", "flow": 250_000 + n, "price": 0.41, "timestamp": timestamp}),
        _ => serde_json::json!({"type": "analysis_complete", "analysis_id": format!("an-{n}"),
            "market_id": market, "platform": "kalshi", "timestamp": timestamp}),
    }
    .to_string()
}

/// One step of a scripted WebSocket connection.
#[derive(Debug, Clone)]
pub enum WsStep {
    /// Wait for the client's `subscribe` frame, record it, answer `subscribed` with one id per
    /// subscription (filters echoed).
    AwaitSubscribe,
    /// Send this text frame.
    Send(String),
    /// Send a ping (the client's pong is counted).
    Ping,
    /// Pause.
    Sleep(Duration),
    /// Close with this code.
    Close(u16),
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// One step of a scripted SSE response.
#[derive(Debug, Clone)]
pub enum SseStep {
    /// Write these bytes as they are.
    Write(String),
    /// Pause.
    Sleep(Duration),
    /// Drop the connection mid-stream.
    Drop,
}

/// What clients did.
#[derive(Debug, Default, Clone)]
pub struct SimRecord {
    /// Connections (upgrades or stream requests) with a valid token.
    pub connections: usize,
    /// Requests refused for their token.
    pub unauthorized: usize,
    /// `GET /event-types` requests answered.
    pub catalog_requests: usize,
    /// Subscribe frames received, as sent.
    pub subscribes: Vec<String>,
    /// Pongs received.
    pub pongs: usize,
    /// Stream request targets (path and query), in order.
    pub requests: Vec<String>,
    /// `Last-Event-ID` of each stream request.
    pub last_event_ids: Vec<Option<String>>,
}

struct Shared<S> {
    token: String,
    scripts: Mutex<VecDeque<Vec<S>>>,
    record: Mutex<SimRecord>,
    stop: watch::Receiver<bool>,
}

/// A running stand-in; stops (closing held connections) when dropped.
pub struct StreamSim<S> {
    /// Where it listens.
    pub address: SocketAddr,
    shared: Arc<Shared<S>>,
    stop: watch::Sender<bool>,
}

impl<S> Drop for StreamSim<S> {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl<S: Clone + Send + 'static> StreamSim<S> {
    async fn start<F, Fut>(token: &str, scripts: Vec<Vec<S>>, serve: F) -> std::io::Result<Self>
    where
        F: Fn(TcpStream, Arc<Shared<S>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            token: format!("Bearer {token}"),
            scripts: Mutex::new(scripts.into()),
            record: Mutex::new(SimRecord::default()),
            stop: stopped,
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            let mut stop = accepting.stop.clone();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => { tokio::spawn(serve(stream, accepting.clone())); }
                        Err(_) => return,
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Self {
            address,
            shared,
            stop,
        })
    }

    /// What clients did so far.
    pub fn record(&self) -> SimRecord {
        self.shared.record.lock().expect("sim record").clone()
    }

    /// Appends a script for a later connection.
    pub fn push_script(&self, script: Vec<S>) {
        self.shared
            .scripts
            .lock()
            .expect("sim scripts")
            .push_back(script);
    }
}

impl<S> Shared<S> {
    /// The next connection's script; after the last, connections just stay open.
    fn next_script(&self) -> Vec<S> {
        self.scripts
            .lock()
            .expect("sim scripts")
            .pop_front()
            .unwrap_or_default()
    }

    fn note(&self, f: impl FnOnce(&mut SimRecord)) {
        f(&mut self.record.lock().expect("sim record"));
    }
}

/// The Heisenberg gateway stand-in: `ws://{address}/ws`, `http://{address}/event-types`.
pub type HeisenbergSim = StreamSim<WsStep>;
/// The Rekko feed stand-in: `http://{address}/v1/stream`.
pub type RekkoSim = StreamSim<SseStep>;

/// Starts a Heisenberg stand-in accepting `token`; each connection follows the next script.
pub async fn heisenberg(token: &str, scripts: Vec<Vec<WsStep>>) -> std::io::Result<HeisenbergSim> {
    StreamSim::start(token, scripts, serve_heisenberg).await
}

/// Starts a Rekko stand-in accepting `token`; each connection follows the next script.
pub async fn rekko(token: &str, scripts: Vec<Vec<SseStep>>) -> std::io::Result<RekkoSim> {
    StreamSim::start(token, scripts, serve_rekko).await
}

impl HeisenbergSim {
    /// The gateway URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }
}

impl RekkoSim {
    /// The feed URL.
    pub fn stream_url(&self) -> String {
        format!("http://{}/v1/stream", self.address)
    }
}

/// Reads an HTTP request head (up to the blank line); `None` if the client went away.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve_heisenberg(mut stream: TcpStream, shared: Arc<Shared<WsStep>>) {
    // Route by the request line: the catalog is plain HTTP, everything else is the upgrade.
    let mut peeked = [0u8; 32];
    let Ok(n) = stream.peek(&mut peeked).await else {
        return;
    };
    if peeked[..n].starts_with(b"GET /event-types") || peeked[..n].starts_with(b"GET /health") {
        let Some(head) = read_head(&mut stream).await else {
            return;
        };
        let authorized = header(&head, "authorization") == Some(shared.token.as_str());
        let response = if head.starts_with("GET /health") {
            http_response("200 OK", "application/json", "{\"status\":\"ok\"}")
        } else if authorized {
            shared.note(|r| r.catalog_requests += 1);
            http_response("200 OK", "application/json", &event_type_catalog())
        } else {
            shared.note(|r| r.unauthorized += 1);
            http_response(
                "401 Unauthorized",
                "application/json",
                "{\"error\":\"unauthorized\"}",
            )
        };
        let _ = stream.write_all(response.as_bytes()).await;
        return;
    }
    let token = shared.token.clone();
    #[allow(
        clippy::result_large_err,
        reason = "tungstenite's handshake callback type, not ours"
    )]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given == Some(token.as_str()) {
            Ok(response)
        } else {
            let mut refusal = ErrorResponse::new(Some("unauthorized".into()));
            *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        shared.note(|r| r.unauthorized += 1);
        return;
    };
    shared.note(|r| r.connections += 1);
    let mut stop = shared.stop.clone();
    for step in shared.next_script() {
        match step {
            WsStep::AwaitSubscribe => loop {
                let Some(Ok(message)) = ws.next().await else {
                    return;
                };
                match message {
                    Message::Text(text) if text.contains("\"subscribe\"") => {
                        let frame: serde_json::Value =
                            serde_json::from_str(&text).unwrap_or_default();
                        let granted: Vec<serde_json::Value> = frame["subscriptions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .enumerate()
                            .map(|(i, s)| serde_json::json!({"id": format!("sub-{}-{i}", subscription_id()), "type": s["type"], "filters": s["filters"]}))
                            .collect();
                        let types: Vec<&serde_json::Value> =
                            granted.iter().map(|g| &g["type"]).collect();
                        let ack = serde_json::json!({"action": "subscribed", "types": types, "subscriptions": granted});
                        shared.note(|r| r.subscribes.push(text.to_string()));
                        if ws.send(Message::text(ack.to_string())).await.is_err() {
                            return;
                        }
                        break;
                    }
                    Message::Pong(_) => shared.note(|r| r.pongs += 1),
                    Message::Close(_) => return,
                    _ => {}
                }
            },
            WsStep::Send(text) => {
                if ws.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            WsStep::Ping => {
                if ws
                    .send(Message::Ping(b"heartbeat".to_vec().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            WsStep::Sleep(pause) => tokio::time::sleep(pause).await,
            WsStep::Close(code) => {
                let frame = CloseFrame {
                    code: code.into(),
                    reason: "reconnect to a fresh upstream feed".into(),
                };
                let _ = ws.close(Some(frame)).await;
                while let Some(Ok(_)) = ws.next().await {}
                return;
            }
            WsStep::Drop => return,
        }
    }
    // The script is done: hold the connection, counting pongs, until the client or the sim stops.
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Pong(_))) => shared.note(|r| r.pongs += 1),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn serve_rekko(mut stream: TcpStream, shared: Arc<Shared<SseStep>>) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let target = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    if header(&head, "authorization") != Some(shared.token.as_str()) {
        shared.note(|r| r.unauthorized += 1);
        let refusal = http_response(
            "401 Unauthorized",
            "application/json",
            "{\"detail\":\"Invalid API key\"}",
        );
        let _ = stream.write_all(refusal.as_bytes()).await;
        return;
    }
    let last_event_id = header(&head, "last-event-id").map(str::to_owned);
    shared.note(|r| {
        r.connections += 1;
        r.requests.push(target);
        r.last_event_ids.push(last_event_id);
    });
    let open = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if stream.write_all(open.as_bytes()).await.is_err() {
        return;
    }
    let mut stop = shared.stop.clone();
    for step in shared.next_script() {
        match step {
            SseStep::Write(bytes) => {
                if stream.write_all(bytes.as_bytes()).await.is_err() {
                    return;
                }
            }
            SseStep::Sleep(pause) => tokio::time::sleep(pause).await,
            SseStep::Drop => return,
        }
    }
    let mut sink = [0u8; 256];
    loop {
        tokio::select! {
            read = stream.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn http_response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A short unique-enough id for granted subscriptions.
fn subscription_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
