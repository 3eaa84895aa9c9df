//! The hello-world of the Lambda benchmark: hookrelay's runtime and release profile answering
//! every Function URL event 200 without reading it or calling anything: the cost of the Runtime
//! API client and the process alone.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde::de::IgnoredAny>| async {
        Ok::<Value, Error>(json!({"statusCode": 200, "body": "{}"}))
    }))
    .await
}
