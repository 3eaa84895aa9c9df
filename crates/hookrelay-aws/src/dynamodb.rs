//! The durable idempotency store in Amazon DynamoDB ([`DynamoDbStore`]), and the sequence store
//! of the opt-in gap detection ([`DynamoDbSequences`]). The idempotency store: the rules of
//! `hookrelay_ingest::idempotency` as four conditional writes. The only I/O of the store; each
//! call is bounded to about a second ([`STORE_CALL_BOUND`]) so a claim, the SQS send and a commit
//! stay inside the receiver's 8 s function timeout.
//!
//! One item per key, in a table whose partition key is `pk` (a string) and whose TTL attribute
//! is `expires_at` (template.yaml creates it so):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | the store key (`StoreKey`: the dedupe key, hashed past 2,048 bytes) |
//! | `record_state` | S | `in_progress` or `published` |
//! | `owner_token` | S | the claimant's token; commit and release are conditional on it |
//! | `digest` | S | the content digest the key was claimed for (64 hex characters) |
//! | `expires_at` | N | Unix seconds: when the key stops belonging to `digest` (the TTL from the claim, then from the publish) |
//! | `claim_until` | N | Unix seconds, `in_progress` only: when the claim lapses (0 once released); absent on items written before it existed, whose claim lapses at `expires_at` |
//! | `claimed_at` | N | Unix seconds, `in_progress` only: when the claim was made |
//! | `maybe_sent_since` | N | Unix seconds, on a released claim whose send (or an earlier attempt's) failed ambiguously: that attempt's claim time |
//!
//! - **claim**: `PutItem` with [`CLAIM_CONDITION`] and
//!   `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a refused claim costs no second read:
//!   the item that refused it comes back with the error and [`decide`] reads it; and
//!   `ReturnValues = ALL_OLD`, so a claim that took over this content's lapsed or released claim
//!   learns whether that attempt may have sent it ([`earlier_send`]).
//! - **commit**: `UpdateItem` setting `published` and the TTL, if `owner_token` is still ours.
//! - **release**: `UpdateItem` setting `claim_until` to 0 (and `maybe_sent_since` after an
//!   ambiguous send), if `owner_token` is still ours: the claim lapses, the key keeps its digest
//!   (a send that failed ambiguously may be in the queue under it).
//! - **record published**: `PutItem` of a `published` item with [`RECORD_CONDITION`] (absent,
//!   expired, or the same digest), after a publish whose claim the store did not confirm or
//!   whose claim lapsed; refused, it writes nothing (another event holds the key).
//! - **record released**: `PutItem` of a released claim with [`RELEASED_CONDITION`] (absent,
//!   expired, or this content's claim), after an ambiguous send under a claim the store did not
//!   confirm; refused by another event's record, it says so; by this content's `published`
//!   record, nothing is needed.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use hookrelay_ingest::idempotency::{
    CLAIM_CONDITION, ClaimDecision, ClaimRequest, ContentDigest, IdempotencyStore,
    RECORD_CONDITION, RELEASED_CONDITION, RecordState, STORE_CALL_BOUND, StoreError, StoreKey,
    StoredRecord, decide, earlier_send,
};
use hookrelay_ingest::sequence::{Arrival, Seen, SequenceStore, SequenceStream, StreamHead};

const PK: &str = "pk";
const STATE: &str = "record_state";
const OWNER: &str = "owner_token";
const DIGEST: &str = "digest";
const EXPIRES_AT: &str = "expires_at";
const CLAIM_UNTIL: &str = "claim_until";
const CLAIMED_AT: &str = "claimed_at";
const MAYBE_SENT_SINCE: &str = "maybe_sent_since";
const IN_PROGRESS: &str = "in_progress";
const PUBLISHED: &str = "published";
/// Commit and release touch only a claim that is still this owner's.
const OWNED_CLAIM: &str = "record_state = :in_progress AND owner_token = :owner";

/// The idempotency store in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    /// A store in `table`, with a client built from `config` (made by [`crate::sdk_config`])
    /// with the store's own tighter bounds: 1 s per call in all, two attempts of at most 500 ms
    /// each (so one slow answer still leaves time for a second attempt), 500 ms to connect.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: bounded_client(config),
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// A `PutItem` of `request`'s claim (lapsing at `claim_until`; 0: released) on `condition`,
    /// which reads `:now`, `:digest` and `:in_progress`; a refusal brings the item that refused.
    fn put_claim(
        &self,
        request: &ClaimRequest<'_>,
        claim_until: i64,
        condition: &'static str,
    ) -> PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(request.key.as_str()))
            .item(STATE, s(IN_PROGRESS))
            .item(OWNER, s(request.owner))
            .item(DIGEST, s(request.digest.as_str()))
            .item(EXPIRES_AT, n(request.owned_until))
            .item(CLAIM_UNTIL, n(claim_until))
            .item(CLAIMED_AT, n(request.now))
            .condition_expression(condition)
            .expression_attribute_values(":now", n(request.now))
            .expression_attribute_values(":digest", s(request.digest.as_str()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

impl IdempotencyStore for DynamoDbStore {
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<ClaimDecision, StoreError> {
        let written = self
            .put_claim(&request, request.claim_expires_at, CLAIM_CONDITION)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let error = match written {
            Ok(output) => {
                // The item this claim wrote over, if any: the same content's lapsed or released
                // claim may have sent it already.
                let earlier = output
                    .attributes()
                    .and_then(|item| record(item).ok())
                    .and_then(|old| earlier_send(Some(&old), request.digest, request.now));
                return Ok(match earlier {
                    Some(maybe_sent_since) => ClaimDecision::Reclaimed { maybe_sent_since },
                    None => ClaimDecision::Claimed,
                });
            }
            Err(error) => error,
        };
        let refused_by = error
            .as_service_error()
            .filter(|e| e.is_conditional_check_failed_exception())
            .map(|e| match e {
                PutItemError::ConditionalCheckFailedException(refused) => refused.item().cloned(),
                _ => None,
            });
        match refused_by {
            Some(Some(item)) => {
                let stored = record(&item)?;
                // Our own claim: an earlier attempt of this very call wrote it and its answer was
                // lost (the SDK retried). It is ours to publish under; what that write replaced
                // is unknown (an earlier attempt of this content may have sent it), so it counts
                // as a possible copy from the start of time, an upper bound.
                if matches!(&stored.state, RecordState::InProgress { owner, .. } if owner == request.owner)
                {
                    return Ok(ClaimDecision::Reclaimed {
                        maybe_sent_since: 0,
                    });
                }
                Ok(match decide(Some(&stored), request.digest, request.now) {
                    // The condition and `decide` read the same `:now`, so a live record can't
                    // decide as absent; should a clock disagree, wait a second rather than
                    // publish twice.
                    ClaimDecision::Claimed => ClaimDecision::InProgress {
                        retry_after_secs: 1,
                    },
                    other => other,
                })
            }
            Some(None) => Err(StoreError::Unreadable(
                "the claim was refused but the store returned no item".to_owned(),
            )),
            None => Err(unavailable(error)),
        }
    }

    async fn commit(&self, key: &StoreKey, owner: &str, expires_at: i64) -> Result<(), StoreError> {
        let committed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key.as_str()))
            .update_expression(
                "SET record_state = :published, expires_at = :expires_at REMOVE claim_until",
            )
            .condition_expression(OWNED_CLAIM)
            .expression_attribute_values(":published", s(PUBLISHED))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires_at", n(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match committed {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                // Refused because an earlier attempt of this call already committed (its answer
                // was lost and the SDK retried): the record is published and still names us.
                let ours = refused.item().is_some_and(|item| {
                    matches!(item.get(STATE), Some(AttributeValue::S(state)) if state == PUBLISHED)
                        && matches!(item.get(OWNER), Some(AttributeValue::S(token)) if token == owner)
                });
                if ours {
                    Ok(())
                } else {
                    Err(StoreError::ClaimLost)
                }
            }
            _ => Err(unavailable(error)),
        }
    }

    async fn release(
        &self,
        key: &StoreKey,
        owner: &str,
        maybe_sent_since: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key.as_str()))
            .update_expression("SET claim_until = :released")
            .condition_expression(OWNED_CLAIM)
            .expression_attribute_values(":released", n(0))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":owner", s(owner));
        if let Some(since) = maybe_sent_since {
            request = request
                .update_expression("SET claim_until = :released, maybe_sent_since = :since")
                .expression_attribute_values(":since", n(since));
        }
        let released = request.send().await;
        let error = match released {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match error.as_service_error() {
            // Refused: the claim is no longer ours (it lapsed and was claimed again, or its
            // write was never made). Setting the lapse twice is harmless, so an earlier attempt
            // of this call whose answer was lost is never the cause.
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Err(StoreError::ClaimLost),
            _ => Err(unavailable(error)),
        }
    }

    async fn record_published(
        &self,
        key: &StoreKey,
        digest: &ContentDigest,
        owner: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(key.as_str()))
            .item(STATE, s(PUBLISHED))
            .item(OWNER, s(owner))
            .item(DIGEST, s(digest.as_str()))
            .item(EXPIRES_AT, n(expires_at))
            .condition_expression(RECORD_CONDITION)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":digest", s(digest.as_str()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            // Another event's live record: nothing to record over it.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Err(StoreError::OtherContent)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn record_released(
        &self,
        request: ClaimRequest<'_>,
        maybe_sent_since: i64,
    ) -> Result<(), StoreError> {
        let written = self
            .put_claim(&request, 0, RELEASED_CONDITION)
            .item(MAYBE_SENT_SINCE, n(maybe_sent_since))
            .send()
            .await;
        let error = match written {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                let holds_this = refused
                    .item()
                    .and_then(|item| record(item).ok())
                    .is_some_and(|stored| stored.digest == *request.digest);
                // This content's `published` record: nothing to keep. Another event's: say so.
                if holds_this {
                    Ok(())
                } else {
                    Err(StoreError::OtherContent)
                }
            }
            _ => Err(unavailable(error)),
        }
    }
}

/// The sequence store (sequence gaps, opt-in) in its own DynamoDB table, partition key `pk` and
/// sort key `sk` (both strings), TTL on `expires_at`:
///
/// | item | `pk` | `sk` | attributes |
/// |---|---|---|---|
/// | one per published sequence | `seq#{stream key}` | the sequence, 20 digits (sorts as a number) | `seen_at`, `expires_at` |
/// | one per stream (its head) | `streams` | the stream key | `max_seq`, `last_seen_at`, `checked_through` |
///
/// Recording is two writes: the sequence (`PutItem`) and the head (`UpdateItem`, raising
/// `max_seq` only if the new sequence is higher: a refused condition is an out-of-order
/// arrival). The detector reads the heads with one `Query` and each stream's new sequences with
/// one more, and moves the checkpoint with a conditional `UpdateItem`.
#[derive(Debug, Clone)]
pub struct DynamoDbSequences {
    client: Client,
    table: String,
}

const STREAMS: &str = "streams";

impl DynamoDbSequences {
    /// The sequence store in `table`, with the same bounded client as [`DynamoDbStore`].
    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: bounded_client(config),
            table: table.into(),
        }
    }
}

/// A DynamoDB client from `config` with the store's bounds: 1 s per call in all, two attempts
/// of at most 500 ms, 500 ms to connect.
fn bounded_client(config: &aws_config::SdkConfig) -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(STORE_CALL_BOUND / 2)
        .operation_timeout(STORE_CALL_BOUND)
        .build();
    let client_config = aws_sdk_dynamodb::config::Builder::from(config)
        .timeout_config(timeouts)
        // A 50 ms first backoff (the SDK's default is up to 1 s), so the second attempt fits
        // inside the call's 1 s.
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(50)),
        )
        .build();
    Client::from_conf(client_config)
}

fn sequence_sk(sequence: u64) -> String {
    format!("{sequence:020}")
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

impl SequenceStore for DynamoDbSequences {
    async fn record(
        &self,
        stream: &SequenceStream,
        sequence: u64,
        seen_at: i64,
        expires_at: i64,
    ) -> Result<Arrival, StoreError> {
        let key = stream.key();
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&format!("seq#{key}")))
            .item("sk", s(&sequence_sk(sequence)))
            .item("seen_at", n(seen_at))
            .item(EXPIRES_AT, n(expires_at))
            .send()
            .await
            .map_err(unavailable)?;
        let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
        let raised = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(STREAMS))
            .key("sk", s(&key))
            .update_expression("SET max_seq = :seq, last_seen_at = :now")
            .condition_expression("attribute_not_exists(max_seq) OR max_seq < :seq")
            .expression_attribute_values(":seq", n(sequence))
            .expression_attribute_values(":now", n(seen_at))
            .send()
            .await;
        match raised {
            Ok(_) => Ok(Arrival::InOrder),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Arrival::OutOfOrder)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn streams(&self) -> Result<Vec<StreamHead>, StoreError> {
        let mut heads = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :streams")
                .expression_attribute_values(":streams", s(STREAMS))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                let Some(AttributeValue::S(key)) = item.get("sk") else {
                    continue;
                };
                let Some(stream) = SequenceStream::from_key(key) else {
                    continue;
                };
                heads.push(StreamHead {
                    stream,
                    max_sequence: number(item, "max_seq").unwrap_or(0).max(0).unsigned_abs(),
                    checked_through: number(item, "checked_through").map(i64::unsigned_abs),
                });
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(heads);
            }
        }
    }

    async fn seen_since(
        &self,
        stream: &SequenceStream,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Seen>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(&format!("seq#{}", stream.key())))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        request = match after {
            Some(after) => request
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(&sequence_sk(after))),
            None => request.key_condition_expression("pk = :pk"),
        };
        let page = request.send().await.map_err(unavailable)?;
        Ok(page
            .items()
            .iter()
            .filter_map(|item| {
                let Some(AttributeValue::S(sk)) = item.get("sk") else {
                    return None;
                };
                Some(Seen {
                    sequence: sk.parse().ok()?,
                    seen_at: number(item, "seen_at")?,
                })
            })
            .collect())
    }

    async fn checkpoint(
        &self,
        stream: &SequenceStream,
        from: Option<u64>,
        to: u64,
    ) -> Result<(), StoreError> {
        let to = i64::try_from(to).unwrap_or(i64::MAX);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(STREAMS))
            .key("sk", s(&stream.key()))
            .update_expression("SET checked_through = :to")
            .expression_attribute_values(":to", n(to));
        request = match from {
            Some(from) => request
                .condition_expression("checked_through = :from")
                .expression_attribute_values(":from", n(i64::try_from(from).unwrap_or(i64::MAX))),
            None => request.condition_expression("attribute_not_exists(checked_through)"),
        };
        request.send().await.map(drop).map_err(|error| {
            let lost = error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception());
            if lost {
                StoreError::ClaimLost
            } else {
                unavailable(error)
            }
        })
    }
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: i64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// A stored item as a [`StoredRecord`].
fn record(item: &HashMap<String, AttributeValue>) -> Result<StoredRecord, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(text)) => Ok(text.as_str()),
        _ => Err(StoreError::Unreadable(format!("no string `{name}`"))),
    };
    let expires_at = match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(number)) => number
            .parse::<i64>()
            .map_err(|_| StoreError::Unreadable(format!("`{EXPIRES_AT}` is not whole seconds"))),
        _ => Err(StoreError::Unreadable(format!("no number `{EXPIRES_AT}`"))),
    }?;
    let optional_number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(number)) => number
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StoreError::Unreadable(format!("`{name}` is not whole seconds"))),
        None => Ok(None),
        Some(_) => Err(StoreError::Unreadable(format!("`{name}` is not a number"))),
    };
    let state = match text(STATE)? {
        PUBLISHED => RecordState::Published,
        IN_PROGRESS => RecordState::InProgress {
            owner: text(OWNER)?.to_owned(),
            // Written before claims had their own lapse: it lapses with the item.
            lapses_at: optional_number(CLAIM_UNTIL)?.unwrap_or(expires_at),
        },
        _ => return Err(StoreError::Unreadable(format!("unknown `{STATE}`"))),
    };
    Ok(StoredRecord {
        state,
        digest: ContentDigest::from_stored(text(DIGEST)?.to_owned()),
        expires_at,
        claimed_at: optional_number(CLAIMED_AT)?,
        maybe_sent_since: optional_number(MAYBE_SENT_SINCE)?,
    })
}

/// A failed call as [`StoreError::Unavailable`], with the SDK's full context (never a value).
fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    error: SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(error).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn stored_items_read_back_as_records_and_bad_ones_are_named() {
        let digest = "ab".repeat(32);
        let claimed = item(&[
            (PK, s("engine:op:1")),
            (STATE, s(IN_PROGRESS)),
            (OWNER, s("token-1")),
            (DIGEST, s(&digest)),
            (EXPIRES_AT, n(1_790_000_010)),
        ]);
        assert_eq!(
            record(&claimed).unwrap(),
            StoredRecord {
                state: RecordState::InProgress {
                    owner: "token-1".to_owned(),
                    lapses_at: 1_790_000_010,
                },
                digest: ContentDigest::from_stored(digest.clone()),
                expires_at: 1_790_000_010,
                claimed_at: None,
                maybe_sent_since: None,
            }
        );
        let mut released = claimed.clone();
        released.insert(CLAIM_UNTIL.to_owned(), n(0));
        assert!(matches!(
            record(&released).unwrap().state,
            RecordState::InProgress { lapses_at: 0, .. }
        ));
        released.insert(CLAIM_UNTIL.to_owned(), s("soon"));
        assert!(matches!(record(&released), Err(StoreError::Unreadable(_))));
        let mut published = claimed.clone();
        published.insert(STATE.to_owned(), s(PUBLISHED));
        published.remove(OWNER);
        assert_eq!(record(&published).unwrap().state, RecordState::Published);

        let mut broken = claimed.clone();
        broken.insert(EXPIRES_AT.to_owned(), AttributeValue::N("1.5".into()));
        assert!(matches!(record(&broken), Err(StoreError::Unreadable(_))));
        let mut unknown = claimed;
        unknown.insert(STATE.to_owned(), s("done"));
        assert!(matches!(record(&unknown), Err(StoreError::Unreadable(_))));
    }
}
