//! hookrelay-receiver: the Lambda behind the Function URL (binary `hookrelay`). A webhook's life,
//! top-down: [`function_url`] (the event in, the response, log line and metrics out) →
//! [`pipeline`] (the stages: origin, route, verify, read the routing fields, replay window, admit,
//! claim, seal, publish, commit) → [`outcome`] (what a request came to; the one place rejections
//! become status codes). [`config`] is read once at startup; [`metrics`] is what one request reports. [`gap_detector`] is the scheduled
//! second function (binary `hookrelay-gap-detector`) of the opt-in sequence-gap detection.
//!
//! The stages themselves live in the shared crates: signature schemes in `hookrelay` (the
//! library consumers use too), routing, dedupe and message building in `hookrelay-ingest`, the
//! SQS and Secrets Manager adapters in `hookrelay-aws`.

#![warn(missing_docs)]

pub mod config;
pub mod function_url;
pub mod gap_detector;
pub mod metrics;
pub mod origin;
pub mod outcome;
pub mod pipeline;
