//! The Amazon SQS publishers: one message per call for the receiver ([`Publisher`]), and
//! `SendMessageBatch` with per-entry results for the stream bridge ([`BatchPublisher`], with the
//! `batch` feature). The only I/O in the queue path; calls are bounded by [`crate::sdk_config`].
//! Failures say whether SQS may have queued the message anyway (`PublishError::is_ambiguous`),
//! and every send counts its attempts that may have (`Sent`, [`AmbiguousAttempts`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(feature = "batch")]
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
#[cfg(feature = "batch")]
use hookrelay_ingest::queue::{BatchPublisher, EntryFailure};
use hookrelay_ingest::queue::{PublishError, Publisher, QueueKind, REFUSAL_CODES, Sent};
use hookrelay_ingest::routed::QueueMessage;

/// The Amazon SQS publisher.
#[derive(Debug, Clone)]
pub struct SqsPublisher {
    client: Client,
    queue_url: String,
    kind: QueueKind,
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

    /// A publisher from an AWS SDK configuration made by [`crate::sdk_config`].
    pub fn from_sdk_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }
}

impl Publisher for SqsPublisher {
    async fn publish(&self, message: &QueueMessage) -> Result<Sent, PublishError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .set_message_attributes(Some(sqs_attributes(message)?));
        // On a standard queue too the SDK retries (three attempts in 5 s): a single attempt was
        // tried and measured (RELIABILITY.md, 1b), and at 20% faults it turned a sender's three
        // attempts into three 503s often enough to lose events. The cost: a retry inside the SDK
        // after an attempt whose answer was lost can make a second copy, with the same envelope
        // `id`; the interceptor counts every such attempt, so `AmbiguousPublish` counts it.
        if self.kind == QueueKind::Fifo {
            request = request
                .message_group_id(&message.group_id)
                .message_deduplication_id(&message.deduplication_id);
        }
        let attempts = AmbiguousAttempts::default();
        let sent = request
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Sent {
                ambiguous_attempts: attempts.count(),
            }),
            Err(error) => Err(publish_error(error).with_ambiguous_attempts(attempts.count())),
        }
    }
}

/// What the queue's own attributes say against the receiver's configuration
/// ([`SqsPublisher::check_queue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueCheck {
    /// The queue exists, is FIFO exactly when its URL says so, and holds the largest message.
    Matches,
    /// No answer that can be judged (a timeout, throttling, a 5xx, no permission to read the
    /// attributes): the receiver starts anyway, and a real problem shows on the first send.
    Unverified(String),
    /// The queue can't take what the receiver sends; every delivery would be answered 503. The
    /// text names the variable to fix.
    Mismatch(String),
}

impl SqsPublisher {
    /// Reads the queue's `FifoQueue` and `MaximumMessageSize` (one `GetQueueAttributes`) and
    /// checks them against its URL and `largest_message` (the largest body the receiver accepts
    /// plus the envelope's allowance). Made once at init, the call also opens the connection
    /// (the TLS handshake) the first delivery then reuses.
    pub async fn check_queue(&self, largest_message: usize) -> QueueCheck {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::FifoQueue)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(error) => {
                let code = error
                    .as_service_error()
                    .and_then(ProvideErrorMetadata::code)
                    .unwrap_or_default()
                    .to_owned();
                let detail = DisplayErrorContext(error).to_string();
                return if [
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "QueueDoesNotExist",
                ]
                .contains(&code.as_str())
                {
                    QueueCheck::Mismatch(format!(
                        "HOOKRELAY_QUEUE_URL names no queue: SQS answered {code}"
                    ))
                } else {
                    QueueCheck::Unverified(detail)
                };
            }
        };
        let attribute = |name: &QueueAttributeName| {
            output
                .attributes()
                .and_then(|attributes| attributes.get(name))
                .map(String::as_str)
        };
        let fifo = attribute(&QueueAttributeName::FifoQueue) == Some("true");
        if fifo != (self.kind == QueueKind::Fifo) {
            let (url, queue) = if fifo {
                ("does not end in .fifo", "a FIFO queue")
            } else {
                ("ends in .fifo", "a standard queue")
            };
            return QueueCheck::Mismatch(format!("HOOKRELAY_QUEUE_URL {url} but names {queue}"));
        }
        match attribute(&QueueAttributeName::MaximumMessageSize).map(str::parse::<usize>) {
            Some(Ok(limit)) if limit < largest_message => QueueCheck::Mismatch(format!(
                "the queue's MaximumMessageSize is {limit} bytes, but HOOKRELAY_MAX_BODY_BYTES \
                 and the envelope need up to {largest_message}: raise the queue's limit (the \
                 template sets 1048576) or lower HOOKRELAY_MAX_BODY_BYTES"
            )),
            Some(Ok(_)) => QueueCheck::Matches,
            _ => QueueCheck::Unverified("the queue did not say its MaximumMessageSize".to_owned()),
        }
    }
}

/// Counts the attempts of one send whose request may have reached SQS while no clear answer came
/// back: a timeout, a connection lost or refused (which can't be told from lost after writing),
/// an unreadable response, a 5xx. Each may have queued the message, so each is a possible copy
/// on a standard queue, whether the send succeeded on a later attempt or failed in the end. The
/// SDK runs `read_after_attempt` after every attempt, a timed-out one included.
#[derive(Debug, Clone, Default)]
pub struct AmbiguousAttempts(Arc<AtomicU32>);

impl AmbiguousAttempts {
    /// The attempts counted so far.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for AmbiguousAttempts {
    fn name(&self) -> &'static str {
        "AmbiguousAttempts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ambiguous = match context.output_or_error() {
            None | Some(Ok(_)) => false,
            Some(Err(error)) => {
                error.is_timeout_error()
                    || error.is_response_error()
                    || error.is_connector_error()
                    || context
                        .response()
                        .is_some_and(|response| response.status().as_u16() >= 500)
            }
        };
        if ambiguous {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// An SDK error as a [`PublishError`]: permanent when SQS names one of [`REFUSAL_CODES`];
/// ambiguous when the request may have reached SQS and no clear refusal came back (a timeout, a
/// connection lost, an unreadable response, a 5xx); otherwise a definite refusal.
fn publish_error<E, R>(error: SdkError<E, R>) -> PublishError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let code = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code);
    let permanent = code.is_some_and(|code| REFUSAL_CODES.contains(&code));
    let ambiguous = match &error {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(service) => service.raw().status_code() >= 500,
        // A dispatch failure can't tell a refused connection from one lost after the request
        // was written, so it counts as ambiguous: the count is an upper bound on extra copies.
        _ => true,
    };
    let detail = DisplayErrorContext(error).to_string();
    if permanent {
        PublishError::permanent(detail)
    } else if ambiguous {
        PublishError::ambiguous(detail)
    } else {
        PublishError::new(detail)
    }
}

/// The HTTP status of a raw response, for [`publish_error`].
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_sqs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
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

#[cfg(feature = "batch")]
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
            .map_err(publish_error)?;
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
