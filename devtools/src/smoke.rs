//! The smoke test for a deployed (or local) stack, `hookrelay-dev send`: one delivery signed as a
//! provider signs (the library's `sign`, the provider's real secret), of type
//! `hookrelay.smoke_test` and market `hookrelay-smoke`, which the consumer API and the examples
//! acknowledge and skip, so it can't move a trading bot. Optionally it then waits for its own
//! message in the queue and checks it: the envelope, the provider's signature over `data`.
//!
//! The queue check is for a queue you own (`--i-own-this-queue`): it never deletes a message it
//! did not send, and hands any other message it received straight back (visibility 0), but a
//! received message still counts one receive toward the queue's redrive policy.

use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use hookrelay::Envelope;
use hookrelay::consumer::{ConsumeError, verified_envelope};
use hookrelay::envelope::{SMOKE_TEST_MARKET, SMOKE_TEST_TYPE, attributes};
use hookrelay::relay::RelayTrust;
use hookrelay::senders::{self, Sender};
use hookrelay::signature::{SecretSet, SigningSecret};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One smoke-test delivery, signed.
#[derive(Debug, Clone)]
pub struct SmokeDelivery {
    /// Who it claims to come from.
    pub sender: Sender,
    /// The headers, signature included.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// The envelope id (dedupe key) hookrelay will give it.
    pub dedupe_key: String,
}

/// A smoke test as `sender` sends it, signed at `now` with `secret` (in its configuration
/// form: the text for the engine and Rekko, `whsec_…` for Standard Webhooks). `nonce` makes it
/// unique (the dedupe key): a fresh one per run.
pub fn delivery(sender: Sender, secret: &str, now: OffsetDateTime, nonce: u64) -> SmokeDelivery {
    let at = now.replace_nanosecond(0).unwrap_or(now);
    let timestamp = at.format(&Rfc3339).unwrap_or_default();
    let (body, id_ts, dedupe_key) = match sender.name {
        "engine" => (
            format!(
                r#"{{"id":"smoke-{nonce}","sequence":{nonce},"eventType":"{SMOKE_TEST_TYPE}","marketId":"{SMOKE_TEST_MARKET}","operatorId":"{SMOKE_TEST_MARKET}","payload":{{}},"timestamp":"{timestamp}"}}"#
            ),
            None,
            format!("engine:{SMOKE_TEST_MARKET}:{nonce}"),
        ),
        "rekko" => {
            let body = format!(
                r#"{{"type":"{SMOKE_TEST_TYPE}","market_id":"{SMOKE_TEST_MARKET}","platform":"hookrelay","nonce":{nonce},"timestamp":"{timestamp}"}}"#
            );
            let key = hookrelay_ingest::fields::content_key("rekko", &body);
            (body, None, key.as_str().to_owned())
        }
        _ => (
            format!(
                r#"{{"type":"{SMOKE_TEST_TYPE}","timestamp":"{timestamp}","data":{{"market_id":"{SMOKE_TEST_MARKET}","nonce":{nonce}}}}}"#
            ),
            Some((
                format!("msg_hookrelay_smoke_{nonce}"),
                at.unix_timestamp().to_string(),
            )),
            format!("standard:msg_hookrelay_smoke_{nonce}"),
        ),
    };
    let mut headers = vec![("content-type", "application/json".to_owned())];
    headers.extend(crate::sender_sim::sign(
        sender,
        secret,
        id_ts.as_ref().map(|(id, ts)| (id.as_str(), ts.as_str())),
        body.as_bytes(),
    ));
    SmokeDelivery {
        sender,
        headers,
        body,
        dedupe_key,
    }
}

/// The route URL for `sender` under a Function URL: the base URL, or any sender's route URL (a
/// stack output such as `EngineWebhookUrl`), with `sender`'s route in place of the one given.
pub fn route_url(function_url: &str, sender: Sender) -> String {
    let mut base = function_url.trim_end_matches('/');
    for other in senders::SENDERS {
        if let Some(stripped) = base.strip_suffix(&format!("/{}", other.name)) {
            base = stripped;
            break;
        }
    }
    format!("{base}/{}", sender.name)
}

/// POSTs `delivery` to `url` (http or https, the OS's CA roots); the answer's status and body.
pub async fn send(url: &str, delivery: &SmokeDelivery) -> Result<(u16, String), String> {
    let headers: Vec<(&str, String)> = delivery
        .headers
        .iter()
        .map(|(name, value)| (*name, value.clone()))
        .collect();
    crate::http_client::HttpClient::new()
        .request(
            "POST",
            url,
            &headers,
            delivery.body.clone(),
            Duration::from_secs(15),
        )
        .await
        .map_err(|e| format!("request failed: {e}"))
}

/// What the queue check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCheck {
    /// The envelope id found.
    pub id: String,
    /// Messages that were not ours, handed back at once.
    pub returned: usize,
}

/// Waits up to `timeout` for the message of `delivery` in `queue_url`, checks its relay signature
/// against `trust` (as a consumer does), its envelope and the provider's signature over `data`
/// with `secret`, and deletes it. Every other message it
/// receives goes straight back to the queue (visibility 0) and is never deleted.
pub async fn check_queue(
    sqs: &Client,
    queue_url: &str,
    delivery: &SmokeDelivery,
    secret: &str,
    trust: &RelayTrust,
    timeout: Duration,
) -> Result<QueueCheck, String> {
    let key = delivery
        .sender
        .scheme
        .key_from_text(secret)
        .map_err(|e| format!("the secret {e}"))?;
    let secrets = SecretSet::new(vec![SigningSecret::from_key_bytes(&key)]).ok_or("no secret")?;
    let started = Instant::now();
    let mut returned = 0;
    while started.elapsed() < timeout {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ReceiveMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        for message in batch.messages() {
            let receipt = message.receipt_handle().unwrap_or_default();
            let envelope = message
                .body()
                .and_then(|body| Envelope::from_json(body).ok());
            let ours = envelope.as_ref().filter(|e| e.id == delivery.dedupe_key);
            let Some(envelope) = ours else {
                hand_back(sqs, queue_url, receipt).await?;
                returned += 1;
                continue;
            };
            let strings = crate::queue_reader::string_attributes(message);
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let body = message.body().unwrap_or_default();
            let relay_checked = verified_envelope(trust, body, &strings, now)
                .map(drop)
                .map_err(|e| match e {
                    ConsumeError::Relay(e) => format!("the relay signature does not verify: {e}"),
                    other => other.to_string(),
                });
            let checked = relay_checked.and_then(|()| {
                check(
                    envelope,
                    strings.get(attributes::SIGNATURE).map(String::as_str),
                    delivery,
                    &secrets,
                )
            });
            if let Err(problem) = checked {
                // Ours but wrong: leave it in the queue, visible, for a look.
                let _ = hand_back(sqs, queue_url, receipt).await;
                return Err(problem);
            }
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "DeleteMessage: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            return Ok(QueueCheck {
                id: envelope.id.clone(),
                returned,
            });
        }
    }
    Err(format!(
        "the smoke test did not arrive within {} s ({returned} other message(s) handed back)",
        timeout.as_secs()
    ))
}

/// Makes a received message visible again at once (visibility 0): never deleted, only returned.
async fn hand_back(sqs: &Client, queue_url: &str, receipt: &str) -> Result<(), String> {
    sqs.change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await
        .map(drop)
        .map_err(|e| {
            format!(
                "returning a message: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })
}

/// What a consumer must see in the smoke test's message: the envelope of this delivery, `data`
/// byte for byte, and the provider's signature over it.
fn check(
    envelope: &Envelope,
    signature: Option<&str>,
    delivery: &SmokeDelivery,
    secrets: &SecretSet,
) -> Result<(), String> {
    if envelope.provider != delivery.sender.name || !envelope.is_smoke_test() {
        return Err(format!(
            "the envelope is not this smoke test: {} {}",
            envelope.provider, envelope.event_type
        ));
    }
    if envelope.signed_data() != delivery.body {
        return Err("the envelope's data is not the body sent".to_owned());
    }
    let signature = signature.ok_or("the message has no signature attribute")?;
    envelope
        .verify_signature(signature, secrets)
        .map_err(|e| format!("the signature attribute does not verify: {e}"))
}

/// The first secret configured for `sender`: from `env_value` (its `HOOKRELAY_*_SECRETS`
/// variable's text), else from the Secrets Manager secret `secrets_arn` (the receiver's JSON
/// secret, by the sender's name).
pub async fn secret(
    sender: Sender,
    env_value: Option<&str>,
    secrets_arn: Option<&str>,
    sdk: &aws_config::SdkConfig,
) -> Result<String, String> {
    let first = |list: &str| {
        list.split(',')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let Some(secret) = env_value.and_then(first) {
        return Ok(secret);
    }
    let Some(arn) = secrets_arn else {
        return Err(format!(
            "no secret: set {} or --secrets-arn (HOOKRELAY_SECRETS_ARN)",
            sender.secrets_variable
        ));
    };
    let managed = hookrelay_aws::secrets_manager::fetch(
        &hookrelay_aws::secrets_manager::Client::new(sdk),
        arn,
    )
    .await
    .map_err(|e| e.to_string())?;
    managed
        .get(sender.secrets_variable)
        .and_then(first)
        .ok_or_else(|| format!("the secret has no {:?} key", sender.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_deliveries_are_typed_keyed_and_routed_per_provider() {
        let now = OffsetDateTime::from_unix_timestamp(1_771_455_600).unwrap();
        let engine = delivery(senders::ENGINE, "an-engine-secret-long-enough", now, 7);
        assert_eq!(engine.dedupe_key, "engine:hookrelay-smoke:7");
        assert!(
            engine
                .body
                .contains(r#""eventType":"hookrelay.smoke_test""#)
        );
        let standard = delivery(
            senders::STANDARD,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            now,
            7,
        );
        assert_eq!(standard.dedupe_key, "standard:msg_hookrelay_smoke_7");
        assert!(
            standard
                .headers
                .iter()
                .any(|(n, v)| *n == "webhook-timestamp" && v == "1771455600")
        );
        assert_eq!(
            route_url("https://x.lambda-url.on.aws/", senders::REKKO),
            "https://x.lambda-url.on.aws/rekko"
        );
        assert_eq!(
            route_url("http://127.0.0.1:9/rekko", senders::REKKO),
            "http://127.0.0.1:9/rekko"
        );
    }
}
