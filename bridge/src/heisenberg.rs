//! The Heisenberg WebSocket stream (seed 003): checks the configured filters against
//! `GET /event-types`, connects with the Bearer token at the upgrade, sends every subscription in
//! one `subscribe` frame, and reads frames into the buffer until shutdown, reconnecting on any
//! drop and re-subscribing each time.
//!
//! - A 401/403 at the upgrade or from `/event-types` is fatal (the process exits with a message
//!   naming the token variable) rather than a reconnect loop; so is a filter on a key the catalog
//!   does not list as filterable, or a type it does not grant.
//! - Close code 4001 ("reconnect to a fresh upstream feed") after a healthy session reconnects at
//!   once (within a 0–¼ s jitter); any other drop backs off exponentially with jitter. A session
//!   is healthy once the gateway acknowledged the subscriptions, and that resets the backoff.
//! - `error` and `rate_limit` frames are logged and counted; the connection stays up.
//! - The gateway's pings are answered by the WebSocket library; the bridge also pings every 30 s
//!   and reconnects when nothing at all arrived for the idle timeout (a half-open connection).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hookrelay::providers::{ControlFrame, HeisenbergMessage, StreamSource, parse_heisenberg_frame};
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use serde::Deserialize;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use crate::backoff::Backoff;
use crate::config::{HeisenbergConfig, Subscription, vars};
use crate::connect::{self, RESPONSE_TIMEOUT, bearer_header};
use crate::stats::bump;
use crate::{FatalError, SessionEnd, StreamContext};

const STREAM: StreamSource = StreamSource::Heisenberg;
/// How often the bridge pings the gateway.
const PING_EVERY: Duration = Duration::from_secs(30);
/// The close code with which the gateway asks clients to reconnect to a fresh feed.
const RECONNECT_NOW: u16 = 4001;
/// The largest frame accepted; an SQS message holds at most 1 MiB.
const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Streams Heisenberg events into the buffer until shutdown or a fatal error.
pub(crate) async fn run(
    mut ctx: StreamContext,
    config: HeisenbergConfig,
) -> Result<(), FatalError> {
    if !check_filters(&mut ctx, &config).await? {
        return Ok(());
    }
    let mut backoff = Backoff::new(ctx.backoff);
    loop {
        let end = session(&mut ctx, &config).await?;
        let SessionEnd::Dropped {
            reason,
            healthy,
            close_code,
        } = end
        else {
            return Ok(());
        };
        bump(&ctx.stats.of(STREAM).reconnects);
        if healthy {
            backoff.reset();
        }
        let delay = if healthy && close_code == Some(RECONNECT_NOW) {
            ctx.backoff.initial.mul_f64(fastrand::f64() / 2.0)
        } else {
            backoff.next_jittered()
        };
        tracing::warn!(
            stream = STREAM.provider(),
            %reason,
            close_code,
            delay_ms = delay.as_millis() as u64,
            "connection lost; reconnecting and re-subscribing"
        );
        if !ctx.pause(delay).await {
            return Ok(());
        }
    }
}

/// One connection, from the upgrade to its end.
async fn session(
    ctx: &mut StreamContext,
    config: &HeisenbergConfig,
) -> Result<SessionEnd, FatalError> {
    let dropped = |reason: String| SessionEnd::Dropped {
        reason,
        healthy: false,
        close_code: None,
    };
    let mut request = match config.ws_url.as_str().into_client_request() {
        Ok(request) => request,
        Err(error) => {
            return Err(FatalError::Setup(format!(
                "{}: {error}",
                vars::HEISENBERG_URL
            )));
        }
    };
    request
        .headers_mut()
        .insert(AUTHORIZATION, bearer_header(&config.token.bearer())?);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let connector = Connector::Rustls(ctx.tls.clone());
    let connecting = connect_async_tls_with_config(request, Some(ws_config), true, Some(connector));
    let mut ws = match timeout(RESPONSE_TIMEOUT, connecting).await {
        Err(_) => return Ok(dropped("the upgrade timed out".into())),
        Ok(Err(WsError::Http(response))) => {
            connect::refused(STREAM, response.status().as_u16(), vars::HEISENBERG_TOKEN)?;
            return Ok(dropped(format!(
                "the upgrade was answered {}",
                response.status()
            )));
        }
        Ok(Err(error)) => return Ok(dropped(format!("connect failed: {error}"))),
        Ok(Ok((ws, _response))) => ws,
    };
    let subscribe =
        serde_json::json!({"action": "subscribe", "subscriptions": config.subscriptions});
    if let Err(error) = ws.send(Message::text(subscribe.to_string())).await {
        return Ok(dropped(format!(
            "sending the subscribe frame failed: {error}"
        )));
    }

    let stats = ctx.stats.clone();
    let counters = stats.of(STREAM);
    let mut healthy = false;
    let mut last_frame = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let end = |reason: String, healthy: bool, close_code: Option<u16>| SessionEnd::Dropped {
        reason,
        healthy,
        close_code,
    };
    loop {
        let message = tokio::select! {
            biased;
            () = ctx.shutdown.requested() => {
                let goodbye = CloseFrame { code: CloseCode::Normal, reason: "shutting down".into() };
                let _ = timeout(Duration::from_secs(1), ws.close(Some(goodbye))).await;
                return Ok(SessionEnd::Shutdown);
            }
            _ = ping.tick() => {
                if let Err(error) = ws.send(Message::Ping(Default::default())).await {
                    return Ok(end(format!("ping failed: {error}"), healthy, None));
                }
                continue;
            }
            next = timeout_at(last_frame + ctx.idle_timeout, ws.next()) => match next {
                Err(_) => return Ok(end(format!("nothing received for {:?}", ctx.idle_timeout), healthy, None)),
                Ok(None) => return Ok(end("the connection ended without a close frame".into(), healthy, None)),
                Ok(Some(Err(error))) => return Ok(end(format!("read failed: {error}"), healthy, None)),
                Ok(Some(Ok(message))) => message,
            },
        };
        last_frame = Instant::now();
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Ok(end(
                    format!("the gateway closed the connection ({reason})"),
                    healthy,
                    code,
                ));
            }
            Message::Binary(_) => {
                bump(&counters.malformed);
                tracing::warn!(
                    stream = STREAM.provider(),
                    "binary frame ignored (the gateway sends JSON text)"
                );
                continue;
            }
            // Pings are answered by the library; pongs and raw frames need nothing.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        match parse_heisenberg_frame(text.as_str().to_owned()) {
            Ok(HeisenbergMessage::Event(event)) => {
                bump(&counters.events);
                if !ctx.deliver(event).await {
                    return Ok(SessionEnd::Shutdown);
                }
                // Time spent waiting for buffer room (backpressure) is not silence.
                last_frame = Instant::now();
            }
            Ok(HeisenbergMessage::Control(control)) => {
                if matches!(control, ControlFrame::Subscribed { .. }) {
                    healthy = true;
                }
                on_control(ctx, control);
            }
            Err(error) => {
                bump(&counters.malformed);
                tracing::warn!(stream = STREAM.provider(), %error, "frame skipped");
            }
        }
    }
}

fn on_control(ctx: &StreamContext, control: ControlFrame) {
    let stats = ctx.stats.clone();
    let counters = stats.of(STREAM);
    match control {
        ControlFrame::Subscribed {
            types,
            subscription_ids,
        } => {
            tracing::info!(
                stream = STREAM.provider(),
                ?types,
                ?subscription_ids,
                "subscribed"
            );
        }
        ControlFrame::Unsubscribed { subscription_ids } => {
            tracing::info!(
                stream = STREAM.provider(),
                ?subscription_ids,
                "unsubscribed"
            );
        }
        ControlFrame::Error { types, message } => {
            bump(&counters.provider_errors);
            tracing::warn!(stream = STREAM.provider(), ?types, %message, "the gateway reported an error");
        }
        ControlFrame::RateLimit { message } => {
            bump(&counters.rate_limited);
            tracing::warn!(stream = STREAM.provider(), %message, "the gateway's rate limit was reached");
        }
        ControlFrame::Other { action } => {
            tracing::info!(stream = STREAM.provider(), %action, "control message");
        }
    }
}

/// An entry of `GET /event-types`.
#[derive(Debug, Deserialize)]
pub struct EventTypeEntry {
    /// The type's name.
    pub name: String,
    /// Its field schema.
    pub schema: EventTypeSchema,
}

/// An event type's field schema.
#[derive(Debug, Deserialize)]
pub struct EventTypeSchema {
    /// Its fields.
    pub fields: Vec<EventTypeField>,
}

/// One field of an event type.
#[derive(Debug, Deserialize)]
pub struct EventTypeField {
    /// The field's name.
    pub name: String,
    /// Whether subscriptions may filter on it.
    #[serde(default)]
    pub filterable: bool,
}

/// What is wrong with `subscriptions` according to the gateway's `catalog`, one sentence per
/// problem; empty when every type is granted and every filter key is filterable.
pub fn filter_problems(catalog: &[EventTypeEntry], subscriptions: &[Subscription]) -> Vec<String> {
    let mut problems = Vec::new();
    for subscription in subscriptions {
        let Some(entry) = catalog.iter().find(|e| e.name == subscription.event_type) else {
            problems.push(format!(
                "event type `{}` is not in the catalog this token may stream",
                subscription.event_type
            ));
            continue;
        };
        let filterable = |key: &str| {
            entry
                .schema
                .fields
                .iter()
                .any(|f| f.name == key && f.filterable)
        };
        let bad: Vec<&str> = subscription
            .filters
            .keys()
            .map(String::as_str)
            .filter(|key| !filterable(key))
            .collect();
        if !bad.is_empty() {
            let allowed: Vec<&str> = entry
                .schema
                .fields
                .iter()
                .filter(|f| f.filterable)
                .map(|f| f.name.as_str())
                .collect();
            problems.push(format!(
                "non-filterable keys for {}: {} (filterable: {})",
                entry.name,
                bad.join(", "),
                allowed.join(", ")
            ));
        }
    }
    problems
}

/// Fetches the catalog and checks the subscriptions against it. Transient failures are retried
/// with backoff; returns `Ok(false)` if shutdown was requested meanwhile.
async fn check_filters(
    ctx: &mut StreamContext,
    config: &HeisenbergConfig,
) -> Result<bool, FatalError> {
    let url = format!("{}/event-types", config.api_url);
    let mut backoff = Backoff::new(ctx.backoff);
    loop {
        let catalog = match fetch_catalog(ctx, config, &url).await? {
            Ok(catalog) => catalog,
            Err(reason) => {
                let delay = backoff.next_jittered();
                tracing::warn!(%url, %reason, delay_ms = delay.as_millis() as u64, "event-type catalog unavailable; retrying");
                if !ctx.pause(delay).await {
                    return Ok(false);
                }
                continue;
            }
        };
        let problems = filter_problems(&catalog, &config.subscriptions);
        if problems.is_empty() {
            tracing::info!(
                stream = STREAM.provider(),
                subscriptions = config.subscriptions.len(),
                "subscriptions match the event-type catalog"
            );
            return Ok(true);
        }
        return Err(FatalError::Subscriptions(problems.join("; ")));
    }
}

/// `Ok(Ok(catalog))`, `Ok(Err(transient reason))`, or a fatal refusal.
async fn fetch_catalog(
    ctx: &StreamContext,
    config: &HeisenbergConfig,
    url: &str,
) -> Result<Result<Vec<EventTypeEntry>, String>, FatalError> {
    let request = hyper::Request::get(url)
        .header(AUTHORIZATION, bearer_header(&config.token.bearer())?)
        .body(Empty::new())
        .map_err(|error| FatalError::Setup(format!("{}: {error}", vars::HEISENBERG_API_URL)))?;
    let response = match connect::send(&ctx.http, request, STREAM, vars::HEISENBERG_TOKEN).await? {
        Ok(response) => response,
        Err(reason) => return Ok(Err(reason)),
    };
    let body = match timeout(RESPONSE_TIMEOUT, response.into_body().collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) => return Ok(Err(error.to_string())),
        Err(_) => return Ok(Err("the body timed out".into())),
    };
    Ok(serde_json::from_slice(&body)
        .map_err(|error| format!("not the documented catalog: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"[{"name":"polymarket.trade","label":"polymarket_trades_realtime","description":"","schema":{"fields":[{"name":"slug","type":"string","filterable":true},{"name":"proxy_wallet","type":"string","filterable":true},{"name":"outcome","type":"string","filterable":true},{"name":"price","type":"float","filterable":false}]}}]"#;

    fn subscriptions(json: &str) -> Vec<Subscription> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_seed_catalog_allows_its_filterable_keys_only() {
        let catalog: Vec<EventTypeEntry> = serde_json::from_str(CATALOG).unwrap();
        let ok = subscriptions(
            r#"[{"type":"polymarket.trade","filters":{"slug":"s","outcome":"Up"}},{"type":"polymarket.trade"}]"#,
        );
        assert!(filter_problems(&catalog, &ok).is_empty());
        let bad = subscriptions(
            r#"[{"type":"polymarket.trade","filters":{"price":0.5,"not_a_real_field":1}}]"#,
        );
        let problems = filter_problems(&catalog, &bad);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("non-filterable keys for polymarket.trade"),
            "{problems:?}"
        );
        assert!(problems[0].contains("not_a_real_field") && problems[0].contains("price"));
        assert!(problems[0].contains("filterable: slug, proxy_wallet, outcome"));
        let unknown = subscriptions(r#"[{"type":"polymarket.does_not_exist"}]"#);
        assert!(filter_problems(&catalog, &unknown)[0].contains("polymarket.does_not_exist"));
    }
}
