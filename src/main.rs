//! The `hookrelay` Lambda: loads the AWS SDK configuration once, reads the configuration (and,
//! when `HOOKRELAY_SECRETS_ARN` is set, the webhook secrets from Secrets Manager), builds the SQS
//! client, and serves Function URL invocations through the pipeline. Wiring only.

use std::time::Instant;

use aws_config::{BehaviorVersion, SdkConfig};
use hookrelay::config::{Config, ConfigError};
use hookrelay::function_url;
use hookrelay::pipeline::{Pipeline, SystemClock};
use hookrelay::queue::{self, SqsPublisher};
use hookrelay::secrets_manager::{self, SECRETS_ARN};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookrelay::telemetry::init();
    let sdk_config = queue::sdk_config(aws_config::defaults(BehaviorVersion::latest())).await;
    let config = load_config(&sdk_config)
        .await
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let publisher = SqsPublisher::from_sdk_config(&sdk_config, config.queue_url.clone());
    let pipeline = Pipeline::new(&config, publisher, SystemClock);
    let pipeline = &pipeline;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(function_url::handle(pipeline, event.payload).await)
        },
    ))
    .await
}

async fn load_config(sdk_config: &SdkConfig) -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    match env(SECRETS_ARN).filter(|arn| !arn.trim().is_empty()) {
        None => Config::from_lookup(env),
        Some(arn) => {
            let started = Instant::now();
            let managed = secrets_manager::fetch(sdk_config, arn.trim()).await?;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(elapsed_ms, senders = ?managed, "webhook secrets read from Secrets Manager");
            Config::from_lookup(managed.layered_over(env)?)
        }
    }
}
