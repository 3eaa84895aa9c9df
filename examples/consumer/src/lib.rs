//! An SQS-triggered consumer to copy: each message of a batch goes through the `hookrelay`
//! library's [`Consumer`] (decode into the typed envelope and event, re-verify the sender's
//! signature over `data` when it holds that sender's secret, hand the event to your
//! [`EventHandler`]), and each failed message is reported as a batch item failure, so one bad
//! message is retried (and eventually dead-lettered) alone instead of redelivering the whole
//! batch. Pure: no I/O besides what the handler does.
//!
//! Requires `ReportBatchItemFailures` on the event source mapping (the template sets it).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use hookrelay::consumer::{ConsumeError, Consumer, EventHandler, Processed};
use hookrelay::envelope::attributes;
use hookrelay::{Envelope, Event};

/// Processes a batch through `consumer`, returning the ids of the messages that failed.
pub fn process_batch<H: EventHandler>(consumer: &Consumer<H>, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        if let Err(error) = process(consumer, record) {
            let id = record.message_id.clone().unwrap_or_default();
            tracing::warn!(message_id = %id, %error, "message failed; reported as a batch item failure");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Processes one SQS record: its body and its `signature` attribute, as plain strings.
pub fn process<H: EventHandler>(
    consumer: &Consumer<H>,
    record: &SqsMessage,
) -> Result<(), ConsumeError> {
    let signature = record
        .message_attributes
        .get(attributes::SIGNATURE)
        .and_then(|attribute| attribute.string_value.as_deref());
    match consumer.process(record.body.as_deref(), signature)? {
        Processed::Handled => {}
        Processed::SkippedSmokeTest => {
            let id = record.message_id.as_deref().unwrap_or_default();
            tracing::info!(message_id = %id, "hookrelay smoke test acknowledged, not handled");
        }
    }
    Ok(())
}

/// The example's handler: logs a one-line summary of each event. Replace with your logic.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

impl EventHandler for LogEvents {
    fn handle(&self, envelope: &Envelope, event: Event) -> Result<(), String> {
        use hookrelay::events::{EngineEvent, RekkoEvent};
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

    use hookrelay::config::Env;
    use hookrelay::secret::SenderSecrets;

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
        let consumer = Consumer::new(
            SenderSecrets::from_env(&Env::new(|_| None)).unwrap(),
            &collected,
        );
        let good = r#"{"version":1,"id":"rekko:1","provider":"rekko","type":"news","market_id":null,"sequence":null,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:00.000Z","data":{"type":"news"}}"#;
        let mut event = SqsEvent::default();
        event.records = vec![
            record("m-1", good),
            record("m-2", "not an envelope"),
            record("m-3", &good.replace("\"version\":1", "\"version\":9")),
        ];
        let response = process_batch(&consumer, event);
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m-2", "m-3"]);
        assert_eq!(*collected.0.lock().unwrap(), ["rekko:1"]);
    }
}
