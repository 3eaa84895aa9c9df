//! An SQS-triggered consumer to copy: each message of a batch goes through the `hookrelay`
//! library's [`Consumer`] (check the relay signature against the trusted public keys, decode
//! into the typed envelope and event, re-verify the sender's signature over `data` when it holds
//! that sender's secret, hand the event to your [`EventHandler`]), and each failed message is
//! reported as a batch item failure, so one bad message is retried (and eventually
//! dead-lettered) alone instead of redelivering the whole batch. A forged, relabelled or
//! over-age message is a failure like any other: it reaches the dead-letter queue, never the
//! handler, and is never dropped. Pure: no I/O besides what the handler does.
//!
//! Requires `ReportBatchItemFailures` on the event source mapping (the template sets it).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use hookrelay::consumer::{ConsumeError, Consumer, EventHandler, MessageAttributes, Processed};
use hookrelay::{Envelope, Event};

/// What a failure in a FIFO batch does to the batch's later messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FifoOnFailure {
    /// Every later message of the batch is reported failed too, unprocessed: AWS's guidance for
    /// FIFO queues with `ReportBatchItemFailures`, so nothing of any market is acted on ahead of
    /// a message that must be retried first.
    #[default]
    FailRestOfBatch,
    /// Only the later messages of the failed message's group (`MessageGroupId`: one market) are
    /// reported failed; other groups go on (as Powertools' `skip_group_on_error`).
    FailRestOfGroup,
}

/// Processes a batch through `consumer`, returning the ids of the messages that failed, with
/// [`FifoOnFailure::FailRestOfBatch`].
pub fn process_batch<H: EventHandler>(consumer: &Consumer<H>, event: SqsEvent) -> SqsBatchResponse {
    process_batch_with(consumer, event, FifoOnFailure::default())
}

/// Processes a batch through `consumer`, returning the ids of the messages that failed. A
/// message from a FIFO queue (it has a `MessageGroupId`) that fails holds back the later ones as
/// `on_failure` says; a standard queue's messages (no group) fail alone.
pub fn process_batch_with<H: EventHandler>(
    consumer: &Consumer<H>,
    event: SqsEvent,
    on_failure: FifoOnFailure,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut batch_failed = false;
    let mut failed_groups: Vec<&str> = Vec::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").map(String::as_str);
        let held_back = group.is_some_and(|group| match on_failure {
            FifoOnFailure::FailRestOfBatch => batch_failed,
            FifoOnFailure::FailRestOfGroup => failed_groups.contains(&group),
        });
        let outcome = if held_back {
            tracing::warn!(message_id = %id, "an earlier message of the batch failed; held back unprocessed");
            Err(())
        } else {
            process(consumer, record).map_err(|error| {
                tracing::warn!(message_id = %id, %error, "message failed; reported as a batch item failure");
            })
        };
        if outcome.is_err() {
            if let Some(group) = group {
                batch_failed = true;
                failed_groups.push(group);
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// An SQS record's message attributes, as the consumer API reads them.
struct RecordAttributes<'a>(&'a SqsMessage);

impl MessageAttributes for RecordAttributes<'_> {
    fn string(&self, name: &str) -> Option<&str> {
        self.0
            .message_attributes
            .get(name)
            .and_then(|attribute| attribute.string_value.as_deref())
    }
}

/// Processes one SQS record: its body and its string message attributes.
pub fn process<H: EventHandler>(
    consumer: &Consumer<H>,
    record: &SqsMessage,
) -> Result<(), ConsumeError> {
    match consumer.process(record.body.as_deref(), &RecordAttributes(record))? {
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
            Event::UnexpectedShape { problem, .. } => {
                // A documented type in a shape its sender never documented: kept as JSON, never
                // read as the typed variant. A real consumer decides; the example says so loudly.
                tracing::warn!(id = %envelope.id, provider = %envelope.provider, event_type = %envelope.event_type, %problem, "event in an unexpected shape");
                return Ok(());
            }
            _ => envelope.event_type.clone(),
        };
        tracing::info!(id = %envelope.id, provider = %envelope.provider, summary, "event consumed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hookrelay_devtools::memory::RecordingHandler as Collect;
    use hookrelay_devtools::relay_keys;

    use super::*;

    /// A record of `body`, sealed with the test kit's relay key when its body is an envelope.
    fn sealed_record(id: &str, body: &str, extra: serde_json::Value) -> SqsMessage {
        let envelope_id = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let seal = relay_keys::signer().sign(&envelope_id, now, body);
        let string = |value: &str| serde_json::json!({"stringValue": value, "dataType": "String"});
        let mut record = serde_json::json!({
            "messageId": id, "body": body,
            "messageAttributes": {
                "relay_id": string(&seal.id),
                "relay_timestamp": string(&seal.timestamp),
                "relay_signature": string(&seal.signatures),
            }
        });
        if let serde_json::Value::Object(extra) = extra {
            record.as_object_mut().unwrap().extend(extra);
        }
        serde_json::from_value(record).unwrap()
    }

    fn record(id: &str, body: &str) -> SqsMessage {
        sealed_record(id, body, serde_json::json!({}))
    }

    #[test]
    fn a_bad_message_fails_alone() {
        let collected = Collect::default();
        let consumer = Consumer::new(relay_keys::trust(), &collected);
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
        assert_eq!(collected.ids(), ["rekko:1"]);
    }

    fn fifo_record(id: &str, group: &str, body: &str) -> SqsMessage {
        sealed_record(
            id,
            body,
            serde_json::json!({"attributes": {"MessageGroupId": group}}),
        )
    }

    #[test]
    fn a_fifo_failure_holds_back_the_rest_of_the_batch_or_of_its_group() {
        let good = |id: &str| {
            r#"{"version":1,"id":"ID","provider":"rekko","type":"news","market_id":null,"sequence":null,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:00.000Z","data":{"type":"news"}}"#
                .replace("ID", id)
        };
        let batch = || {
            let mut event = SqsEvent::default();
            event.records = vec![
                fifo_record("a1", "a", &good("a1")),
                fifo_record("b1", "b", &good("b1")),
                fifo_record("a2", "a", "not an envelope"),
                fifo_record("b2", "b", &good("b2")),
                fifo_record("a3", "a", &good("a3")),
                fifo_record("c1", "c", &good("c1")),
            ];
            event
        };
        let failed = |response: SqsBatchResponse| -> Vec<String> {
            response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect()
        };
        let handled = Collect::default();
        let consumer = Consumer::new(relay_keys::trust(), &handled);
        let response = process_batch(&consumer, batch());
        assert_eq!(failed(response), ["a2", "b2", "a3", "c1"]);
        assert_eq!(handled.ids(), ["a1", "b1"]);

        let handled = Collect::default();
        let consumer = Consumer::new(relay_keys::trust(), &handled);
        let response = process_batch_with(&consumer, batch(), FifoOnFailure::FailRestOfGroup);
        assert_eq!(failed(response), ["a2", "a3"]);
        assert_eq!(handled.ids(), ["a1", "b1", "b2", "c1"]);
    }
}
