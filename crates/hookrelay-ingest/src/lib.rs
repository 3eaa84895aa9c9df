//! hookrelay-ingest: the pure logic the receiver (Lambda) and the stream bridge share, from a
//! verified delivery or a stream frame to the message that goes on the queue. No AWS SDK, no
//! Lambda runtime, no I/O but the two stdout writers (log lines, metric lines).
//!
//! - [`webhooks`]: each sender's routing of a verified delivery, and their registration;
//! - [`routed`]: the routed event, the field readers routing uses, and the SQS message an event
//!   becomes (envelope, attributes, FIFO ids, SQS's character and size rules);
//! - [`dedupe`]: dedupe keys and the per-process window of keys already published;
//! - [`idempotency`]: the durable store's claim decisions, its trait and the driver both
//!   processes use;
//! - [`sequence`]: sequence-gap streams and which holes are confirmed gaps;
//! - [`queue`]: the publisher contracts the AWS adapters and the test kit implement;
//! - [`budget`]: one delivery's time, from its invocation's deadline, shared out between the
//!   claim, the send and the commit;
//! - [`settings`]: configuration both processes read under the same names;
//! - [`emf`]: CloudWatch Embedded Metric Format rendering; [`telemetry`]: log setup.

#![warn(missing_docs)]

pub mod budget;
pub mod dedupe;
pub mod emf;
pub mod idempotency;
pub mod queue;
pub mod routed;
pub mod sequence;
pub mod settings;
pub mod telemetry;
pub mod webhooks;
