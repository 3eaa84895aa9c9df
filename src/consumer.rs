//! An SQS-triggered consumer to copy: decodes each message into the typed [`Envelope`] and
//! [`Event`], re-verifies the sender's signature over `data` when it holds that sender's secret,
//! hands the event to an [`EventHandler`] (your trading logic), and reports each failed message
//! as a batch item failure, so one bad message is retried (and eventually dead-lettered) alone
//! instead of redelivering the whole batch. Pure: no I/O besides what the handler does.
//!
//! Events the bridge read from a provider's stream (`via: stream`; Heisenberg and Rekko) have no
//! sender signature to re-check: their authenticity rests on the bridge's authenticated
//! connection and on who may send to the queue (IAM). The `via` claim counts only for providers
//! that have a stream: an engine or Standard Webhooks envelope marked `stream` still needs its
//! signature.
//!
//! Requires `ReportBatchItemFailures` on the event source mapping (the template sets it).
//! Secrets come from the same `HOOKRELAY_*_SECRETS` variables as the receiver; a sender without
//! one is not re-verified (the receiver already verified it; re-verifying guards against anything
//! that could write to the queue besides hookrelay).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::config::SenderSecrets;
use crate::envelope::{Envelope, Via, attributes};
use crate::events::{DecodeError, Event};
use crate::providers::{Provider, StreamSource};
use crate::verify::VerifyError;

/// What your code does with each decoded, verified event.
pub trait EventHandler {
    /// Handles one event; an error marks the message failed (it will be delivered again).
    fn handle(&self, envelope: &Envelope, event: Event) -> Result<(), String>;
}

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The record has no body.
    #[error("the message has no body")]
    NoBody,
    /// The body is not a hookrelay envelope, or `data` doesn't match its event type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A secret is configured for the sender, but the message has no `signature` attribute.
    #[error("the message has no signature attribute to re-verify")]
    NoSignature,
    /// Re-verification failed: `data` is not what the sender signed.
    #[error("re-verification failed: {0}")]
    Unverified(#[from] VerifyError),
    /// The handler refused the event.
    #[error("the handler failed: {0}")]
    Handler(String),
}

/// Decodes, re-verifies and hands over messages.
pub struct Consumer<H> {
    secrets: SenderSecrets,
    handler: H,
}

impl<H: EventHandler> Consumer<H> {
    /// A consumer re-verifying with `secrets` and passing events to `handler`.
    pub fn new(secrets: SenderSecrets, handler: H) -> Self {
        Self { secrets, handler }
    }

    /// Processes a batch, returning the ids of the messages that failed.
    pub fn process_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in &event.records {
            if let Err(error) = self.process(record) {
                let id = record.message_id.clone().unwrap_or_default();
                tracing::warn!(message_id = %id, %error, "message failed; reported as a batch item failure");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Processes one message.
    pub fn process(&self, record: &SqsMessage) -> Result<(), ConsumeError> {
        let body = record.body.as_deref().ok_or(ConsumeError::NoBody)?;
        let envelope = Envelope::from_json(body)?;
        // Only a provider that has a stream can send unsigned (`via: stream`) events; for any
        // other, the claim is ignored and the signature is required as usual.
        let unsigned_stream = envelope.via == Via::Stream
            && StreamSource::ALL
                .iter()
                .any(|s| s.provider() == envelope.provider);
        let secrets = Provider::from_name(&envelope.provider)
            .and_then(|p| self.secrets.of(p))
            .filter(|_| !unsigned_stream);
        if let Some(secrets) = secrets {
            let signature = record
                .message_attributes
                .get(attributes::SIGNATURE)
                .and_then(|a| a.string_value.as_deref())
                .ok_or(ConsumeError::NoSignature)?;
            envelope.verify_signature(signature, secrets)?;
        }
        let event = envelope.event()?;
        self.handler
            .handle(&envelope, event)
            .map_err(ConsumeError::Handler)
    }
}

/// The example's handler: logs a one-line summary of each event. Replace with your logic.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

impl EventHandler for LogEvents {
    fn handle(&self, envelope: &Envelope, event: Event) -> Result<(), String> {
        use crate::events::{EngineEvent, RekkoEvent};
        let summary = match &event {
            Event::Engine(EngineEvent::OrderMatched(fill)) => format!(
                "{:?} {} shares of {} at {}",
                fill.payload.side,
                fill.payload.filled_shares,
                fill.payload.market_id,
                fill.payload.price
            ),
            Event::Rekko(RekkoEvent::PriceShift(shift)) => {
                format!(
                    "{} yes {} -> {}",
                    shift.market_id, shift.old_yes, shift.new_yes
                )
            }
            Event::Rekko(RekkoEvent::WhaleAlert(whale)) => {
                format!("{} {} flow {}", whale.market_id, whale.side, whale.flow)
            }
            _ => envelope.event_type.clone(),
        };
        tracing::info!(id = %envelope.id, provider = %envelope.provider, summary, "event consumed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl EventHandler for &Collect {
        fn handle(&self, envelope: &Envelope, _: Event) -> Result<(), String> {
            self.0.lock().unwrap().push(envelope.id.clone());
            Ok(())
        }
    }

    fn record(id: &str, body: &str) -> SqsMessage {
        serde_json::from_value(serde_json::json!({"messageId": id, "body": body})).unwrap()
    }

    #[test]
    fn a_bad_message_fails_alone() {
        let collected = Collect::default();
        let consumer = Consumer::new(SenderSecrets::from_lookup(|_| None).unwrap(), &collected);
        let good = r#"{"version":1,"id":"rekko:1","provider":"rekko","type":"news","market_id":null,"sequence":null,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:00.000Z","data":{"type":"news"}}"#;
        let mut event = SqsEvent::default();
        event.records = vec![
            record("m-1", good),
            record("m-2", "not an envelope"),
            record("m-3", &good.replace("\"version\":1", "\"version\":9")),
        ];
        let response = consumer.process_batch(event);
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m-2", "m-3"]);
        assert_eq!(*collected.0.lock().unwrap(), ["rekko:1"]);
    }
}
