//! The queue edge: the message hookrelay sends, SQS's rules for what a message may carry, the
//! [`Publisher`] trait the pipeline sends through, the [`BatchPublisher`] trait the stream bridge
//! sends through, and their Amazon SQS implementation (the only I/O here).
//!
//! Bounded time: an SQS call gets 1 s to connect, 2 s per attempt and 3 attempts within 5 s in
//! all, so a failing queue is answered with a 503 well inside the engine's 10 s delivery timeout
//! and the sender retries.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use sha2::{Digest, Sha256};

/// The largest message SQS accepts (body plus attributes), in bytes.
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;
/// The most entries one `SendMessageBatch` call may carry.
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;
/// SQS's limit on `MessageGroupId` and `MessageDeduplicationId`.
const SQS_MAX_ID_CHARS: usize = 128;

/// Whether the queue is FIFO (its URL ends in `.fifo`) or standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// FIFO: messages carry a group id and a deduplication id.
    Fifo,
    /// Standard: neither id is sent.
    Standard,
}

impl QueueKind {
    /// The kind named by a queue URL.
    pub fn of_url(url: &str) -> Self {
        if url.ends_with(".fifo") {
            Self::Fifo
        } else {
            Self::Standard
        }
    }
}

/// One message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The JSON envelope.
    pub body: String,
    /// String message attributes, by name.
    pub attributes: Vec<(&'static str, String)>,
    /// FIFO `MessageGroupId`: ordering is kept within a group.
    pub group_id: String,
    /// FIFO `MessageDeduplicationId`.
    pub deduplication_id: String,
}

impl QueueMessage {
    /// The value of the attribute `name`, if the message has it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.as_str())
    }

    /// The size SQS counts against its limit: body, plus each attribute's name, type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }
}

/// Whether SQS can carry `text` in a message body or attribute: XML 1.0 characters only
/// (tab, newline, carriage return, U+0020..U+D7FF, U+E000..U+FFFD, U+10000 and above).
pub fn can_carry_text(text: &str) -> bool {
    text.chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
}

/// Whether SQS can carry a JSON body. Valid JSON cannot hold raw control characters, so only the
/// two noncharacters need looking for. Two single-character searches, because each runs as a
/// byte search (memchr on the character's last UTF-8 byte, which ASCII never contains), while a
/// search for either of two characters decodes every character: 16 KiB in ~1 µs instead of ~15.
pub fn can_carry_body(json: &str) -> bool {
    !json.contains('\u{FFFE}') && !json.contains('\u{FFFF}')
}

/// `id` if SQS accepts it as a FIFO group or deduplication id (1 to 128 visible ASCII
/// characters); otherwise `{prefix}:` and the hex SHA-256 of `id`, which always fits and keeps
/// equal inputs equal.
pub fn fifo_id(prefix: &str, id: &str) -> String {
    let fits =
        !id.is_empty() && id.len() <= SQS_MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        id.to_owned()
    } else {
        format!(
            "{prefix}:sha256:{}",
            hex::encode(Sha256::digest(id.as_bytes()))
        )
    }
}

/// Why a message was not published. The sender must retry: this always answers 503.
#[derive(Debug, thiserror::Error)]
#[error("SQS did not accept the message: {detail}")]
pub struct PublishError {
    detail: String,
}

impl PublishError {
    /// An error with a description of what failed (never the message body).
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

/// Sends messages to the queue. `Ok` means the queue has durably accepted the message.
pub trait Publisher {
    /// Sends one message.
    fn publish(
        &self,
        message: &QueueMessage,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// Why SQS refused one entry of a batch (the entry's `Failed` result, never its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// SQS's error code, e.g. `InternalError`.
    pub code: String,
    /// Whether SQS blames the request (retrying the same entry will fail again) rather than
    /// itself.
    pub sender_fault: bool,
}

/// Entry error codes that blame the message itself: sending it again can never succeed.
const PERMANENT_ENTRY_ERRORS: [&str; 5] = [
    "InvalidMessageContents",
    "MessageTooLong",
    "InvalidParameterValue",
    "InvalidAttributeName",
    "InvalidAttributeValue",
];

impl EntryFailure {
    /// Whether retrying can never succeed: SQS blames the entry's contents or attributes. Any
    /// other failure (throttling, KMS or permission trouble, SQS's own errors, codes this list
    /// doesn't know) is worth retrying, since giving up would lose the event.
    pub fn is_permanent(&self) -> bool {
        self.sender_fault && PERMANENT_ENTRY_ERRORS.contains(&self.code.as_str())
    }
}

/// Sends messages to the queue in batches. `Ok` holds one result per message, in order: each
/// `Ok(())` means the queue durably accepted that message.
pub trait BatchPublisher {
    /// Sends at most [`SQS_MAX_BATCH_ENTRIES`] messages, whose sizes add up to at most
    /// [`SQS_MAX_MESSAGE_BYTES`], in one call.
    fn publish_batch(
        &self,
        messages: &[&QueueMessage],
    ) -> impl Future<Output = Result<Vec<Result<(), EntryFailure>>, PublishError>> + Send;
}

/// The Amazon SQS publisher.
#[derive(Debug, Clone)]
pub struct SqsPublisher {
    client: Client,
    queue_url: String,
    kind: QueueKind,
}

/// SQS call limits; see the module docs for why these values.
pub fn sqs_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// SQS retry policy: the SDK's standard mode, three attempts in all.
pub fn sqs_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(3)
}

impl SqsPublisher {
    /// A publisher to `queue_url` with an already configured client.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        Self {
            client,
            kind: QueueKind::of_url(&queue_url),
            queue_url,
        }
    }

    /// A publisher from an AWS SDK configuration made by [`sdk_config`].
    pub fn from_sdk_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }
}

/// The AWS SDK configuration every hookrelay client uses: `loader` (the environment, as the SDK
/// reads it: region, credentials, `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL`; tests pin these)
/// with hookrelay's timeouts and retries applied on top. The one place they are applied; load it
/// once per process and build every client from it.
pub async fn sdk_config(loader: aws_config::ConfigLoader) -> aws_config::SdkConfig {
    loader
        .timeout_config(sqs_timeouts())
        .retry_config(sqs_retries())
        .load()
        .await
}

impl Publisher for SqsPublisher {
    async fn publish(&self, message: &QueueMessage) -> Result<(), PublishError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .set_message_attributes(Some(sqs_attributes(message)?));
        if self.kind == QueueKind::Fifo {
            request = request
                .message_group_id(&message.group_id)
                .message_deduplication_id(&message.deduplication_id);
        }
        request
            .send()
            .await
            .map(drop)
            .map_err(|error| PublishError::new(DisplayErrorContext(error).to_string()))
    }
}

/// `message`'s attributes as SQS string attributes.
fn sqs_attributes(
    message: &QueueMessage,
) -> Result<HashMap<String, MessageAttributeValue>, PublishError> {
    message
        .attributes
        .iter()
        .map(|(name, value)| {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|error| PublishError::new(format!("attribute {name}: {error}")))?;
            Ok(((*name).to_owned(), attribute))
        })
        .collect()
}

impl BatchPublisher for SqsPublisher {
    async fn publish_batch(
        &self,
        messages: &[&QueueMessage],
    ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
        let mut entries = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(&message.body)
                .set_message_attributes(Some(sqs_attributes(message)?));
            if self.kind == QueueKind::Fifo {
                entry = entry
                    .message_group_id(&message.group_id)
                    .message_deduplication_id(&message.deduplication_id);
            }
            entries.push(
                entry
                    .build()
                    .map_err(|error| PublishError::new(format!("batch entry: {error}")))?,
            );
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| PublishError::new(DisplayErrorContext(error).to_string()))?;
        // An entry SQS lists in neither `Successful` nor `Failed` counts as failed: only an
        // explicit success may be treated as queued.
        let unreported = || EntryFailure {
            code: "NotReported".to_owned(),
            sender_fault: false,
        };
        let mut results = vec![Err(unreported()); messages.len()];
        let index = |id: &str| id.parse::<usize>().ok().filter(|&i| i < messages.len());
        for failed in output.failed() {
            if let Some(i) = index(failed.id()) {
                results[i] = Err(EntryFailure {
                    code: failed.code().to_owned(),
                    sender_fault: failed.sender_fault(),
                });
            }
        }
        for accepted in output.successful() {
            if let Some(i) = index(accepted.id()) {
                results[i] = Ok(());
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_kind_follows_the_url() {
        assert_eq!(
            QueueKind::of_url("https://sqs.us-east-1.amazonaws.com/1/events.fifo"),
            QueueKind::Fifo
        );
        assert_eq!(
            QueueKind::of_url("https://sqs.us-east-1.amazonaws.com/1/events"),
            QueueKind::Standard
        );
    }

    #[test]
    fn fifo_ids_pass_through_when_valid_and_hash_otherwise() {
        assert_eq!(fifo_id("engine", "engine:op-1:42"), "engine:op-1:42");
        let long = "x".repeat(129);
        for bad in [long.as_str(), "has space", "ümlaut", ""] {
            let id = fifo_id("engine", bad);
            assert!(id.starts_with("engine:sha256:") && id.len() <= 128, "{id}");
            assert_eq!(id, fifo_id("engine", bad), "stable");
        }
        assert_eq!(fifo_id("m", &"y".repeat(128)), "y".repeat(128));
        assert_ne!(fifo_id("m", "a b"), fifo_id("m", "a  b"));
    }

    #[test]
    fn sqs_text_rules() {
        assert!(can_carry_text("ORDER_MATCHED\t\n\r é 😀 \u{E000}"));
        for bad in ["\u{0}", "a\u{1}", "\u{B}", "\u{1F}", "\u{FFFE}", "\u{FFFF}"] {
            assert!(!can_carry_text(bad), "{bad:?}");
        }
        assert!(can_carry_body(r#"{"a":"é\u0000"}"#));
        assert!(!can_carry_body("{\"a\":\"\u{FFFF}\"}"));
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let m = QueueMessage {
            body: "12345".into(),
            attributes: vec![("provider", "engine".into())],
            group_id: "g".into(),
            deduplication_id: "d".into(),
        };
        assert_eq!(
            m.size(),
            5 + "provider".len() + "String".len() + "engine".len()
        );
    }
}
