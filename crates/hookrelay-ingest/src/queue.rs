//! The queue side's contracts: the [`Publisher`] the receiver's pipeline sends one message
//! through, the [`BatchPublisher`] the bridge sends batches through, what their failures say, and
//! whether a queue is FIFO. Implemented for Amazon SQS in `hookrelay-aws`, in memory in the
//! test kit. No I/O here.

use crate::routed::QueueMessage;

use std::time::Duration;

/// The longest one SQS send may take, the SDK's retries included (`hookrelay_aws::timeouts`):
/// with the store's calls it fits the receiver's 8 s function timeout.
pub const SQS_SEND_BOUND: Duration = Duration::from_secs(5);

/// The longest one SQS attempt may take (`hookrelay_aws::timeouts`): the SDK makes up to three
/// within [`SQS_SEND_BOUND`].
pub const SQS_ATTEMPT_BOUND: Duration = Duration::from_secs(2);

/// How long SQS FIFO remembers a deduplication id after a send it accepted.
pub const FIFO_DEDUPLICATION_WINDOW: Duration = Duration::from_secs(300);

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

/// A send SQS accepted, and what it cost on the way: attempts inside it (the SDK retries) whose
/// answer was lost, each of which SQS may have queued too. On a FIFO queue the deduplication id
/// absorbs those copies; on a standard queue each can be a second message with the same envelope
/// `id`, so each is counted (`AmbiguousPublish`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Attempts before the one that succeeded that may have queued the message.
    pub ambiguous_attempts: u32,
}

/// Why a message was not published. The sender must retry: this always answers 503.
#[derive(Debug, thiserror::Error)]
#[error("SQS did not accept the message: {detail}")]
pub struct PublishError {
    detail: String,
    permanent: bool,
    ambiguous_attempts: u32,
}

impl PublishError {
    /// An error with a description of what failed (never the message body), after which the
    /// message is known not to be queued (SQS answered with an error, or nothing was sent).
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: false,
            ambiguous_attempts: 0,
        }
    }

    /// An error retrying will not fix without someone changing something: access denied, a
    /// queue that does not exist, a disabled or missing KMS key.
    pub fn permanent(detail: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::new(detail)
        }
    }

    /// An error after which SQS may still have queued the message: the request went out and
    /// no answer came back (a timeout, a connection lost mid-call, an unreadable response, a
    /// 5xx). On a FIFO queue the deduplication id absorbs the sender's retry within five
    /// minutes; on a standard queue the retry can make a second copy, with the same envelope
    /// `id` (counted as `AmbiguousPublish`).
    pub fn ambiguous(detail: impl Into<String>) -> Self {
        Self {
            ambiguous_attempts: 1,
            ..Self::new(detail)
        }
    }

    /// This error, after `attempts` attempts inside the same send that may have queued the
    /// message (its own failure included when it was ambiguous): each is a possible copy.
    pub fn with_ambiguous_attempts(mut self, attempts: u32) -> Self {
        self.ambiguous_attempts = self.ambiguous_attempts.max(attempts);
        self
    }

    /// Whether SQS may have queued the message despite the error ([`PublishError::ambiguous`]).
    pub fn is_ambiguous(&self) -> bool {
        self.ambiguous_attempts > 0
    }

    /// How many attempts of this send may have queued the message: the possible copies.
    pub fn ambiguous_attempts(&self) -> u32 {
        self.ambiguous_attempts
    }

    /// Whether retrying cannot succeed until someone changes the queue, its key or the
    /// caller's permissions. (The receiver answers 503 either way; the bridge stops after a
    /// bounded time.)
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// Sends messages to the queue. `Ok` means the queue has durably accepted the message.
pub trait Publisher {
    /// Sends one message, taking at most `within` (at most [`SQS_SEND_BOUND`]; less when the
    /// invocation's time budget says so, `crate::budget`).
    fn publish(
        &self,
        message: &QueueMessage,
        within: Duration,
    ) -> impl Future<Output = Result<Sent, PublishError>> + Send;
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

/// Error codes, of a whole call or of one batch entry, that no retry fixes until someone changes
/// the queue, its KMS key or the caller's permissions.
pub const REFUSAL_CODES: [&str; 8] = [
    "AccessDenied",
    "AccessDeniedException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "KMS.DisabledException",
    "KMS.NotFoundException",
    "KMS.InvalidStateException",
    "KMS.AccessDeniedException",
];

/// Entry error codes that blame the message itself: sending it again can never succeed.
const PERMANENT_ENTRY_ERRORS: [&str; 5] = [
    "InvalidMessageContents",
    "MessageTooLong",
    "InvalidParameterValue",
    "InvalidAttributeName",
    "InvalidAttributeValue",
];

/// The code of a batch entry SQS listed as successful without an answer that proves it arrived
/// as sent (`hookrelay_aws::sqs::check_answer`): retried, and counted as an ambiguous attempt.
pub const UNCONFIRMED_ENTRY: &str = "UnconfirmedAnswer";

impl EntryFailure {
    /// Whether SQS may hold the entry although it is not confirmed: it was listed as successful
    /// with an answer that proves nothing ([`UNCONFIRMED_ENTRY`]).
    pub fn is_ambiguous(&self) -> bool {
        self.code == UNCONFIRMED_ENTRY
    }

    /// Whether retrying can never succeed: SQS blames the entry's contents or attributes. Any
    /// other failure (throttling, KMS or permission trouble, SQS's own errors, codes this list
    /// doesn't know) is worth retrying, since giving up would lose the event.
    pub fn is_permanent(&self) -> bool {
        self.sender_fault && PERMANENT_ENTRY_ERRORS.contains(&self.code.as_str())
    }

    /// Whether SQS refuses the entry for a reason that lasts until someone changes the queue,
    /// its KMS key or the caller's permissions ([`REFUSAL_CODES`]; SendMessageBatch reports
    /// KMS trouble per entry). Still retried, since the message itself is fine, but a bridge
    /// whose every entry is refused stops after a bounded time.
    pub fn is_refusal(&self) -> bool {
        REFUSAL_CODES.contains(&self.code.as_str())
    }
}

/// Sends messages to the queue in batches. `Ok` holds one result per message, in order: each
/// `Ok(())` means the queue durably accepted that message.
pub trait BatchPublisher {
    /// Sends at most [`crate::routed::SQS_MAX_BATCH_ENTRIES`] messages, whose sizes add up to at most
    /// [`crate::routed::SQS_MAX_MESSAGE_BYTES`], in one call.
    fn publish_batch(
        &self,
        messages: &[&QueueMessage],
    ) -> impl Future<Output = Result<Vec<Result<(), EntryFailure>>, PublishError>> + Send;
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
    fn only_failures_that_blame_the_entry_are_permanent() {
        let failure = |code: &str, sender_fault| EntryFailure {
            code: code.to_owned(),
            sender_fault,
        };
        assert!(failure("InvalidMessageContents", true).is_permanent());
        assert!(!failure("InvalidMessageContents", false).is_permanent());
        assert!(!failure("KMS.DisabledException", true).is_permanent());
        assert!(!failure("InternalError", false).is_permanent());
        assert!(failure("KMS.DisabledException", true).is_refusal());
        assert!(!failure("InternalError", false).is_refusal());
        // An answer that proves nothing: retried, and counted as possibly queued.
        assert!(failure(UNCONFIRMED_ENTRY, false).is_ambiguous());
        assert!(!failure(UNCONFIRMED_ENTRY, false).is_permanent());
        assert!(!failure("InternalError", false).is_ambiguous());
    }
}
