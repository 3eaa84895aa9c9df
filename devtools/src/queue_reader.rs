//! Reading a queue the user owns, for `hookrelay-dev forward` and `watch --queue`: receive,
//! check each message's relay signature (as the library's consumer does, before the body is
//! parsed), hand it to a [`Sink`] (a POST to a local handler, or the terminal), and delete it only
//! after the sink took it.
//!
//! What it guarantees (docs/getting-started.md, "The local lab"):
//! - A message the sink did not take (a 5xx, a refused connection, no answer within 30 s) stays
//!   in flight and is offered again after a backoff (1 s doubling to 30 s), as long as it takes,
//!   with its visibility extended meanwhile: it is received once, so a handler that is down for
//!   an hour costs no receives against the queue's redrive policy. Messages behind it wait, so a
//!   handler sees each market's events in order.
//! - A message the sink took is deleted. If that delete fails, its envelope id is remembered and
//!   a redelivery is deleted without a second POST. So each message is POSTed at least once, and
//!   exactly once when the handler answered 2xx, across restarts of the handler. Two cases can
//!   still repeat a POST the handler answered: `forward` itself stopped between the answer and
//!   the delete, or a delete failed and `forward` was restarted before the redelivery. Every POST
//!   carries the envelope id (`hookrelay-envelope-id`) for the handler to deduplicate on, as a
//!   POST the handler processed but never answered is sent again too.
//! - A message whose relay signature fails is never handed over, and never deleted: the queue's
//!   redrive policy moves it to the dead-letter queue (a warning at start when the queue has
//!   none). In a FIFO queue the rest of its group waits behind it, as for any FIFO consumer.
//! - A deleted queue, denied access or lost credentials end the command with an error at once,
//!   on any call; any other failure to receive is retried, and after 2 minutes of nothing but
//!   failures it ends the command too.
//! - Ctrl-C or SIGTERM: the messages received and not yet taken are handed back at once.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use hookrelay::Envelope;
use hookrelay::consumer::verified_envelope;
use hookrelay::relay::{self, RelayTrust};

use crate::http_client::HttpClient;
use crate::signals::Stop;

/// The header carrying the envelope id on every POST `forward` makes.
pub const ENVELOPE_ID_HEADER: &str = "hookrelay-envelope-id";
/// How long a received message stays hidden while the sink works on it; extended while it waits.
const VISIBILITY_SECS: i32 = 120;
/// How long `forward` waits for the handler's answer.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest backoff before a message comes back.
const MAX_BACKOFF_SECS: u64 = 30;
/// How long receiving may fail without a success before the command gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);
/// How many envelope ids whose delete failed are remembered.
const FAILED_DELETES_CAPACITY: usize = 100_000;

/// A message whose relay signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedMessage {
    /// The envelope.
    pub envelope: Envelope,
    /// The body, as sealed.
    pub body: String,
    /// The string message attributes.
    pub attributes: BTreeMap<String, String>,
}

/// Where verified messages go.
pub trait Sink {
    /// Takes one message: `Ok` (what happened) lets it be deleted, `Err` (why not) keeps it.
    fn take(
        &mut self,
        message: &VerifiedMessage,
    ) -> impl std::future::Future<Output = Result<String, String>>;
}

/// POSTs each envelope to a local handler: the body as sealed, the envelope id in
/// [`ENVELOPE_ID_HEADER`], and the relay signature as Standard Webhooks headers (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`: the relay signature is Standard Webhooks' `v1a`
/// over exactly these), so a handler can check it with a Standard Webhooks library and the relay
/// public key. The provider's own signature, when there is one, is in `hookrelay-signature`.
pub struct PostSink {
    /// The handler's URL.
    pub url: String,
    /// The client.
    pub client: HttpClient,
}

impl Sink for PostSink {
    async fn take(&mut self, message: &VerifiedMessage) -> Result<String, String> {
        let attribute = |name: &str| message.attributes.get(name).cloned().unwrap_or_default();
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            (ENVELOPE_ID_HEADER, message.envelope.id.clone()),
            ("webhook-id", attribute(relay::attributes::RELAY_ID)),
            (
                "webhook-timestamp",
                attribute(relay::attributes::RELAY_TIMESTAMP),
            ),
            (
                "webhook-signature",
                attribute(relay::attributes::RELAY_SIGNATURE),
            ),
        ];
        if let Some(signature) = message
            .attributes
            .get(hookrelay::envelope::attributes::SIGNATURE)
        {
            headers.push(("hookrelay-signature", signature.clone()));
        }
        let started = Instant::now();
        let answer = self
            .client
            .request(
                "POST",
                &self.url,
                &headers,
                message.body.clone(),
                POST_TIMEOUT,
            )
            .await;
        let took = started.elapsed().as_millis();
        match answer {
            Ok((status, _)) if (200..300).contains(&status) => {
                Ok(format!("→ {status} ({took} ms)"))
            }
            Ok((status, body)) => Err(format!(
                "→ {status} {}",
                body.chars().take(200).collect::<String>()
            )),
            Err(problem) => Err(format!("→ {problem}")),
        }
    }
}

/// Whether a failed SQS call can't succeed by retrying: the queue is gone, access is denied, or
/// the credentials are missing, expired or wrong.
fn is_fatal(code: Option<&str>, text: &str) -> bool {
    const FATAL: [&str; 9] = [
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "InvalidSecurity",
        "SignatureDoesNotMatch",
    ];
    code.is_some_and(|code| FATAL.contains(&code))
        || text.contains("no credentials")
        || text.contains("credentials provider")
        || text.contains("failed to load credentials")
}

/// An SQS call's failure on `queue_url` as the command reports it: `Err` when it is fatal (see
/// [`is_fatal`]), which ends the command, else the text to warn with.
fn sqs_failure<E, R>(
    queue_url: &str,
    call: &str,
    error: &aws_sdk_sqs::error::SdkError<E, R>,
) -> Result<String, String>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = format!("{call}: {}", DisplayErrorContext(error));
    if is_fatal(error.code(), &text) {
        Err(format!("{queue_url}: {text}"))
    } else {
        Ok(text)
    }
}

/// Checks the queue answers (an error for a missing queue or missing credentials, before anything
/// is received) and warns when it has no redrive policy.
async fn check_queue(sqs: &Client, queue_url: &str) -> Result<(), String> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|error| {
            sqs_failure(queue_url, "GetQueueAttributes", &error).unwrap_or_else(|fatal| fatal)
        })?;
    let redrive = answer
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy));
    if redrive.is_none() {
        eprintln!(
            "hookrelay-dev: {queue_url} has no redrive policy: a message whose relay signature \
             fails stays in the queue (and holds its FIFO group) until you delete it"
        );
    }
    Ok(())
}

/// Receives from `queue_url` until `stop`, handing each verified message to `sink`; see the
/// module docs for what it guarantees. Progress and problems go to stderr.
pub async fn run(
    sqs: &Client,
    queue_url: &str,
    trust: &RelayTrust,
    sink: &mut impl Sink,
    stop: &Stop,
) -> Result<(), String> {
    check_queue(sqs, queue_url).await?;
    let fifo = queue_url.ends_with(".fifo");
    let mut failed_deletes: HashSet<String> = HashSet::new();
    let mut failures_since = None::<Instant>;
    while !stop.requested() {
        let receive = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .visibility_timeout(VISIBILITY_SECS)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send();
        let batch = tokio::select! {
            batch = receive => batch,
            () = stop.wait() => break,
        };
        let batch = match batch {
            Ok(batch) => {
                failures_since = None;
                batch
            }
            Err(error) => {
                let text = sqs_failure(queue_url, "ReceiveMessage", &error)?;
                let since = *failures_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    return Err(format!(
                        "{queue_url}: failing for {} s: {text}",
                        GIVE_UP_AFTER.as_secs()
                    ));
                }
                eprintln!("hookrelay-dev: {text}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut batch = InFlight {
            messages: batch.messages().iter().cloned().collect(),
            hidden_at: Instant::now(),
        };
        let mut refused_groups: HashSet<String> = HashSet::new();
        while let Some(message) = batch.messages.pop_front() {
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            let receipt = message.receipt_handle().unwrap_or_default().to_owned();
            if stop.requested() {
                batch.messages.push_front(message);
                return batch.hand_back(sqs, queue_url).await;
            }
            if fifo && group.as_ref().is_some_and(|g| refused_groups.contains(g)) {
                // Behind a refused message of its group: it waits, as the queue would hold it.
                InFlight::single(message).hand_back(sqs, queue_url).await?;
                continue;
            }
            let attributes = string_attributes(&message);
            let body = message.body().unwrap_or_default();
            let envelope = match verified_envelope(
                trust,
                body,
                &attributes,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ) {
                Ok(envelope) => envelope,
                Err(problem) => {
                    eprintln!(
                        "hookrelay-dev: message {} NOT handed over: {problem}; left in the queue \
                         for its redrive policy",
                        message.message_id().unwrap_or("?")
                    );
                    if let Some(group) = group {
                        refused_groups.insert(group);
                    }
                    continue;
                }
            };
            let id = envelope.id.clone();
            if !failed_deletes.contains(&id) {
                let verified = VerifiedMessage {
                    envelope,
                    body: body.to_owned(),
                    attributes,
                };
                let mut backoff_secs = 1;
                loop {
                    batch.keep_hidden(sqs, queue_url, &receipt).await?;
                    match sink.take(&verified).await {
                        Ok(_) => break,
                        Err(problem) => eprintln!(
                            "hookrelay-dev: not delivered {problem}: kept in flight, offered \
                             again in {backoff_secs} s"
                        ),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(backoff_secs)) => {}
                        () = stop.wait() => {
                            batch.messages.push_front(message);
                            return batch.hand_back(sqs, queue_url).await;
                        }
                    }
                    backoff_secs = (backoff_secs * 2).min(MAX_BACKOFF_SECS);
                }
            }
            match sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(&receipt)
                .send()
                .await
            {
                Ok(_) => {
                    failed_deletes.remove(&id);
                }
                Err(error) => {
                    let text = sqs_failure(queue_url, "DeleteMessage", &error)?;
                    eprintln!(
                        "hookrelay-dev: {text}; its redelivery will be deleted without a second POST"
                    );
                    if failed_deletes.len() >= FAILED_DELETES_CAPACITY {
                        failed_deletes.clear();
                    }
                    failed_deletes.insert(id);
                }
            }
        }
    }
    Ok(())
}

/// The messages of one receive not yet taken, and when their visibility was last set.
struct InFlight {
    messages: VecDeque<Message>,
    hidden_at: Instant,
}

impl InFlight {
    fn single(message: Message) -> Self {
        Self {
            messages: VecDeque::from([message]),
            hidden_at: Instant::now(),
        }
    }

    /// Extends the visibility of `current` and every message still waiting, once it has run for
    /// a quarter of [`VISIBILITY_SECS`]: a slow or absent handler never lets them reappear.
    async fn keep_hidden(
        &mut self,
        sqs: &Client,
        queue_url: &str,
        current: &str,
    ) -> Result<(), String> {
        if self.hidden_at.elapsed() < Duration::from_secs(VISIBILITY_SECS.unsigned_abs().into()) / 4
        {
            return Ok(());
        }
        let receipts =
            std::iter::once(current).chain(self.messages.iter().filter_map(|m| m.receipt_handle()));
        change_visibility(sqs, queue_url, receipts, VISIBILITY_SECS).await?;
        self.hidden_at = Instant::now();
        Ok(())
    }

    /// Makes every waiting message visible again at once.
    async fn hand_back(self, sqs: &Client, queue_url: &str) -> Result<(), String> {
        let receipts = self.messages.iter().filter_map(|m| m.receipt_handle());
        change_visibility(sqs, queue_url, receipts, 0).await
    }
}

/// Sets the visibility of the messages with `receipts` (at most 10) to `secs`; an error only
/// when it is fatal, a warning otherwise (they reappear when their visibility ends).
async fn change_visibility<'a>(
    sqs: &Client,
    queue_url: &str,
    receipts: impl Iterator<Item = &'a str>,
    secs: i32,
) -> Result<(), String> {
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = receipts
        .enumerate()
        .filter_map(|(n, receipt)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(receipt)
                .visibility_timeout(secs)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    match sqs
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(answer) if answer.failed().is_empty() => Ok(()),
        Ok(answer) => {
            eprintln!(
                "hookrelay-dev: ChangeMessageVisibilityBatch: {} entr(ies) failed ({}); they \
                 reappear when their visibility timeout ends",
                answer.failed().len(),
                answer
                    .failed()
                    .iter()
                    .map(|f| f.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Err(error) => {
            let text = sqs_failure(queue_url, "ChangeMessageVisibilityBatch", &error)?;
            eprintln!(
                "hookrelay-dev: {text}; the messages reappear when their visibility timeout ends"
            );
            Ok(())
        }
    }
}

/// A received message's string attributes.
pub fn string_attributes(message: &Message) -> BTreeMap<String, String> {
    message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_failures_are_fatal() {
        assert!(is_fatal(
            Some("AWS.SimpleQueueService.NonExistentQueue"),
            ""
        ));
        assert!(is_fatal(Some("InvalidClientTokenId"), ""));
        assert!(is_fatal(
            None,
            "dispatch failure: no credentials in the environment"
        ));
        assert!(!is_fatal(Some("ThrottlingException"), "rate exceeded"));
        assert!(!is_fatal(None, "dispatch failure: connection refused"));
    }

    #[test]
    fn a_message_verifies_only_with_its_own_relay_signature() {
        let signer = crate::relay_keys::signer();
        let body = r#"{"version":1,"id":"rekko:1","provider":"rekko","type":"news","market_id":null,"sequence":null,"delivery_id":null,"occurred_at":null,"received_at":"2026-02-18T23:00:00.000Z","data":{"type":"news"}}"#;
        let now = 1_790_000_000;
        let sealed = signer.sign("rekko:1", now, body);
        let attributes: BTreeMap<String, String> = [
            (relay::attributes::RELAY_ID, sealed.id),
            (relay::attributes::RELAY_TIMESTAMP, sealed.timestamp),
            (relay::attributes::RELAY_SIGNATURE, sealed.signatures),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let trust = crate::relay_keys::trust();
        assert_eq!(
            verified_envelope(&trust, body, &attributes, now)
                .unwrap()
                .id,
            "rekko:1"
        );
        let changed = body.replace("news\"}", "new\"}");
        assert!(verified_envelope(&trust, &changed, &attributes, now).is_err());
        let mut unsigned = attributes.clone();
        unsigned.remove(relay::attributes::RELAY_SIGNATURE);
        assert!(verified_envelope(&trust, body, &unsigned, now).is_err());
    }
}
