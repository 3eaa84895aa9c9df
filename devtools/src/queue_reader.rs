//! Reading a queue the user owns, for `hookrelay-dev forward` and `watch --queue`: receive,
//! check each message's relay signature (as the library's consumer does, before the body is
//! parsed), hand it to a [`Sink`] (a POST to a local handler, or the terminal), and delete it only
//! after the sink took it.
//!
//! What it guarantees (docs/getting-started.md, "Real events on your laptop"):
//! - A message the sink did not take (a 5xx, a refused connection, no answer within 30 s) stays
//!   in the queue and comes back after a backoff (1 s doubling to 30 s); in a FIFO queue the
//!   rest of its message group in the same batch is handed back with it, so a handler sees each
//!   market's events in order.
//! - A message the sink took is deleted; if the delete fails, its envelope id is remembered and
//!   a redelivery is deleted without a second POST. So each message is POSTed at least once, and
//!   exactly once when the handler answered 2xx, across restarts of the handler. A POST the
//!   handler processed but never answered is sent again: it carries the envelope id
//!   (`hookrelay-envelope-id`) for the handler to deduplicate on.
//! - A message whose relay signature fails is never handed over, and never deleted: it reaches
//!   the dead-letter queue through the queue's redrive policy.
//! - A deleted queue, denied access or lost credentials end the command with an error at once;
//!   any other failure to receive is retried, and after 2 minutes of nothing but failures it
//!   ends the command too.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use hookrelay::Envelope;
use hookrelay::relay::{self, ReceivedRelaySignature, RelayTrust};
use tokio::sync::Notify;

use crate::http_client::HttpClient;

/// The header carrying the envelope id on every POST `forward` makes.
pub const ENVELOPE_ID_HEADER: &str = "hookrelay-envelope-id";
/// How long a received message stays hidden while the sink works on it.
const VISIBILITY_SECS: i32 = 60;
/// How long `forward` waits for the handler's answer.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest backoff before a message comes back.
const MAX_BACKOFF_SECS: i32 = 30;
/// How long receiving may fail without a success before the command gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);
/// How many delivered envelope ids are remembered.
const DELIVERED_CAPACITY: usize = 100_000;

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

/// Checks `body`'s relay signature against `trust` (attributes as the queue delivered them),
/// then decodes the envelope and checks the signature was made for its id.
pub fn verify(
    trust: &RelayTrust,
    body: &str,
    attributes: &BTreeMap<String, String>,
    now: i64,
) -> Result<Envelope, String> {
    let attribute = |name: &str| attributes.get(name).map(String::as_str);
    let verified = trust
        .verify(
            ReceivedRelaySignature {
                id: attribute(relay::attributes::RELAY_ID),
                timestamp: attribute(relay::attributes::RELAY_TIMESTAMP),
                signatures: attribute(relay::attributes::RELAY_SIGNATURE),
            },
            body,
            now,
        )
        .map_err(|e| format!("relay signature refused: {e}"))?;
    let envelope = Envelope::from_json(body).map_err(|e| format!("not an envelope: {e}"))?;
    verified
        .check_id(&envelope.id)
        .map_err(|e| format!("relay signature refused: {e}"))?;
    Ok(envelope)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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

/// A stop flag set by Ctrl-C or SIGTERM, checked between messages.
#[derive(Clone, Default)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Stop {
    /// A flag that Ctrl-C and SIGTERM set.
    pub fn on_signals() -> Self {
        let stop = Self::default();
        let flag = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut terminate) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            flag.requested.store(true, Ordering::SeqCst);
            flag.notify.notify_waiters();
        });
        stop
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Resolves when a stop is asked for.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        if !self.requested() {
            notified.await;
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

/// Receives from `queue_url` until `stop`, handing each verified message to `sink`; see the
/// module docs for what it guarantees. Progress and problems go to stderr.
pub async fn run(
    sqs: &Client,
    queue_url: &str,
    trust: &RelayTrust,
    sink: &mut impl Sink,
    stop: &Stop,
) -> Result<(), String> {
    let fifo = queue_url.ends_with(".fifo");
    let mut delivered: HashSet<String> = HashSet::new();
    let mut failures_since = None::<Instant>;
    let mut backoff_secs = 1;
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
                let code = error.code().map(str::to_owned);
                let text = DisplayErrorContext(&error).to_string();
                if is_fatal(code.as_deref(), &text) {
                    return Err(format!("ReceiveMessage on {queue_url}: {text}"));
                }
                let since = *failures_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    return Err(format!(
                        "ReceiveMessage on {queue_url} failed for {} s: {text}",
                        GIVE_UP_AFTER.as_secs()
                    ));
                }
                eprintln!("hookrelay-dev: ReceiveMessage failed, retrying: {text}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut held_groups: HashSet<String> = HashSet::new();
        for message in batch.messages() {
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            let receipt = message.receipt_handle().unwrap_or_default();
            if fifo && group.as_ref().is_some_and(|g| held_groups.contains(g)) {
                hand_back(sqs, queue_url, receipt, backoff_secs).await;
                continue;
            }
            if stop.requested() {
                hand_back(sqs, queue_url, receipt, 0).await;
                continue;
            }
            let attributes = string_attributes(message);
            let body = message.body().unwrap_or_default();
            let envelope = match verify(trust, body, &attributes, unix_now()) {
                Ok(envelope) => envelope,
                Err(problem) => {
                    eprintln!(
                        "hookrelay-dev: message {} NOT handed over: {problem}; left in the queue \
                         (its redrive policy moves it to the dead-letter queue)",
                        message.message_id().unwrap_or("?")
                    );
                    if let Some(group) = group {
                        held_groups.insert(group);
                    }
                    continue;
                }
            };
            let taken = if delivered.contains(&envelope.id) {
                Ok("already delivered: deleted without a second POST".to_owned())
            } else {
                let verified = VerifiedMessage {
                    envelope,
                    body: body.to_owned(),
                    attributes,
                };
                let id = verified.envelope.id.clone();
                let taken = sink.take(&verified).await;
                if taken.is_ok() {
                    if delivered.len() >= DELIVERED_CAPACITY {
                        delivered.clear();
                    }
                    delivered.insert(id);
                }
                taken
            };
            match taken {
                Ok(_) => {
                    backoff_secs = 1;
                    if let Err(error) = sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                    {
                        eprintln!(
                            "hookrelay-dev: DeleteMessage failed ({}); a redelivery will be \
                             deleted without a second POST",
                            DisplayErrorContext(&error)
                        );
                    }
                }
                Err(problem) => {
                    eprintln!(
                        "hookrelay-dev: not delivered {problem}: kept in the queue, back in {backoff_secs} s"
                    );
                    hand_back(sqs, queue_url, receipt, backoff_secs).await;
                    if let Some(group) = group {
                        held_groups.insert(group);
                    }
                    backoff_secs = (backoff_secs * 2).min(MAX_BACKOFF_SECS);
                }
            }
        }
        if !held_groups.is_empty() && !fifo {
            held_groups.clear();
        }
    }
    Ok(())
}

fn string_attributes(message: &Message) -> BTreeMap<String, String> {
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

/// Makes a received message visible again after `secs`.
async fn hand_back(sqs: &Client, queue_url: &str, receipt: &str, secs: i32) {
    if let Err(error) = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(secs)
        .send()
        .await
    {
        eprintln!(
            "hookrelay-dev: ChangeMessageVisibility failed ({}); the message comes back when its \
             visibility timeout ends",
            DisplayErrorContext(&error)
        );
    }
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
            verify(&trust, body, &attributes, now).unwrap().id,
            "rekko:1"
        );
        let changed = body.replace("news\"}", "new\"}");
        assert!(verify(&trust, &changed, &attributes, now).is_err());
        let mut unsigned = attributes.clone();
        unsigned.remove(relay::attributes::RELAY_SIGNATURE);
        assert!(verify(&trust, body, &unsigned, now).is_err());
    }
}
