//! hookrelay: the library for consumers of hookrelay's queue, and the signature schemes every
//! hookrelay process shares.
//!
//! hookrelay receives signed prediction-market webhooks in an AWS Lambda, verifies them, drops
//! duplicates and forwards each event to Amazon SQS as a typed, versioned [`Envelope`], sealed
//! with an Ed25519 relay signature ([`relay`]). This crate checks that seal, decodes those
//! messages into typed events and re-verifies them ([`consumer::Consumer`] does all three, failing
//! closed). It has no AWS SDK, Lambda runtime or async runtime dependency: hand it the message
//! body and attributes as strings. The example below decodes a body whose seal was already
//! checked.
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
//! Modules: [`envelope`] (the message contract) and [`events`] (typed events) for decoding;
//! [`consumer`] (check the relay signature, decode, re-verify, hand over); [`relay`] (the relay
//! signature, sealing beside checking, and its keys); [`signature`] (each scheme's `verify` and `sign`,
//! the headers and keys they read), [`senders`] (who signs how) and [`secret`] (secrets from
//! configuration text); [`config`] (the configuration vocabulary every hookrelay process shares).

#![warn(missing_docs)]

pub mod config;
pub mod consumer;
pub mod envelope;
pub mod events;
pub mod relay;
pub mod secret;
pub mod senders;
pub mod signature;

pub use envelope::Envelope;
pub use events::Event;
