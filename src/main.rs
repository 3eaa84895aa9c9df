//! The `hookrelay` Lambda: reads the configuration, builds the SQS client once, and serves
//! Function URL invocations through the pipeline. Wiring only.

use hookrelay::config::Config;
use hookrelay::function_url;
use hookrelay::pipeline::{Pipeline, SystemClock};
use hookrelay::queue::SqsPublisher;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookrelay::telemetry::init();
    let config =
        Config::from_env().inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let publisher = SqsPublisher::from_env(config.queue_url.clone()).await;
    let pipeline = Pipeline::new(&config, publisher, SystemClock);
    let pipeline = &pipeline;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(function_url::handle(pipeline, event.payload).await)
        },
    ))
    .await
}
