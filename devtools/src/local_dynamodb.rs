//! The tools' side of the local DynamoDB endpoint (moto): a client for it, the idempotency and
//! sequence tables as template.yaml creates them (on demand; the idempotency table keyed by `pk`
//! with TTL on `expires_at`, the sequence table by `pk` and `sk`), and reading or writing one
//! idempotency record the way another instance would have left it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification,
};

/// A client for the local endpoint at `endpoint` (any credentials do).
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// Creates the idempotency table `name` with the template's key, billing and TTL.
pub async fn create_idempotency_table(dynamodb: &Client, name: &str) -> Result<(), String> {
    dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|error| format!("create table {name}: {error:?}"))?;
    dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|error| format!("enable TTL on {name}: {error:?}"))?;
    Ok(())
}

/// Creates the sequence table `name` as template.yaml does: `pk` and `sk` strings, on demand.
pub async fn create_sequence_table(dynamodb: &Client, name: &str) -> Result<(), String> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await
        .map(drop)
        .map_err(|error| format!("create table {name}: {error:?}"))
}

/// A record as stored: its state (`in_progress` or `published`), digest and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `in_progress` or `published`.
    pub state: String,
    /// The content digest.
    pub digest: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// When an `in_progress` claim lapses, Unix seconds (0: released), if the item says.
    pub claim_until: Option<i64>,
}

/// The record under `key`, if any.
pub async fn record(dynamodb: &Client, table: &str, key: &str) -> Option<Record> {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .ok()?
        .item?;
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    };
    let expires_at = match item.get("expires_at") {
        Some(AttributeValue::N(n)) => n.parse().ok()?,
        _ => return None,
    };
    let claim_until = match item.get("claim_until") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    };
    Some(Record {
        state: text("record_state")?,
        digest: text("digest")?,
        expires_at,
        claim_until,
    })
}

/// Writes an `in_progress` claim of `key` by `owner`, as an instance that is publishing (or
/// died publishing) leaves it, in the item layout without `claim_until` (the claim lapses with
/// the item, as items written before that attribute do).
pub async fn put_claim(
    dynamodb: &Client,
    table: &str,
    key: &str,
    owner: &str,
    digest: &str,
    expires_at: i64,
) -> Result<(), String> {
    dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(key.to_owned()))
        .item("record_state", AttributeValue::S("in_progress".to_owned()))
        .item("owner_token", AttributeValue::S(owner.to_owned()))
        .item("digest", AttributeValue::S(digest.to_owned()))
        .item("expires_at", AttributeValue::N(expires_at.to_string()))
        .send()
        .await
        .map(drop)
        .map_err(|error| format!("put claim {key}: {error:?}"))
}

/// Deletes the record under `key`.
pub async fn delete(dynamodb: &Client, table: &str, key: &str) -> Result<(), String> {
    dynamodb
        .delete_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_owned()))
        .send()
        .await
        .map(drop)
        .map_err(|error| format!("delete {key}: {error:?}"))
}
