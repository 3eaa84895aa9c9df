//! The Heisenberg WebSocket stream (docs/contract.md, "The senders"): checks the configured filters against
//! `GET /event-types`, connects with the Bearer token at the upgrade, sends every subscription in
//! one `subscribe` frame, and reads frames into the buffer until shutdown, reconnecting on any
//! drop and re-subscribing each time.
//!
//! - Fatal (the process exits with a message naming what to fix) rather than a reconnect loop:
//!   a 401/403 at the upgrade or from `/event-types` once its few long-delayed retries are used
//!   up (`AuthRetries`); a filter on a key the catalog does not list
//!   as filterable, or a type it does not list; a catalog that is not the documented shape; and
//!   a configured type the gateway refuses in an `error` frame and leaves out of `subscribed`.
//! - Close code 4001 ("reconnect to a fresh upstream feed") after a healthy session reconnects
//!   within 0–250 ms; any other drop backs off exponentially with jitter. A session is healthy
//!   once the subscriptions were acknowledged and events flowed (or it lasted a minute); only
//!   that resets the backoff, so a gateway that accepts and at once drops us meets a growing delay.
//! - Other `error` frames and `rate_limit` frames are logged and counted; the connection stays up.
//! - The gateway's pings are answered by the WebSocket library; the bridge also pings every 30 s
//!   (a third of the idle timeout if that is shorter) and reconnects when nothing at all arrived
//!   for the idle timeout (a half-open connection). Waiting for buffer room doesn't count.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hookrelay_ingest::providers::heisenberg::{ControlFrame, HeisenbergMessage, route_frame};
use hookrelay_ingest::stream::StreamSource;
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use serde::Deserialize;
use tokio::time::{Instant, MissedTickBehavior, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use crate::backoff::{Backoff, Ending};
use crate::config::{HeisenbergConfig, Subscription, vars};
use crate::connect::{self, RESPONSE_TIMEOUT, bearer_header};
use crate::stats::bump;
use crate::{AuthRetries, FatalError, Reconnects, SessionEnd, StreamContext, until_shutdown};

const STREAM: StreamSource = StreamSource::Heisenberg;
/// How often the bridge pings the gateway (more often if the idle timeout is short).
const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a subscribed connection must last to count as healthy without delivering events.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// The close code with which the gateway asks clients to reconnect to a fresh feed.
const RECONNECT_NOW: u16 = 4001;
/// The largest frame accepted; an SQS message holds at most 1 MiB.
const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Streams Heisenberg events into the buffer until shutdown or a fatal error.
pub(crate) async fn run(
    mut ctx: StreamContext,
    config: HeisenbergConfig,
) -> Result<(), FatalError> {
    let mut refusals = AuthRetries::new(STREAM);
    loop {
        match check_filters(&mut ctx, &config).await {
            Ok(true) => break,
            Ok(false) => return Ok(()),
            Err(error) => {
                if !refusals.after(&mut ctx, error).await? {
                    return Ok(());
                }
            }
        }
    }
    refusals.accepted();
    let mut reconnects = Reconnects::new(&ctx, STREAM);
    loop {
        let end = match session(&mut ctx, &config).await {
            Ok(end) => end,
            Err(error) => match refusals.after(&mut ctx, error).await? {
                true => continue,
                false => return Ok(()),
            },
        };
        refusals.accepted();
        if !reconnects.after(&mut ctx, end).await {
            return Ok(());
        }
    }
}

/// What one connection has done so far, which decides how its end is treated.
struct Session {
    started: Instant,
    subscribed: bool,
    delivered: bool,
    granted: Vec<String>,
    refusals: Vec<(Vec<String>, String)>,
}

impl Session {
    /// Healthy: the subscriptions were acknowledged and events flowed, or the connection lasted
    /// a minute. Only then does its end reset the backoff (or earn a prompt reconnect on 4001),
    /// so a gateway that accepts and at once drops us is met with a growing delay.
    fn ended(&self, reason: impl Into<String>, close_code: Option<u16>) -> SessionEnd {
        let healthy =
            self.subscribed && (self.delivered || self.started.elapsed() >= HEALTHY_AFTER);
        SessionEnd::dropped(
            reason,
            Ending {
                healthy,
                prompt: close_code == Some(RECONNECT_NOW),
                at_least: Duration::ZERO,
            },
        )
    }
}

/// One connection, from the upgrade to its end.
async fn session(
    ctx: &mut StreamContext,
    config: &HeisenbergConfig,
) -> Result<SessionEnd, FatalError> {
    let mut session = Session {
        started: Instant::now(),
        subscribed: false,
        delivered: false,
        granted: Vec::new(),
        refusals: Vec::new(),
    };
    let mut request = config
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|error| FatalError::Setup(format!("{}: {error}", vars::HEISENBERG_URL)))?;
    request
        .headers_mut()
        .insert(AUTHORIZATION, bearer_header(&config.token.bearer())?);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let connector = Connector::Rustls(ctx.tls.clone());
    let connecting = timeout(
        RESPONSE_TIMEOUT,
        connect_async_tls_with_config(request, Some(ws_config), true, Some(connector)),
    );
    let mut shutdown = ctx.shutdown.clone();
    let mut ws = match until_shutdown(&mut shutdown, connecting).await {
        None => return Ok(SessionEnd::Shutdown),
        Some(Err(_)) => return Ok(session.ended("the upgrade timed out", None)),
        Some(Ok(Err(WsError::Http(response)))) => {
            connect::refused(STREAM, response.status().as_u16(), vars::HEISENBERG_TOKEN)?;
            let reason = format!("the upgrade was answered {}", response.status());
            return Ok(session.ended(reason, None));
        }
        Some(Ok(Err(error))) => return Ok(session.ended(format!("connect failed: {error}"), None)),
        Some(Ok(Ok((ws, _response)))) => ws,
    };
    let subscribe =
        serde_json::json!({"action": "subscribe", "subscriptions": config.subscriptions});
    let sending = timeout(
        RESPONSE_TIMEOUT,
        ws.send(Message::text(subscribe.to_string())),
    );
    if !matches!(sending.await, Ok(Ok(()))) {
        return Ok(session.ended("sending the subscribe frame failed", None));
    }

    let stats = ctx.stats.clone();
    let counters = stats.of(STREAM);
    let mut last_frame = Instant::now();
    // Ping often enough that a healthy but quiet connection never reaches the idle timeout;
    // after a long wait on the buffer, one ping, not a burst of missed ones.
    let ping_every = PING_EVERY.min(ctx.idle_timeout / 3);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            biased;
            () = ctx.shutdown.requested() => {
                let goodbye = CloseFrame { code: CloseCode::Normal, reason: "shutting down".into() };
                let _ = timeout(Duration::from_secs(1), ws.close(Some(goodbye))).await;
                return Ok(SessionEnd::Shutdown);
            }
            _ = ping.tick() => {
                let pinging = timeout(RESPONSE_TIMEOUT, ws.send(Message::Ping(Default::default())));
                if !matches!(pinging.await, Ok(Ok(()))) {
                    return Ok(session.ended("ping failed", None));
                }
                continue;
            }
            next = timeout_at(last_frame + ctx.idle_timeout, ws.next()) => match next {
                Err(_) => return Ok(session.ended(format!("nothing received for {:?}", ctx.idle_timeout), None)),
                Ok(None) => return Ok(session.ended("the connection ended without a close frame", None)),
                Ok(Some(Err(error))) => return Ok(session.ended(format!("read failed: {error}"), None)),
                Ok(Some(Ok(message))) => message,
            },
        };
        last_frame = Instant::now();
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                let reason = format!("the gateway closed the connection ({reason})");
                return Ok(session.ended(reason, code));
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
        match route_frame(text.as_str().to_owned()) {
            Ok(HeisenbergMessage::Event(event)) => {
                bump(&counters.events);
                if !ctx.deliver(event).await {
                    return Ok(SessionEnd::Shutdown);
                }
                session.delivered = true;
                // Time spent waiting for buffer room (backpressure) is not silence.
                last_frame = Instant::now();
            }
            Ok(HeisenbergMessage::Control(control)) => {
                match &control {
                    ControlFrame::Subscribed { types, .. } => {
                        session.subscribed = true;
                        session.granted.clone_from(types);
                    }
                    ControlFrame::Error { types, message } => {
                        session.refusals.push((types.clone(), message.clone()));
                    }
                    _ => {}
                }
                on_control(ctx, control);
                if session.subscribed
                    && let Some(problem) = refused_subscriptions(
                        &config.subscriptions,
                        &session.granted,
                        &session.refusals,
                    )
                {
                    return Err(FatalError::Subscriptions(problem));
                }
            }
            Err(error) => {
                bump(&counters.malformed);
                tracing::warn!(stream = STREAM.provider(), %error, "frame skipped");
            }
        }
    }
}

/// A configured event type the gateway refused in an `error` frame and did not grant in its
/// `subscribed` acknowledgement: nothing of that type would ever arrive, so the bridge stops
/// with the gateway's message instead of running silently empty.
fn refused_subscriptions(
    configured: &[Subscription],
    granted: &[String],
    refusals: &[(Vec<String>, String)],
) -> Option<String> {
    configured
        .iter()
        .map(|s| &s.event_type)
        .filter(|event_type| !granted.contains(event_type))
        .find_map(|event_type| {
            refusals
                .iter()
                .find(|(types, _)| types.contains(event_type))
                .map(|(_, message)| format!("the gateway refused `{event_type}`: {message}"))
        })
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
        let mut shutdown = ctx.shutdown.clone();
        let Some(fetched) = until_shutdown(&mut shutdown, fetch_catalog(ctx, config, &url)).await
        else {
            return Ok(false);
        };
        let catalog = match fetched? {
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

/// `Ok(Ok(catalog))`, `Ok(Err(transient reason))`, or a fatal refusal or malformed catalog.
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
    // A 2xx whose body is not the catalog won't get better by retrying.
    serde_json::from_slice(&body).map(Ok).map_err(|error| {
        FatalError::Subscriptions(format!(
            "{url} did not answer the documented event-type catalog ({error}): check {}",
            vars::HEISENBERG_API_URL
        ))
    })
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

    #[test]
    fn a_type_refused_and_not_granted_is_fatal() {
        let configured =
            subscriptions(r#"[{"type":"polymarket.trade"},{"type":"polymarket.new"}]"#);
        let refusal = (
            vec!["polymarket.new".to_owned()],
            "unauthorized: polymarket.new".to_owned(),
        );
        let granted_trade = vec!["polymarket.trade".to_owned()];
        let problem =
            refused_subscriptions(&configured, &granted_trade, std::slice::from_ref(&refusal));
        assert_eq!(
            problem.as_deref(),
            Some("the gateway refused `polymarket.new`: unauthorized: polymarket.new")
        );
        // Granted despite an error frame naming it (e.g. one bad filter among several): fine.
        let both = vec!["polymarket.trade".to_owned(), "polymarket.new".to_owned()];
        assert_eq!(refused_subscriptions(&configured, &both, &[refusal]), None);
        // An error about a type nobody configured: fine.
        let other = (
            vec!["polymarket.does_not_exist".to_owned()],
            "unauthorized".to_owned(),
        );
        assert_eq!(
            refused_subscriptions(&configured[..1], &granted_trade, &[other]),
            None
        );
    }
}
