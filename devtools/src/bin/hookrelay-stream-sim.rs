//! Stand-ins for Heisenberg's WebSocket gateway and Rekko's SSE feed on loopback ports, for the
//! local run and the bridge benchmark. Prints one JSON line (URLs, and the events each stand-in
//! will send, in order, duplicates excluded), then serves until its stdin closes.
//!
//! ```text
//! hookrelay-stream-sim --token T [--trades N] [--rekko-events N] [--mode demo|burst]
//! ```
//!
//! In `demo` mode (the default) each stream shows the behaviours the bridge must survive: Heisenberg sends
//! an `error` and a `rate_limit` frame, pings, closes with 4001, re-sends two trades after the
//! reconnect, then drops the connection abruptly; Rekko sends bare JSON lines, drops mid-event,
//! then switches to `data:` framing with an id and replays an event. In `burst` mode each stream
//! sends all its events on one connection as fast as it can (for measuring throughput).

use std::io::Read;

use hookrelay_devtools::cli::{flag_pairs, number};
use hookrelay_devtools::stream_sim::{self, SseStep, WsStep, rekko_event, trade_frame};

const USAGE: &str =
    "usage: hookrelay-stream-sim --token T [--trades N] [--rekko-events N] [--mode demo|burst]";

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let (mut token, mut trades, mut rekko_events, mut burst) = (None, 12u64, 6u64, false);
    for (flag, value) in flag_pairs(usage) {
        match flag.as_str() {
            "--token" => token = Some(value),
            "--trades" => trades = number(&flag, &value, usage),
            "--rekko-events" => rekko_events = number(&flag, &value, usage),
            "--mode" => {
                burst = match value.as_str() {
                    "burst" => true,
                    "demo" => false,
                    _ => usage("--mode: demo or burst"),
                }
            }
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let Some(token) = token else {
        usage("--token is required")
    };

    let trade_frames: Vec<String> = (0..trades)
        .map(|n| trade_frame(n, &format!("btc-updown-5m-17798898{:02}", n % 3)))
        .collect();
    let rekko_lines: Vec<String> = (0..rekko_events).map(rekko_event).collect();
    let (ws_scripts, sse_scripts) = if burst {
        (
            vec![
                std::iter::once(WsStep::AwaitSubscribe)
                    .chain(trade_frames.iter().cloned().map(WsStep::Send))
                    .collect(),
            ],
            vec![vec![SseStep::Write(
                rekko_lines.iter().map(|e| format!("{e}\n")).collect(),
            )]],
        )
    } else {
        (demo_ws(&trade_frames), demo_sse(&rekko_lines))
    };
    let heisenberg = stream_sim::heisenberg(&token, ws_scripts)
        .await
        .map_err(|e| e.to_string())?;
    let rekko = stream_sim::rekko(&token, sse_scripts)
        .await
        .map_err(|e| e.to_string())?;
    let announcement = serde_json::json!({
        "heisenberg_ws": heisenberg.ws_url(),
        "rekko_stream": rekko.stream_url(),
        "trades": trade_frames,
        "rekko_events": rekko_lines,
    });
    println!("{announcement}");

    // Serve until whoever started us goes away.
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    })
    .await
    .map_err(|e| e.to_string())?;
    let (h, r) = (heisenberg.record(), rekko.record());
    eprintln!(
        "heisenberg: {} connection(s), {} subscribe frame(s), {} pong(s); rekko: {} connection(s)",
        h.connections,
        h.subscribes.len(),
        h.pongs,
        r.connections
    );
    Ok(())
}

/// Three connections: error + rate_limit + ping + 4001; a replay of two trades then an abrupt
/// drop; the rest.
fn demo_ws(trades: &[String]) -> Vec<Vec<WsStep>> {
    let third = trades.len() / 3;
    let send = |range: std::ops::Range<usize>| trades[range].iter().cloned().map(WsStep::Send);
    let error = r#"{"action":"error","types":["polymarket.does_not_exist"],"message":"unauthorized: polymarket.does_not_exist"}"#;
    let rate_limit = r#"{"action":"rate_limit","message":"message rate limit reached"}"#;
    let first = [WsStep::AwaitSubscribe, WsStep::Send(error.into())]
        .into_iter()
        .chain(send(0..third))
        .chain([
            WsStep::Ping,
            WsStep::Send(rate_limit.into()),
            WsStep::Close(4001),
        ])
        .collect();
    let second = std::iter::once(WsStep::AwaitSubscribe)
        .chain(send(third.saturating_sub(2)..2 * third))
        .chain([WsStep::Drop])
        .collect();
    let last = std::iter::once(WsStep::AwaitSubscribe)
        .chain(send(2 * third..trades.len()))
        .collect();
    vec![first, second, last]
}

/// Two connections: bare JSON lines cut off mid-event; `data:` framing with an id, replaying
/// the event before the cut.
fn demo_sse(events: &[String]) -> Vec<Vec<SseStep>> {
    let half = events.len() / 2;
    let mut first: String = events[..half].iter().map(|e| format!("{e}\n")).collect();
    first.push_str(": keep-alive\n");
    if let Some(cut) = events.get(half) {
        first.push_str(&cut[..cut.len() / 2]);
    }
    let second: String = std::iter::once("id: 1\n".to_owned())
        .chain(
            events[half.saturating_sub(1)..]
                .iter()
                .map(|e| format!("data: {e}\n\n")),
        )
        .collect();
    vec![
        vec![SseStep::Write(first), SseStep::Drop],
        vec![SseStep::Write(second)],
    ]
}
