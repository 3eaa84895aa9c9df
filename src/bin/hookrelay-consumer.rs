//! The example SQS consumer Lambda: decodes hookrelay envelopes, re-verifies them when given the
//! senders' secrets, and reports partial batch failures. Wiring only; see `hookrelay::consumer`.

use aws_lambda_events::event::sqs::SqsEvent;
use hookrelay::config::SenderSecrets;
use hookrelay::consumer::{Consumer, LogEvents};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    hookrelay::telemetry::init();
    let secrets = SenderSecrets::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let consumer = Consumer::new(secrets, LogEvents);
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(consumer.process_batch(event.payload))
    }))
    .await
}
