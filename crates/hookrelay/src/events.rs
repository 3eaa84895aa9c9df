//! Typed events for consumers: the per-sender event enums that an [`crate::Envelope`]'s `data`
//! decodes into, with typed payloads where the providers document them. No I/O.
//!
//! Every enum keeps what it does not know: an event type the providers don't document
//! (docs/contract.md, "The senders") decodes to an explicit `Unknown`/`Other` variant carrying the
//! type name and the raw JSON, never to an error and never to a wrong variant. A documented type whose fields are wrong (a sender changed its
//! shape) decodes to [`Event::UnexpectedShape`], which keeps the JSON and says what didn't fit:
//! never a default where the sender meant something else, and never an error that would fail the
//! message on every receive until it reaches the dead-letter queue. Your handler decides (the
//! example consumer logs it at WARN).
//!
//! Prices and sizes are `f64`, as the senders send JSON numbers; consumers that need exact
//! decimals can re-read `data` with their own types.

use serde::Deserialize;
use serde_json::Value;

use crate::senders;

/// Why a queue message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The message body is not a hookrelay envelope.
    #[error("the message is not a hookrelay envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    /// The envelope's version is not one this crate reads.
    #[error("envelope version {0} is not supported by this version of the hookrelay crate")]
    UnsupportedVersion(u32),
    /// `data` is not JSON at all (hookrelay never queues such a message).
    #[error("{provider} {event_type} event's data is not JSON: {source}")]
    Data {
        /// The sender.
        provider: String,
        /// The event type.
        event_type: String,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

/// A decoded event, by sender.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "boxing would stop consumers matching nested patterns; one value per decoded message"
)]
pub enum Event {
    /// From the prediction-engine operator API.
    Engine(EngineEvent),
    /// From Rekko.
    Rekko(RekkoEvent),
    /// From a Standard Webhooks sender.
    Standard(StandardEvent),
    /// From Heisenberg's WebSocket stream (bridged by `hookrelay-bridge`).
    Heisenberg(HeisenbergEvent),
    /// Written by hookrelay itself (provider `hookrelay`, `via: hookrelay`): engine sequences
    /// the engine never delivered (the opt-in gap detection). Reconcile the range from the
    /// engine's REST API.
    SequenceGap(SequenceGap),
    /// From a provider this version of the crate has no types for (one added since, say).
    UnknownProvider {
        /// The envelope's `provider`.
        provider: String,
        /// The envelope's `type`.
        event_type: String,
        /// The sender's body.
        data: Value,
    },
    /// A documented event type whose `data` does not have its documented shape.
    UnexpectedShape {
        /// The envelope's `provider`.
        provider: String,
        /// The envelope's `type`.
        event_type: String,
        /// The sender's body.
        data: Value,
        /// What did not fit: serde's message, naming the field and position (it may quote the
        /// sender's value, which is verified body content, never a secret).
        problem: String,
    },
}

impl Event {
    /// Decodes `data` (a sender's body) given the envelope's `provider` and `type`.
    /// Fails only when `data` is not JSON; a shape that doesn't fit its documented type is
    /// [`Event::UnexpectedShape`].
    pub fn decode(provider: &str, event_type: &str, data: &str) -> Result<Self, DecodeError> {
        let wrap = |source| DecodeError::Data {
            provider: provider.to_owned(),
            event_type: event_type.to_owned(),
            source,
        };
        Self::decode_typed(provider, event_type, data).or_else(|mismatch| {
            Ok(Event::UnexpectedShape {
                provider: provider.to_owned(),
                event_type: event_type.to_owned(),
                data: serde_json::from_str(data).map_err(wrap)?,
                problem: mismatch.to_string(),
            })
        })
    }

    fn decode_typed(
        provider: &str,
        event_type: &str,
        data: &str,
    ) -> Result<Self, serde_json::Error> {
        Ok(match provider {
            p if p == senders::ENGINE.name => Event::Engine(EngineEvent::decode(event_type, data)?),
            p if p == senders::REKKO.name => Event::Rekko(RekkoEvent::decode(event_type, data)?),
            senders::HEISENBERG => Event::Heisenberg(HeisenbergEvent::decode(event_type, data)?),
            senders::HOOKRELAY if event_type == SEQUENCE_GAP => {
                Event::SequenceGap(serde_json::from_str(data)?)
            }
            p if p == senders::STANDARD.name => Event::Standard(StandardEvent {
                event_type: event_type.to_owned(),
                body: serde_json::from_str(data)?,
            }),
            _ => Event::UnknownProvider {
                provider: provider.to_owned(),
                event_type: event_type.to_owned(),
                data: serde_json::from_str(data)?,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// hookrelay's own events

/// The type of a sequence-gap report.
pub const SEQUENCE_GAP: &str = "hookrelay.sequence_gap";

/// Engine sequences that never arrived: the sequence after them was published more than the
/// grace period (past the engine's retry schedule) ago. One report per gap, on its own FIFO
/// group (`hookrelay`); its envelope `id` names the stream and range, so a report repeated after
/// a detector restart is the same event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "json-schema",
    schemars(
        title = "hookrelay.sequence_gap",
        description = "The data of a sequence-gap report (provider hookrelay, via hookrelay): engine sequences that never arrived."
    )
)]
pub struct SequenceGap {
    /// The engine operator (empty when its deliveries name none).
    pub operator_id: String,
    /// The webhook registration: a fingerprint (an HMAC, not the secret) of the secret that
    /// verified its deliveries.
    pub registration: String,
    /// The first missing sequence.
    pub first_missing: u64,
    /// The last missing sequence.
    pub last_missing: u64,
    /// How many are missing.
    pub missing: u64,
    /// The sequence published just before the gap.
    pub last_seen_before: u64,
    /// The sequence published just after it.
    pub first_seen_after: u64,
    /// When the gap was confirmed (RFC 3339, UTC).
    pub detected_at: String,
}

// ---------------------------------------------------------------------------------------------
// Prediction-engine operator API

/// The engine's delivery object, common to all its event types; `P` is the payload type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineDelivery<P> {
    /// The delivery id.
    pub id: Option<String>,
    /// The engine's sequence number, the deduplication identity.
    pub sequence: u64,
    /// The event type as sent.
    pub event_type: String,
    /// The market, when the event concerns one.
    pub market_id: Option<String>,
    /// The operator the event belongs to.
    pub operator_id: Option<String>,
    /// When the event occurred (RFC 3339).
    pub timestamp: String,
    /// The event's payload.
    pub payload: P,
}

/// The engine's event types, as listed in its documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEventType {
    /// `MARKET_CREATED`
    MarketCreated,
    /// `MARKET_STATUS_CHANGED`
    MarketStatusChanged,
    /// `MARKET_RESOLVED`
    MarketResolved,
    /// `ORDER_BOOK_UPDATE`
    OrderBookUpdate,
    /// `PRICE_UPDATED`
    PriceUpdated,
    /// `ORDER_PLACED`
    OrderPlaced,
    /// `ORDER_MATCHED`
    OrderMatched,
    /// `ORDER_CANCELLED`
    OrderCancelled,
    /// `POSITION_UPDATED`
    PositionUpdated,
    /// `SETTLEMENT_COMPLETED`
    SettlementCompleted,
    /// A type the documentation does not list, kept by name.
    Unknown(String),
}

impl EngineEventType {
    /// The type named `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "MARKET_CREATED" => Self::MarketCreated,
            "MARKET_STATUS_CHANGED" => Self::MarketStatusChanged,
            "MARKET_RESOLVED" => Self::MarketResolved,
            "ORDER_BOOK_UPDATE" => Self::OrderBookUpdate,
            "PRICE_UPDATED" => Self::PriceUpdated,
            "ORDER_PLACED" => Self::OrderPlaced,
            "ORDER_MATCHED" => Self::OrderMatched,
            "ORDER_CANCELLED" => Self::OrderCancelled,
            "POSITION_UPDATED" => Self::PositionUpdated,
            "SETTLEMENT_COMPLETED" => Self::SettlementCompleted,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// An engine event.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// An order matched and a trade executed (payload documented by the engine).
    OrderMatched(EngineDelivery<OrderMatched>),
    /// Any other type: documented ones whose payload the engine does not specify, and types
    /// it does not list (`EngineEventType::Unknown`). The payload is kept as JSON.
    Other {
        /// Which type.
        event_type: EngineEventType,
        /// The delivery, payload untyped (`None` when the engine sent no `payload`).
        delivery: EngineDelivery<Option<Value>>,
    },
}

impl EngineEvent {
    fn decode(event_type: &str, data: &str) -> Result<Self, serde_json::Error> {
        Ok(match EngineEventType::from_name(event_type) {
            EngineEventType::OrderMatched => Self::OrderMatched(serde_json::from_str(data)?),
            other => Self::Other {
                event_type: other,
                delivery: serde_json::from_str(data)?,
            },
        })
    }
}

/// Which side of the book an order is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OrderSide {
    /// `BUY`
    #[serde(rename = "BUY")]
    Buy,
    /// `SELL`
    #[serde(rename = "SELL")]
    Sell,
}

/// The `ORDER_MATCHED` payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderMatched {
    /// The order that matched.
    pub order_id: String,
    /// The market.
    pub market_id: String,
    /// The outcome traded.
    pub outcome_id: String,
    /// The operator.
    pub operator_id: String,
    /// The resulting trade.
    pub trade_id: String,
    /// Buy or sell.
    pub side: OrderSide,
    /// Execution price (probability units, 0..1).
    pub price: f64,
    /// Order size in shares.
    pub shares: f64,
    /// Shares filled so far.
    pub filled_shares: f64,
    /// Shares still open.
    pub remaining_shares: f64,
    /// Order status after the match (e.g. `FILLED`), as sent.
    pub status: String,
    /// When the match happened, Unix milliseconds.
    pub timestamp: i64,
}

// ---------------------------------------------------------------------------------------------
// Rekko

/// A Rekko event.
#[derive(Debug, Clone, PartialEq)]
pub enum RekkoEvent {
    /// `price_shift`: a market price moved significantly.
    PriceShift(PriceShift),
    /// `whale_alert`: a large trade was detected.
    WhaleAlert(WhaleAlert),
    /// `analysis_complete`: a deep analysis finished.
    AnalysisComplete(AnalysisComplete),
    /// A type Rekko's documentation does not list, kept by name with its JSON.
    Unknown {
        /// The type as sent.
        event_type: String,
        /// The whole event object.
        data: Value,
    },
}

impl RekkoEvent {
    fn decode(event_type: &str, data: &str) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "price_shift" => Self::PriceShift(serde_json::from_str(data)?),
            "whale_alert" => Self::WhaleAlert(serde_json::from_str(data)?),
            "analysis_complete" => Self::AnalysisComplete(serde_json::from_str(data)?),
            other => Self::Unknown {
                event_type: other.to_owned(),
                data: serde_json::from_str(data)?,
            },
        })
    }
}

/// Rekko `price_shift`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PriceShift {
    /// The market (e.g. `KXFED-26MAR19`).
    pub market_id: String,
    /// The venue (e.g. `kalshi`).
    pub platform: String,
    /// YES price before.
    pub old_yes: f64,
    /// YES price after.
    pub new_yes: f64,
    /// Relative change, percent.
    pub change_pct: f64,
    /// When (RFC 3339).
    pub timestamp: String,
}

/// Rekko `whale_alert`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WhaleAlert {
    /// The market.
    pub market_id: String,
    /// The venue.
    pub platform: String,
    /// The side of the trade, as sent.
    pub side: String,
    /// Dollar flow of the trade.
    pub flow: f64,
    /// Trade price.
    pub price: f64,
    /// When (RFC 3339).
    pub timestamp: String,
}

/// Rekko `analysis_complete`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnalysisComplete {
    /// The finished analysis.
    pub analysis_id: String,
    /// The market.
    pub market_id: String,
    /// The venue.
    pub platform: String,
    /// When (RFC 3339).
    pub timestamp: String,
}

// ---------------------------------------------------------------------------------------------
// Heisenberg (WebSocket stream)

/// A Heisenberg data frame, as the gateway sends it and the envelope's `data` holds it; `D` is
/// the type of its `data` object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HeisenbergFrame<D> {
    /// The event type (e.g. `polymarket.trade`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The gateway's producer of the event (e.g. `polymarket-trade-scraper`).
    pub source: Option<String>,
    /// When the gateway delivered the frame (RFC 3339), when it says. A frame delivered again
    /// after a reconnect may carry a different value; the event's identity is `data.id`.
    pub timestamp: Option<String>,
    /// The event.
    pub data: D,
}

/// A Heisenberg stream event.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "boxing would stop consumers matching nested patterns; one value per decoded message"
)]
pub enum HeisenbergEvent {
    /// `polymarket.trade`: a Polymarket trade as it executed.
    PolymarketTrade(HeisenbergFrame<PolymarketTrade>),
    /// A type this version of the crate does not know (Heisenberg plans more), kept by name.
    Unknown {
        /// The type as sent.
        event_type: String,
        /// The whole frame.
        data: Value,
    },
}

impl HeisenbergEvent {
    fn decode(event_type: &str, data: &str) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "polymarket.trade" => Self::PolymarketTrade(serde_json::from_str(data)?),
            other => Self::Unknown {
                event_type: other.to_owned(),
                data: serde_json::from_str(data)?,
            },
        })
    }
}

/// The `data` of a `polymarket.trade` frame: all 24 fields of Heisenberg's schema. The trade's
/// identity, price, size and parties are required; the market's display fields and the trader's
/// profile fields are optional, as the gateway sends `null` for them when Polymarket has none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolymarketTrade {
    /// The trade's unique id (`{transaction_hash}_{order_hash}`): the deduplication identity.
    pub id: String,
    /// Buy or sell.
    pub side: OrderSide,
    /// Shares traded.
    pub size: f64,
    /// Execution price (probability units, 0..1).
    pub price: f64,
    /// When the trade executed (RFC 3339).
    pub timestamp: String,
    /// On-chain transaction hash.
    pub transaction_hash: String,
    /// On-chain order hash.
    pub order_hash: String,
    /// The block the trade is in.
    pub block_number: u64,
    /// The market's condition id.
    pub condition_id: String,
    /// The outcome token (asset) id.
    pub asset: String,
    /// The market's title.
    pub title: Option<String>,
    /// The market's slug (the envelope's `market_id`).
    pub slug: String,
    /// The parent event's slug.
    pub event_slug: String,
    /// The outcome traded (e.g. `Up`, `No`).
    pub outcome: String,
    /// The index of the traded outcome.
    pub outcome_index: u32,
    /// The market's icon URL.
    pub icon: Option<String>,
    /// The maker's wallet address.
    pub maker: String,
    /// The taker's wallet address.
    pub taker: String,
    /// The trader's proxy wallet.
    pub proxy_wallet: String,
    /// The trader's display name.
    pub name: Option<String>,
    /// The trader's pseudonym.
    pub pseudonym: Option<String>,
    /// The trader's bio.
    pub bio: Option<String>,
    /// The trader's profile image URL.
    pub profile_image: Option<String>,
    /// The trader's optimised profile image URL.
    pub profile_image_optimized: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

/// An event from a Standard Webhooks sender. The spec fixes no payload shape beyond the
/// conventional `type`, so the body is kept as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardEvent {
    /// The body's `type`, or `unknown`.
    pub event_type: String,
    /// The sender's body.
    pub body: Value,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ORDER_MATCHED: &str = r#"{"id":"delivery-uuid","sequence":42,"eventType":"ORDER_MATCHED","marketId":"market-uuid","operatorId":"operator-uuid","payload":{"orderId":"order-uuid","marketId":"market-uuid","outcomeId":"outcome-uuid","operatorId":"operator-uuid","tradeId":"trade-uuid","side":"BUY","price":0.65,"shares":50,"filledShares":50,"remainingShares":0,"status":"FILLED","timestamp":1708293600000},"timestamp":"2026-02-18T23:00:00.000Z"}"#;

    #[test]
    fn the_engine_seed_example_decodes_typed() {
        let Event::Engine(EngineEvent::OrderMatched(d)) =
            Event::decode("engine", "ORDER_MATCHED", ORDER_MATCHED).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(d.sequence, 42);
        assert_eq!(d.payload.side, OrderSide::Buy);
        assert_eq!(d.payload.price, 0.65);
        assert_eq!(d.payload.remaining_shares, 0.0);
        assert_eq!(d.payload.timestamp, 1_708_293_600_000);
    }

    #[test]
    fn engine_types_without_typed_payloads_keep_their_name() {
        let body = ORDER_MATCHED.replace("ORDER_MATCHED", "SOMETHING_NEW");
        let Event::Engine(EngineEvent::Other {
            event_type,
            delivery,
        }) = Event::decode("engine", "SOMETHING_NEW", &body).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(event_type, EngineEventType::Unknown("SOMETHING_NEW".into()));
        assert_eq!(delivery.payload.unwrap()["tradeId"], "trade-uuid");
        let no_payload =
            r#"{"sequence":9,"eventType":"MARKET_CREATED","timestamp":"2026-02-18T23:00:00Z"}"#;
        let Event::Engine(EngineEvent::Other { delivery, .. }) =
            Event::decode("engine", "MARKET_CREATED", no_payload).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!((delivery.sequence, delivery.payload), (9, None));
        let listed = ORDER_MATCHED.replace("ORDER_MATCHED", "MARKET_RESOLVED");
        assert!(matches!(
            Event::decode("engine", "MARKET_RESOLVED", &listed).unwrap(),
            Event::Engine(EngineEvent::Other {
                event_type: EngineEventType::MarketResolved,
                ..
            })
        ));
    }

    #[test]
    fn a_documented_type_with_a_wrong_shape_keeps_its_json_never_a_default() {
        let wrong_side = ORDER_MATCHED.replace("\"BUY\"", "\"HOLD\"");
        let Event::UnexpectedShape {
            provider,
            event_type,
            data,
            problem,
        } = Event::decode("engine", "ORDER_MATCHED", &wrong_side).unwrap()
        else {
            panic!("a wrong side must not decode to OrderMatched");
        };
        assert_eq!(
            (provider.as_str(), event_type.as_str()),
            ("engine", "ORDER_MATCHED")
        );
        assert_eq!(data["payload"]["side"], "HOLD");
        assert!(problem.contains("variant"), "{problem}");
        let no_flow = r#"{"type":"whale_alert","market_id":"m","platform":"p","side":"yes","price":0.4,"timestamp":"t"}"#;
        assert!(matches!(
            Event::decode("rekko", "whale_alert", no_flow).unwrap(),
            Event::UnexpectedShape { .. }
        ));
        assert!(matches!(
            Event::decode("rekko", "whale_alert", "{not json"),
            Err(DecodeError::Data { .. })
        ));
    }

    #[test]
    fn rekko_events_decode_by_type() {
        let shift = r#"{"type":"price_shift","market_id":"KXFED-26MAR19","platform":"kalshi","old_yes":0.62,"new_yes":0.68,"change_pct":9.7,"timestamp":"2026-03-21T14:30:00Z"}"#;
        let Event::Rekko(RekkoEvent::PriceShift(p)) =
            Event::decode("rekko", "price_shift", shift).unwrap()
        else {
            panic!()
        };
        assert_eq!((p.old_yes, p.new_yes, p.change_pct), (0.62, 0.68, 9.7));
        let done = r#"{"type":"analysis_complete","analysis_id":"a-1","market_id":"m","platform":"kalshi","timestamp":"t"}"#;
        assert!(matches!(
            Event::decode("rekko", "analysis_complete", done).unwrap(),
            Event::Rekko(RekkoEvent::AnalysisComplete(_))
        ));
        let new = r#"{"type":"news_flash","headline":"x"}"#;
        let Event::Rekko(RekkoEvent::Unknown { event_type, data }) =
            Event::decode("rekko", "news_flash", new).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (event_type.as_str(), data["headline"].as_str()),
            ("news_flash", Some("x"))
        );
    }

    #[test]
    fn standard_and_unknown_providers_keep_json() {
        assert!(matches!(
            Event::decode("standard", "invoice.paid", r#"{"a":1}"#).unwrap(),
            Event::Standard(_)
        ));
        assert!(matches!(
            Event::decode("kalshi", "trade", "{}").unwrap(),
            Event::UnknownProvider { .. }
        ));
    }

    /// Heisenberg's documented live `polymarket.trade` example (its abbreviated hashes kept as printed).
    pub(crate) const POLYMARKET_TRADE: &str = r#"{"type":"polymarket.trade","source":"polymarket-trade-scraper","timestamp":"2026-05-27T13:50:00.167247+00:00","data":{"id":"0x8902f2…498832_0x31ba8c…a5aa09","side":"BUY","size":11,"price":0.53,"timestamp":"2026-05-27T13:49:52+00:00","transaction_hash":"0x8902f299…d6d498832","order_hash":"0x31ba8c8c…454aa5aa09","block_number":87514326,"condition_id":"0x9ad19824…2d7f2d9","asset":"67025362…363793","title":"Bitcoin Up or Down - May 27, 9:50AM-9:55AM ET","slug":"btc-updown-5m-1779889800","event_slug":"btc-updown-5m","outcome":"Up","outcome_index":0,"icon":"https://polymarket-upload.s3…/BTC+fullsize.png","maker":"0x55338c…d1b8220","taker":"0x6833c0…1b5cfe1","proxy_wallet":"0x55338c…d1b8220","name":null,"pseudonym":null,"bio":null,"profile_image":null,"profile_image_optimized":null}}"#;

    #[test]
    fn the_heisenberg_seed_trade_decodes_with_all_24_fields() {
        let Event::Heisenberg(HeisenbergEvent::PolymarketTrade(frame)) =
            Event::decode("heisenberg", "polymarket.trade", POLYMARKET_TRADE).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(frame.source.as_deref(), Some("polymarket-trade-scraper"));
        let t = frame.data;
        assert_eq!((t.side, t.size, t.price), (OrderSide::Buy, 11.0, 0.53));
        assert_eq!((t.block_number, t.outcome_index), (87_514_326, 0));
        assert_eq!(t.slug, "btc-updown-5m-1779889800");
        assert_eq!(t.proxy_wallet, t.maker);
        assert_eq!((t.name, t.profile_image_optimized), (None, None));
        let fields = serde_json::from_str::<Value>(POLYMARKET_TRADE).unwrap()["data"]
            .as_object()
            .unwrap()
            .len();
        assert_eq!(fields, 24, "the provider's payload has 24 fields");
    }

    #[test]
    fn a_trade_missing_a_required_field_is_an_unexpected_shape() {
        let no_price = POLYMARKET_TRADE.replace(r#""price":0.53,"#, "");
        let Event::UnexpectedShape { problem, .. } =
            Event::decode("heisenberg", "polymarket.trade", &no_price).unwrap()
        else {
            panic!("a trade without a price must not decode as a trade");
        };
        assert!(problem.contains("price"), "{problem}");
        let sell = POLYMARKET_TRADE.replace(r#""side":"BUY""#, r#""side":"HOLD""#);
        assert!(matches!(
            Event::decode("heisenberg", "polymarket.trade", &sell).unwrap(),
            Event::UnexpectedShape { .. }
        ));
        let future = r#"{"type":"kalshi.trade","timestamp":"t","data":{"x":1}}"#;
        assert!(matches!(
            Event::decode("heisenberg", "kalshi.trade", future).unwrap(),
            Event::Heisenberg(HeisenbergEvent::Unknown { .. })
        ));
    }
}
