//! hookrelay: a serverless webhook receiver for prediction-market events.
//!
//! Providers push signed webhooks to a Lambda Function URL; hookrelay verifies each signature in
//! constant time over the raw bytes, drops duplicate deliveries, and forwards every event as a
//! typed, versioned [`Envelope`] to Amazon SQS.
//!
//! This crate is both the Lambda (binary `hookrelay`) and the library consumers use to decode
//! queue messages:
//!
//! ```rust,no_run
//! use hookrelay::{Envelope, Event, events::{EngineEvent, RekkoEvent}};
//!
//! fn on_message(sqs_message_body: &str) -> Result<(), hookrelay::events::DecodeError> {
//!     let envelope = Envelope::from_json(sqs_message_body)?;
//!     match envelope.event()? {
//!         Event::Engine(EngineEvent::OrderMatched(fill)) => {
//!             println!("{} filled {} @ {}", fill.payload.order_id, fill.payload.filled_shares, fill.payload.price)
//!         }
//!         Event::Rekko(RekkoEvent::PriceShift(shift)) => println!("{} moved {}%", shift.market_id, shift.change_pct),
//!         other => println!("{} event {}: {other:?}", envelope.provider, envelope.event_type),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The receiver's modules, in the order a webhook passes through them: [`function_url`] (HTTP
//! edge) → [`pipeline`] (route, verify, parse, dedupe, publish) → [`verify`] → [`providers`] →
//! [`dedupe`] → [`envelope`] → [`queue`], with [`metrics`] and [`telemetry`] at the edge.
//! [`config`] (and [`secrets_manager`]) are read once at startup. [`consumer`] is the example SQS
//! consumer's logic.

#![warn(missing_docs)]

pub mod config;
pub mod consumer;
pub mod dedupe;
pub mod delivery;
pub mod envelope;
pub mod events;
pub mod function_url;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod queue;
pub mod secret;
pub mod secrets_manager;
pub mod telemetry;
pub mod verify;

pub use envelope::Envelope;
pub use events::Event;
