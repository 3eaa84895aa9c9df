//! The tools' side of the local SQS endpoint: a client for it, a fresh FIFO queue like the
//! template's (or a standard one), draining a queue (receive, hand each message over, delete),
//! and collecting what arrives without deleting it (moto forgets a deleted message's dedup id).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use tokio::time::Instant;

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

/// Creates the standard (not FIFO) queue `name` and returns its URL: no deduplication at all, so
/// a test sees every duplicate a sender produced.
pub async fn create_standard_queue(sqs: &Client, name: &str) -> Result<String, String> {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|error| format!("create queue {name}: {error:?}"))?
        .queue_url
        .ok_or_else(|| format!("create queue {name}: no queue URL"))
}

/// Receives (without deleting, hidden for 5 minutes) until at least `count` messages have
/// arrived or `within` has passed, then once more after `settle`, to catch any that arrive late
/// (a duplicate, say). Returns them all, attributes included.
pub async fn collect(
    sqs: &Client,
    queue_url: &str,
    count: usize,
    within: Duration,
    settle: Duration,
) -> Result<Vec<Message>, String> {
    let deadline = Instant::now() + within;
    let mut all = Vec::new();
    loop {
        let got = receive_batch(sqs, queue_url).await?;
        let empty = got.is_empty();
        all.extend(got);
        if all.len() >= count || Instant::now() >= deadline {
            break;
        }
        if empty {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(settle).await;
    loop {
        let got = receive_batch(sqs, queue_url).await?;
        if got.is_empty() {
            return Ok(all);
        }
        all.extend(got);
    }
}

async fn receive_batch(sqs: &Client, queue_url: &str) -> Result<Vec<Message>, String> {
    Ok(sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(300)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|error| format!("receive from {queue_url}: {error:?}"))?
        .messages
        .unwrap_or_default())
}

/// Waits until the queue holds at least `count` messages (visible, in flight or held back behind
/// their FIFO group) or `within` has passed; returns how many it holds.
pub async fn wait_until_holding(
    sqs: &Client,
    queue_url: &str,
    count: u64,
    within: Duration,
) -> Result<u64, String> {
    let deadline = Instant::now() + within;
    loop {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|error| format!("attributes of {queue_url}: {error:?}"))?;
        let held: u64 = attributes
            .attributes()
            .into_iter()
            .flatten()
            .filter_map(|(_, value)| value.parse::<u64>().ok())
            .sum();
        if held >= count || Instant::now() >= deadline {
            return Ok(held);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
            .message_attribute_names("All")
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
