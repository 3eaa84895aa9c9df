//! The tools' side of the local SQS endpoint: a client for it, a fresh FIFO queue like the
//! template's, and draining a queue (receive, hand each message over, delete).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, QueueAttributeName};

/// A client for the local endpoint at `endpoint` (any credentials do).
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// Creates the FIFO queue `name` (which must end `.fifo`) with the template's settings and
/// returns its URL.
pub async fn create_fifo_queue(sqs: &Client, name: &str) -> Result<String, String> {
    sqs.create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
        .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId")
        .send()
        .await
        .map_err(|error| format!("create queue {name}: {error:?}"))?
        .queue_url
        .ok_or_else(|| format!("create queue {name}: no queue URL"))
}

/// Receives and deletes messages until `empty_polls` receives in a row come back empty, handing
/// each message to `each`; returns how many there were.
pub async fn drain(
    sqs: &Client,
    queue_url: &str,
    empty_polls: usize,
    mut each: impl FnMut(&Message),
) -> Result<u64, String> {
    let mut read = 0u64;
    let mut empty = 0;
    while empty < empty_polls {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(120)
            .send()
            .await
            .map_err(|error| format!("receive from {queue_url}: {error:?}"))?;
        let messages = batch.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let mut deletes = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            read += 1;
            each(message);
            if let Some(handle) = message.receipt_handle() {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build();
                deletes.extend(entry.ok());
            }
        }
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(|error| format!("delete from {queue_url}: {error:?}"))?;
    }
    Ok(read)
}
