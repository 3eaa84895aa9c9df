//! The event catalog behind `hookrelay-dev trigger`: one realistic, signed delivery of any event
//! type of any webhook sender, built from a type name, a market, `--field` overrides, an injected
//! time and a nonce. Pure: no I/O, no clock, no randomness; the caller sends what it builds.
//!
//! What the bodies are:
//! - **engine**: the documented delivery object (`id`, `sequence`, `eventType`, `marketId`,
//!   `operatorId`, `payload`, `timestamp` in RFC 3339 with milliseconds) and headers
//!   `x-webhook-signature`, `x-webhook-event`, `x-webhook-id`. Only `ORDER_MATCHED`'s payload is
//!   documented (it is used as printed, and decodes into the library's `OrderMatched`); the other
//!   nine payloads are **hookrelay's assumption**, written in the same style: camelCase, the
//!   payload repeats `marketId` and `operatorId`, ids look like UUIDs, prices are probabilities
//!   (0..1), `timestamp` is Unix milliseconds. The operator is [`OPERATOR_ID`]; the delivery
//!   `id` is UUID-shaped and derived from the nonce; the dedupe key is
//!   `engine:{operatorId}:{sequence}`, so the caller's `sequence` decides what is a new event.
//! - **rekko**: the documented flat objects (`type`, `market_id`, `platform`, the type's key
//!   fields, `timestamp` in RFC 3339 seconds), which decode into the library's `PriceShift`,
//!   `WhaleAlert` and `AnalysisComplete`. Rekko sends no id, so the receiver's dedupe key is a
//!   digest of the body; to keep two triggers in the same second apart, every body carries an
//!   `event_id` (`evt_lab_{nonce as 16 hex digits}`), a field Rekko does not document and every
//!   consumer ignores.
//! - **standard**: `{"type", "timestamp", "data"}` with `webhook-id` `msg_lab_{nonce}` (the dedupe
//!   key is `standard:{webhook-id}`) and `webhook-timestamp` in Unix seconds. Any non-empty type
//!   is accepted and sent as given; [`event_types`] lists a few with their own `data`, any other
//!   type gets `{"market_id": ..}`.
//!
//! `--field k=v` ([`parse_field`]) sets key `k` in the event's own object: the engine's
//! `payload`, Rekko's whole object, Standard Webhooks' `data`. `v` is JSON when it parses as JSON
//! (`50`, `true`, `null`, `{"a":1}`, `"quoted"`), else the text itself; `a.b=v` sets a nested
//! key, creating objects on the way. Fields apply in order after the defaults, so the last one
//! wins. The fields the receiver routes by are refused with a pointer to the flag that sets them
//! (`marketId`/`market_id`: `--market`; Rekko's `type`: the event type; the engine's payload
//! `operatorId`, which must agree with the delivery's). Top-level keys keep the documents'
//! order; keys inside nested objects are in `serde_json`'s order.

use std::fmt;

use hookrelay::senders::{self, Sender};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

/// The engine operator every triggered engine delivery names.
pub const OPERATOR_ID: &str = "op-lab";

/// The engine's event types, as its document lists them.
const ENGINE_TYPES: &[&str] = &[
    "MARKET_CREATED",
    "MARKET_STATUS_CHANGED",
    "MARKET_RESOLVED",
    "ORDER_BOOK_UPDATE",
    "PRICE_UPDATED",
    "ORDER_PLACED",
    "ORDER_MATCHED",
    "ORDER_CANCELLED",
    "POSITION_UPDATED",
    "SETTLEMENT_COMPLETED",
];

/// Rekko's event types, as its document lists them.
const REKKO_TYPES: &[&str] = &["price_shift", "whale_alert", "analysis_complete"];

/// Suggested Standard Webhooks types (any non-empty type is accepted).
const STANDARD_TYPES: &[&str] = &["market.price_changed", "market.resolved", "order.filled"];

/// One delivery to build: what `hookrelay-dev trigger` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Trigger<'a> {
    /// Who it comes from.
    pub sender: Sender,
    /// The event type as typed (engine and Rekko types match case-insensitively).
    pub event_type: &'a str,
    /// The market (`--market`); [`default_market`] when `None`.
    pub market: Option<&'a str>,
    /// The engine's `sequence` (its dedupe identity with the operator); ignored by the others.
    pub sequence: u64,
    /// `--field k=v` pairs, in order, as [`parse_field`] splits them.
    pub fields: &'a [(String, String)],
    /// When the event happens and is signed.
    pub now: OffsetDateTime,
    /// Makes the delivery unique: the engine's delivery `id`, Rekko's `event_id`, the Standard
    /// Webhooks `webhook-id`.
    pub nonce: u64,
}

/// A signed delivery, ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltDelivery {
    /// The receiver's route for the sender (`/engine`, `/rekko`, `/standard`).
    pub path: &'static str,
    /// The headers, content type and signature included.
    pub headers: Vec<(&'static str, String)>,
    /// The body, exactly as signed.
    pub body: String,
    /// The envelope id (dedupe key) the receiver will give it.
    pub envelope_id: String,
}

/// Why a delivery could not be built. The messages say what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerError {
    /// The sender is not one of the library's webhook senders.
    UnknownProvider(&'static str),
    /// The sender documents no such event type (or, for Standard Webhooks, the type is empty).
    UnknownType {
        /// The sender's name.
        provider: &'static str,
        /// The type as given.
        event_type: String,
        /// The types it knows (suggestions for Standard Webhooks).
        known: &'static [&'static str],
    },
    /// A `--field` that is malformed or sets a routing field.
    BadField(String),
    /// `--market` is empty.
    EmptyMarket,
    /// The secret is not in the sender's configuration form.
    BadSecret {
        /// The sender's name.
        provider: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The time cannot be written as the sender writes timestamps.
    BadTime(String),
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownProvider(name) => write!(
                f,
                "no webhook sender is named {name:?}; use one of: {}",
                senders::SENDERS.map(|s| s.name).join(", ")
            ),
            Self::UnknownType {
                provider,
                event_type,
                known,
            } if *provider == senders::STANDARD.name => write!(
                f,
                "{provider} event type {event_type:?} is empty; any non-empty type is accepted, \
                 e.g. {}",
                known.join(", ")
            ),
            Self::UnknownType {
                provider,
                event_type,
                known,
            } => write!(
                f,
                "{provider} has no event type {event_type:?}; use one of: {}",
                known.join(", ")
            ),
            Self::BadField(problem) => write!(f, "{problem}"),
            Self::EmptyMarket => write!(f, "--market is empty; leave it out for the default"),
            Self::BadSecret { provider, problem } => write!(
                f,
                "the {provider} secret {problem} (give it as the receiver's configuration holds it)"
            ),
            Self::BadTime(problem) => write!(f, "the time cannot be written: {problem}"),
        }
    }
}

impl std::error::Error for TriggerError {}

/// The event types of `sender`: the engine's ten and Rekko's three as documented; for Standard
/// Webhooks, suggestions with their own `data` (any non-empty type is accepted).
pub fn event_types(sender: Sender) -> &'static [&'static str] {
    match sender.name {
        "engine" => ENGINE_TYPES,
        "rekko" => REKKO_TYPES,
        "standard" => STANDARD_TYPES,
        _ => &[],
    }
}

/// The market a trigger names when `--market` is not given.
pub fn default_market(sender: Sender) -> &'static str {
    if sender == senders::ENGINE {
        "mkt-7f3a-fed-mar"
    } else {
        "KXFED-26MAR19"
    }
}

/// Splits one `--field` argument, `k=v`, at its first `=`.
pub fn parse_field(text: &str) -> Result<(String, String), TriggerError> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        TriggerError::BadField(format!(
            "--field {text:?} has no '='; write it as key=value (a.b=value for a nested key)"
        ))
    })?;
    check_path(key)?;
    Ok((key.to_owned(), value.to_owned()))
}

/// Builds and signs the delivery `trigger` asks for with `secret` (in its configuration form:
/// the text for the engine and Rekko, `whsec_…` for Standard Webhooks).
pub fn build(trigger: &Trigger, secret: &str) -> Result<BuiltDelivery, TriggerError> {
    let sender = trigger.sender;
    let path = match sender.name {
        "engine" => "/engine",
        "rekko" => "/rekko",
        "standard" => "/standard",
        other => return Err(TriggerError::UnknownProvider(other)),
    };
    if senders::by_name(sender.name) != Some(sender) {
        return Err(TriggerError::UnknownProvider(sender.name));
    }
    // `sender_sim::sign` expects a valid secret: check it here so a typo is an error, not a panic.
    sender
        .scheme
        .key_from_text(secret)
        .map_err(|problem| TriggerError::BadSecret {
            provider: sender.name,
            problem,
        })?;
    let market = match trigger.market {
        Some("") => return Err(TriggerError::EmptyMarket),
        Some(market) => market,
        None => default_market(sender),
    };
    let now = trigger.now.to_offset(time::UtcOffset::UTC);
    let event_type = canonical_type(sender, trigger.event_type)?;
    let (body, id_and_timestamp, envelope_id, extra_headers) = match path {
        "/engine" => {
            let mut payload = engine_payload(event_type, market, trigger.nonce, now);
            apply_fields(&mut payload, trigger.fields, &["marketId", "operatorId"])?;
            let id = uuid_like(trigger.nonce, 0xde11_7e27);
            let body = object(&[
                ("id", json_text(&id)),
                ("sequence", trigger.sequence.to_string()),
                ("eventType", json_text(event_type)),
                ("marketId", json_text(market)),
                ("operatorId", json_text(OPERATOR_ID)),
                ("payload", payload.to_json()),
                ("timestamp", json_text(&rfc3339_millis(now)?)),
            ]);
            let headers = vec![
                ("x-webhook-event", event_type.to_owned()),
                ("x-webhook-id", id),
            ];
            let key = format!("engine:{OPERATOR_ID}:{}", trigger.sequence);
            (body, None, key, headers)
        }
        "/rekko" => {
            let mut event = rekko_event(event_type, market, trigger.nonce, now)?;
            apply_fields(&mut event, trigger.fields, &["type", "market_id"])?;
            let body = event.to_json();
            let key = hookrelay_ingest::fields::content_key(sender.name, &body);
            (body, None, key.as_str().to_owned(), Vec::new())
        }
        _ => {
            let mut data = standard_data(event_type, market, trigger.nonce);
            apply_fields(&mut data, trigger.fields, &["market_id"])?;
            let body = object(&[
                ("type", json_text(event_type)),
                ("timestamp", json_text(&rfc3339_seconds(now)?)),
                ("data", data.to_json()),
            ]);
            let id = format!("msg_lab_{}", trigger.nonce);
            let key = format!("standard:{id}");
            (
                body,
                Some((id, now.unix_timestamp().to_string())),
                key,
                Vec::new(),
            )
        }
    };
    let mut headers = vec![("content-type", "application/json".to_owned())];
    headers.extend(crate::sender_sim::sign(
        sender,
        secret,
        id_and_timestamp
            .as_ref()
            .map(|(id, ts)| (id.as_str(), ts.as_str())),
        body.as_bytes(),
    ));
    headers.extend(extra_headers);
    Ok(BuiltDelivery {
        path,
        headers,
        body,
        envelope_id,
    })
}

/// The type as the sender writes it: the engine's uppercase, Rekko's lowercase, Standard
/// Webhooks' as given.
fn canonical_type(sender: Sender, given: &str) -> Result<&str, TriggerError> {
    let known = event_types(sender);
    let unknown = || TriggerError::UnknownType {
        provider: sender.name,
        event_type: given.to_owned(),
        known,
    };
    if sender == senders::STANDARD {
        return if given.trim().is_empty() {
            Err(unknown())
        } else {
            Ok(given)
        };
    }
    known
        .iter()
        .copied()
        .find(|name| name.eq_ignore_ascii_case(given.trim()))
        .ok_or_else(unknown)
}

/// A JSON object whose top-level keys keep their insertion order, whatever `serde_json`'s
/// features (its `Map` sorts keys unless `preserve_order` is on).
struct Ordered(Vec<(String, Value)>);

impl Ordered {
    fn new(pairs: Vec<(&str, Value)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn to_json(&self) -> String {
        let pairs: Vec<(&str, String)> = self
            .0
            .iter()
            .map(|(key, value)| (key.as_str(), value.to_string()))
            .collect();
        object(&pairs)
    }

    /// Sets the dotted `path` to `value`: a top-level key in place (or appended), a nested one
    /// in objects created as needed.
    fn set(&mut self, path: &str, value: Value) -> Result<(), TriggerError> {
        let (first, rest) = match path.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (path, None),
        };
        let at = match self.0.iter().position(|(key, _)| key == first) {
            Some(at) => at,
            None => {
                self.0.push((first.to_owned(), Value::Null));
                self.0.len() - 1
            }
        };
        let slot = &mut self.0[at].1;
        let Some(rest) = rest else {
            *slot = value;
            return Ok(());
        };
        if slot.is_null() {
            *slot = Value::Object(serde_json::Map::new());
        }
        let mut node = slot;
        let mut walked = first.to_owned();
        for segment in rest.split('.') {
            let Value::Object(map) = node else {
                return Err(TriggerError::BadField(format!(
                    "--field {path}: {walked} is {}, not an object; set {walked} itself instead",
                    kind(node)
                )));
            };
            node = map
                .entry(segment)
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            walked = format!("{walked}.{segment}");
        }
        *node = value;
        Ok(())
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies `--field` pairs to `target`, refusing the `reserved` top-level keys.
fn apply_fields(
    target: &mut Ordered,
    fields: &[(String, String)],
    reserved: &[&str],
) -> Result<(), TriggerError> {
    for (key, text) in fields {
        check_path(key)?;
        let top = key.split('.').next().unwrap_or_default();
        if let Some(&field) = reserved.iter().find(|&&r| r == top) {
            return Err(TriggerError::BadField(format!(
                "--field {key}: {}",
                reserved_reason(field)
            )));
        }
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
        target.set(key, value)?;
    }
    Ok(())
}

fn reserved_reason(field: &str) -> &'static str {
    match field {
        "marketId" | "market_id" => {
            "the market is set with --market (for the engine it sets the delivery's marketId and \
             the payload's together)"
        }
        "operatorId" => {
            "the operator is the delivery's (op-lab), part of its dedupe key; the payload's must \
             agree"
        }
        _ => "the type is the event type argument",
    }
}

fn check_path(key: &str) -> Result<(), TriggerError> {
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(TriggerError::BadField(format!(
            "--field key {key:?} is empty or has an empty part; write key=value or a.b=value"
        )));
    }
    Ok(())
}

/// `{"k":v,...}` from keys and values that are already JSON text, in the order given.
fn object(pairs: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_text(key));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

fn json_text(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn rfc3339_millis(at: OffsetDateTime) -> Result<String, TriggerError> {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .map_err(|e| TriggerError::BadTime(e.to_string()))
}

fn rfc3339_seconds(at: OffsetDateTime) -> Result<String, TriggerError> {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .map_err(|e| TriggerError::BadTime(e.to_string()))
}

fn unix_millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// SplitMix64's output function: a bijection that spreads consecutive nonces apart.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID derived from `nonce` and `salt` (one salt per kind of id).
fn uuid_like(nonce: u64, salt: u64) -> String {
    let hi = mix(nonce ^ salt);
    let lo = mix(hi);
    let bits = ((u128::from(hi) << 64) | u128::from(lo)) & !(0xf000u128 << 64) & !(0xc << 60);
    let bits = bits | (0x4000u128 << 64) | (0x8 << 60);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The engine payloads: `ORDER_MATCHED` as documented, the others hookrelay's assumption.
fn engine_payload(event_type: &str, market: &str, nonce: u64, now: OffsetDateTime) -> Ordered {
    use serde_json::json;
    let yes = format!("{market}-yes");
    let no = format!("{market}-no");
    let order = uuid_like(nonce, 0x0bde_5001);
    let user = "user-lab-0001";
    let head: Vec<(&str, Value)> = match event_type {
        "MARKET_CREATED" => vec![
            ("marketId", json!(market)),
            ("operatorId", json!(OPERATOR_ID)),
            (
                "title",
                json!("Will the Fed cut rates at its March 2026 meeting?"),
            ),
            ("category", json!("economics")),
            ("status", json!("OPEN")),
            (
                "outcomes",
                json!([
                    {"outcomeId": yes, "name": "Yes", "price": 0.5},
                    {"outcomeId": no, "name": "No", "price": 0.5},
                ]),
            ),
            ("closesAt", json!(unix_millis(now) + 30 * 86_400_000)),
        ],
        "MARKET_STATUS_CHANGED" => vec![
            ("marketId", json!(market)),
            ("operatorId", json!(OPERATOR_ID)),
            ("previousStatus", json!("OPEN")),
            ("status", json!("SUSPENDED")),
            ("reason", json!("Trading paused pending the FOMC statement")),
        ],
        "MARKET_RESOLVED" => vec![
            ("marketId", json!(market)),
            ("operatorId", json!(OPERATOR_ID)),
            ("winningOutcomeId", json!(yes)),
            ("winningOutcome", json!("Yes")),
            ("status", json!("RESOLVED")),
        ],
        "ORDER_BOOK_UPDATE" => vec![
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            (
                "bids",
                json!([{"price": 0.64, "shares": 120}, {"price": 0.63, "shares": 300}]),
            ),
            (
                "asks",
                json!([{"price": 0.66, "shares": 80}, {"price": 0.67, "shares": 250}]),
            ),
        ],
        "PRICE_UPDATED" => vec![
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            ("previousPrice", json!(0.62)),
            ("price", json!(0.65)),
        ],
        "ORDER_PLACED" => vec![
            ("orderId", json!(order)),
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            ("side", json!("BUY")),
            ("price", json!(0.65)),
            ("shares", json!(50)),
            ("filledShares", json!(0)),
            ("remainingShares", json!(50)),
            ("status", json!("OPEN")),
        ],
        "ORDER_CANCELLED" => vec![
            ("orderId", json!(order)),
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            ("side", json!("BUY")),
            ("price", json!(0.65)),
            ("shares", json!(50)),
            ("filledShares", json!(20)),
            ("remainingShares", json!(0)),
            ("cancelledShares", json!(30)),
            ("status", json!("CANCELLED")),
        ],
        "POSITION_UPDATED" => vec![
            ("positionId", json!(uuid_like(nonce, 0x0005_1710))),
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            ("userId", json!(user)),
            ("shares", json!(50)),
            ("averagePrice", json!(0.65)),
            ("realizedPnl", json!(0)),
        ],
        "SETTLEMENT_COMPLETED" => vec![
            ("settlementId", json!(uuid_like(nonce, 0x5e77_1e00))),
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            ("userId", json!(user)),
            ("shares", json!(50)),
            ("payout", json!(50.0)),
            ("status", json!("COMPLETED")),
        ],
        // ORDER_MATCHED, as the engine's document prints it.
        _ => vec![
            ("orderId", json!(order)),
            ("marketId", json!(market)),
            ("outcomeId", json!(yes)),
            ("operatorId", json!(OPERATOR_ID)),
            ("tradeId", json!(uuid_like(nonce, 0x07ade))),
            ("side", json!("BUY")),
            ("price", json!(0.65)),
            ("shares", json!(50)),
            ("filledShares", json!(50)),
            ("remainingShares", json!(0)),
            ("status", json!("FILLED")),
        ],
    };
    let mut payload = Ordered::new(head);
    payload
        .0
        .push(("timestamp".into(), json!(unix_millis(now))));
    payload
}

/// Rekko's documented objects, with `event_id` added for uniqueness.
fn rekko_event(
    event_type: &str,
    market: &str,
    nonce: u64,
    now: OffsetDateTime,
) -> Result<Ordered, TriggerError> {
    use serde_json::json;
    let mut pairs = vec![("type", json!(event_type))];
    match event_type {
        "price_shift" => pairs.extend([
            ("market_id", json!(market)),
            ("platform", json!("kalshi")),
            ("old_yes", json!(0.62)),
            ("new_yes", json!(0.68)),
            ("change_pct", json!(9.7)),
        ]),
        "whale_alert" => pairs.extend([
            ("market_id", json!(market)),
            ("platform", json!("kalshi")),
            ("side", json!("yes")),
            ("flow", json!(250_000)),
            ("price", json!(0.66)),
        ]),
        // analysis_complete
        _ => pairs.extend([
            ("analysis_id", json!(format!("ana_{:016x}", mix(nonce)))),
            ("market_id", json!(market)),
            ("platform", json!("kalshi")),
        ]),
    }
    pairs.push(("event_id", json!(format!("evt_lab_{nonce:016x}"))));
    pairs.push(("timestamp", json!(rfc3339_seconds(now)?)));
    Ok(Ordered::new(pairs))
}

/// Standard Webhooks `data` for the suggested types, `{"market_id"}` for any other.
fn standard_data(event_type: &str, market: &str, nonce: u64) -> Ordered {
    use serde_json::json;
    let mut pairs = vec![("market_id", json!(market))];
    match event_type {
        "market.price_changed" => pairs.extend([
            ("platform", json!("kalshi")),
            ("previous_yes_price", json!(0.62)),
            ("yes_price", json!(0.65)),
        ]),
        "market.resolved" => pairs.extend([
            ("platform", json!("kalshi")),
            ("result", json!("yes")),
            ("settlement_price", json!(1.0)),
        ]),
        "order.filled" => pairs.extend([
            ("order_id", json!(format!("ord_{:016x}", mix(nonce)))),
            ("side", json!("yes")),
            ("action", json!("buy")),
            ("price", json!(0.65)),
            ("count", json!(50)),
        ]),
        _ => {}
    }
    Ordered::new(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ENGINE_SECRET, REKKO_SECRET, STANDARD_SECRET};
    use hookrelay::events::{EngineEvent, Event, RekkoEvent};
    use hookrelay::signature::{SecretSet, SignedRequest, SigningSecret, verify};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-21 14:30:00.123456 UTC);

    fn secret(sender: Sender) -> &'static str {
        match sender.name {
            "engine" => ENGINE_SECRET,
            "rekko" => REKKO_SECRET,
            _ => STANDARD_SECRET,
        }
    }

    fn trigger<'a>(
        sender: Sender,
        event_type: &'a str,
        fields: &'a [(String, String)],
    ) -> Trigger<'a> {
        Trigger {
            sender,
            event_type,
            market: None,
            sequence: 42,
            fields,
            now: NOW,
            nonce: 7,
        }
    }

    fn built(t: &Trigger) -> BuiltDelivery {
        build(t, secret(t.sender)).unwrap()
    }

    fn body(d: &BuiltDelivery) -> Value {
        serde_json::from_str(&d.body).unwrap()
    }

    fn header<'d>(d: &'d BuiltDelivery, name: &str) -> &'d str {
        d.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// Verifies `d` as the receiver does (the library's `verify`, the configured secret) and
    /// routes it with hookrelay-ingest's provider: its event type, market and envelope id.
    fn receive(sender: Sender, d: &BuiltDelivery) -> (String, Option<String>, String) {
        let key = sender.scheme.key_from_text(secret(sender)).unwrap();
        let secrets = SecretSet::new(vec![SigningSecret::from_key_bytes(&key)]).unwrap();
        let request = SignedRequest {
            headers: d.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect(),
            body: d.body.as_bytes().to_vec(),
        };
        let verified = verify(sender.scheme, &secrets, request).expect("the signature verifies");
        let route = hookrelay_ingest::providers::WEBHOOKS
            .iter()
            .find(|r| r.sender == sender)
            .unwrap();
        let routed = (route.route)(&verified).expect("the receiver routes it");
        (
            routed.event_type().to_owned(),
            routed.market_id().map(str::to_owned),
            routed.dedupe_key().as_str().to_owned(),
        )
    }

    #[test]
    fn every_type_of_every_sender_builds_verifies_and_routes_to_its_envelope_id() {
        for sender in senders::SENDERS {
            for &event_type in event_types(sender) {
                let d = built(&trigger(sender, event_type, &[]));
                assert_eq!(d.path, format!("/{}", sender.name));
                assert_eq!(header(&d, "content-type"), "application/json");
                let (routed_type, market, id) = receive(sender, &d);
                assert_eq!(routed_type, event_type, "{}", d.body);
                assert_eq!(id, d.envelope_id, "{}", d.body);
                if sender != senders::STANDARD {
                    assert_eq!(market.as_deref(), Some(default_market(sender)));
                }
                let decoded = Event::decode(sender.name, event_type, &d.body).unwrap();
                assert!(
                    !matches!(decoded, Event::UnexpectedShape { .. }),
                    "{event_type}: {decoded:?}"
                );
            }
        }
        assert_eq!(event_types(senders::ENGINE).len(), 10);
        assert_eq!(event_types(senders::REKKO).len(), 3);
    }

    #[test]
    fn engine_deliveries_follow_the_document() {
        let d = built(&trigger(senders::ENGINE, "order_matched", &[]));
        let keys: Vec<&str> = d
            .body
            .trim_start_matches('{')
            .split(",\"")
            .filter_map(|part| part.trim_start_matches('"').split('"').next())
            .take(3)
            .collect();
        assert_eq!(keys, ["id", "sequence", "eventType"], "{}", d.body);
        let v = body(&d);
        assert_eq!(v["eventType"], "ORDER_MATCHED", "sent uppercase");
        assert_eq!(v["timestamp"], "2026-03-21T14:30:00.123Z");
        assert_eq!(v["payload"]["timestamp"], 1_774_103_400_123_i64);
        assert_eq!(v["operatorId"], OPERATOR_ID);
        assert_eq!(header(&d, "x-webhook-event"), "ORDER_MATCHED");
        assert_eq!(header(&d, "x-webhook-id"), v["id"]);
        assert!(header(&d, "x-webhook-signature").starts_with("sha256="));
        assert_eq!(d.envelope_id, "engine:op-lab:42");
        let id = v["id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "{id}");
        let other = build(
            &Trigger {
                nonce: 8,
                ..trigger(senders::ENGINE, "ORDER_MATCHED", &[])
            },
            ENGINE_SECRET,
        )
        .unwrap();
        assert_ne!(
            body(&other)["id"],
            v["id"],
            "the nonce makes the delivery id"
        );
    }

    #[test]
    fn typed_payloads_decode_into_the_library_structs() {
        let d = built(&trigger(senders::ENGINE, "ORDER_MATCHED", &[]));
        let Event::Engine(EngineEvent::OrderMatched(m)) =
            Event::decode("engine", "ORDER_MATCHED", &d.body).unwrap()
        else {
            panic!("not OrderMatched: {}", d.body)
        };
        assert_eq!((m.sequence, m.payload.price), (42, 0.65));
        assert_eq!(m.payload.market_id, "mkt-7f3a-fed-mar");
        for t in ["price_shift", "whale_alert", "analysis_complete"] {
            let d = built(&trigger(senders::REKKO, t, &[]));
            let event = Event::decode("rekko", t, &d.body).unwrap();
            let ok = match (&event, t) {
                (Event::Rekko(RekkoEvent::PriceShift(e)), "price_shift") => {
                    e.timestamp == "2026-03-21T14:30:00Z"
                }
                (Event::Rekko(RekkoEvent::WhaleAlert(e)), "whale_alert") => e.flow == 250_000.0,
                (Event::Rekko(RekkoEvent::AnalysisComplete(e)), "analysis_complete") => {
                    e.analysis_id.starts_with("ana_")
                }
                _ => false,
            };
            assert!(ok, "{t}: {event:?}");
        }
        let d = built(&trigger(senders::ENGINE, "MARKET_CREATED", &[]));
        let Event::Engine(EngineEvent::Other { delivery, .. }) =
            Event::decode("engine", "MARKET_CREATED", &d.body).unwrap()
        else {
            panic!()
        };
        assert_eq!(delivery.payload.unwrap()["outcomes"][0]["name"], "Yes");
    }

    #[test]
    fn market_lands_everywhere_the_sender_names_it() {
        for sender in senders::SENDERS {
            for &event_type in event_types(sender) {
                let d = built(&Trigger {
                    market: Some("mkt-other"),
                    ..trigger(sender, event_type, &[])
                });
                let v = body(&d);
                match sender.name {
                    "engine" => {
                        assert_eq!(v["marketId"], "mkt-other");
                        assert_eq!(v["payload"]["marketId"], "mkt-other", "{event_type}");
                    }
                    "rekko" => assert_eq!(v["market_id"], "mkt-other"),
                    _ => assert_eq!(v["data"]["market_id"], "mkt-other"),
                }
            }
        }
        let empty = Trigger {
            market: Some(""),
            ..trigger(senders::REKKO, "price_shift", &[])
        };
        assert_eq!(build(&empty, REKKO_SECRET), Err(TriggerError::EmptyMarket));
    }

    #[test]
    fn fields_set_json_strings_and_nested_keys() {
        let fields: Vec<(String, String)> = [
            "price=0.7",
            "status=PARTIALLY_FILLED",
            "meta.source.venue=clob",
            "meta.source.live=true",
            "note=null",
            r#"quoted="50""#,
            "tags=[1,2]",
            "expr=a=b",
        ]
        .iter()
        .map(|f| parse_field(f).unwrap())
        .collect();
        let d = built(&trigger(senders::ENGINE, "ORDER_MATCHED", &fields));
        let p = &body(&d)["payload"];
        assert_eq!(p["price"], 0.7);
        assert_eq!(p["status"], "PARTIALLY_FILLED");
        assert_eq!(p["meta"]["source"]["venue"], "clob");
        assert_eq!(p["meta"]["source"]["live"], true);
        assert!(p["note"].is_null() && p.get("note").is_some());
        assert_eq!(p["quoted"], "50");
        assert_eq!(p["tags"], serde_json::json!([1, 2]));
        assert_eq!(p["expr"], "a=b", "split at the first '='");
        assert_eq!(receive(senders::ENGINE, &d).2, "engine:op-lab:42");
        // An overridden key stays where the document puts it.
        assert!(
            d.body.contains(r#""side":"BUY","price":0.7,"#),
            "{}",
            d.body
        );

        let flow = [parse_field("flow=1000000").unwrap()];
        let d = built(&trigger(senders::REKKO, "whale_alert", &flow));
        assert_eq!(body(&d)["flow"], 1_000_000);
        assert_eq!(receive(senders::REKKO, &d).2, d.envelope_id);
        let amount = [parse_field("amount=4200").unwrap()];
        let d = built(&trigger(senders::STANDARD, "invoice.paid", &amount));
        assert_eq!(body(&d)["data"]["amount"], 4200);
        assert_eq!(body(&d)["type"], "invoice.paid", "any standard type");
        assert_eq!(d.envelope_id, "standard:msg_lab_7");
        assert_eq!(header(&d, "webhook-timestamp"), "1774103400");
    }

    #[test]
    fn bad_fields_say_what_to_do() {
        for text in ["novalue", "=1", "a..b=1", ".a=1", "a.=1"] {
            let err = parse_field(text).unwrap_err();
            assert!(matches!(err, TriggerError::BadField(_)), "{text}");
            assert!(err.to_string().contains("key"), "{err}");
        }
        for (sender, field, hint) in [
            (senders::ENGINE, "marketId", "--market"),
            (senders::ENGINE, "operatorId", "op-lab"),
            (senders::REKKO, "type", "event type"),
            (senders::REKKO, "market_id.x", "--market"),
            (senders::STANDARD, "market_id", "--market"),
        ] {
            let fields = [(field.to_owned(), "x".to_owned())];
            let t = trigger(sender, event_types(sender)[0], &fields);
            let err = build(&t, secret(sender)).unwrap_err();
            assert!(err.to_string().contains(hint), "{field}: {err}");
        }
        let fields = [parse_field("status.x=1").unwrap()];
        let err = build(
            &trigger(senders::ENGINE, "ORDER_PLACED", &fields),
            ENGINE_SECRET,
        )
        .unwrap_err();
        assert!(err.to_string().contains("status is a string"), "{err}");
    }

    #[test]
    fn unknown_types_list_the_known_ones() {
        let err = build(
            &trigger(senders::ENGINE, "ORDER_FILLED", &[]),
            ENGINE_SECRET,
        )
        .unwrap_err();
        let text = err.to_string();
        for known in ENGINE_TYPES {
            assert!(text.contains(known), "{text}");
        }
        assert!(text.contains("ORDER_FILLED"));
        let err = build(&trigger(senders::REKKO, "news_flash", &[]), REKKO_SECRET).unwrap_err();
        assert!(
            err.to_string()
                .contains("price_shift, whale_alert, analysis_complete")
        );
        let d = built(&trigger(senders::REKKO, "Price_Shift", &[]));
        assert_eq!(body(&d)["type"], "price_shift", "sent lowercase");
        let err = build(&trigger(senders::STANDARD, " ", &[]), STANDARD_SECRET).unwrap_err();
        assert!(err.to_string().contains("any non-empty type"), "{err}");
    }

    #[test]
    fn rekko_and_standard_deliveries_are_unique_per_nonce() {
        for (sender, t) in [
            (senders::REKKO, "price_shift"),
            (senders::STANDARD, "order.filled"),
        ] {
            let a = built(&trigger(sender, t, &[]));
            let b = built(&Trigger {
                nonce: 8,
                ..trigger(sender, t, &[])
            });
            assert_ne!(a.envelope_id, b.envelope_id);
            assert_eq!(a, built(&trigger(sender, t, &[])), "deterministic");
        }
        let d = built(&trigger(senders::REKKO, "price_shift", &[]));
        assert_eq!(
            d.body,
            r#"{"type":"price_shift","market_id":"KXFED-26MAR19","platform":"kalshi","old_yes":0.62,"new_yes":0.68,"change_pct":9.7,"event_id":"evt_lab_0000000000000007","timestamp":"2026-03-21T14:30:00Z"}"#
        );
    }

    #[test]
    fn a_secret_not_in_configuration_form_is_an_error_not_a_panic() {
        let err = build(
            &trigger(senders::STANDARD, "order.filled", &[]),
            "whsec_not base64!",
        )
        .unwrap_err();
        assert!(matches!(err, TriggerError::BadSecret { .. }), "{err}");
    }
}
