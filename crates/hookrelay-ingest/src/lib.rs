//! hookrelay-ingest: the pure logic the receiver (Lambda) and the stream bridge share, from a
//! verified delivery or a stream frame to the message that goes on the queue. No AWS SDK, no
//! Lambda runtime, no I/O but the two stdout writers (log lines, metric lines).
//!
//! - [`providers`]: each provider's routing of a verified delivery or a stream frame, and the
//!   one list that registers them;
//! - [`event`]: the routed event and why a body can't be routed; [`stream`]: stream events and
//!   the streams; [`fields`]: the field readers routing uses; [`json_safety`]: whether every
//!   consumer can parse a body;
//! - [`dedupe`]: dedupe keys and the per-process window of keys already published;
//! - [`idempotency`]: the durable store's claim decisions and its trait; [`claims`]: the driver
//!   both processes use;
//! - [`sequence`]: sequence-gap streams and which holes are confirmed gaps;
//! - [`queue`]: the SQS message an event becomes (envelope, attributes, relay seal, FIFO ids,
//!   SQS's character and size rules) and the publisher contracts the AWS adapters and the test
//!   kit implement;
//! - [`budget`]: one delivery's time, from its invocation's deadline, shared out between the
//!   claim, the send and the commit;
//! - [`settings`]: configuration both processes read under the same names;
//! - [`emf`]: CloudWatch Embedded Metric Format rendering; [`telemetry`]: log setup.

#![warn(missing_docs)]

pub mod budget;
pub mod claims;
pub mod dedupe;
pub mod emf;
pub mod event;
pub mod fields;
pub mod idempotency;
pub mod json_safety;
pub mod providers;
pub mod queue;
pub mod sequence;
pub mod settings;
pub mod stream;
pub mod telemetry;
