//! The example SQS consumer Lambda: decodes hookrelay envelopes, re-verifies them when given the
//! senders' secrets (the `HOOKRELAY_*_SECRETS` variables), and reports partial batch failures.
//! Wiring only; see the crate's `process_batch`.

use aws_lambda_events::event::sqs::SqsEvent;
use hookrelay::config::Env;
use hookrelay::consumer::Consumer;
use hookrelay::secret::SenderSecrets;
use hookrelay_example_consumer::{FifoOnFailure, LogEvents, process_batch_with};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Lambda's log controls (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL), with the runtime capped
    // at INFO whatever the level: at TRACE it would log every raw batch, envelopes and signature
    // attributes included.
    hookrelay_ingest::telemetry::init();
    let secrets = SenderSecrets::from_env(&Env::process())
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    // After a failure in a FIFO batch: fail the rest of the batch (the default, AWS's guidance),
    // or only the rest of the failed message's group (one market).
    let on_failure = match std::env::var("HOOKRELAY_CONSUMER_FIFO_ON_FAILURE").as_deref() {
        Err(_) | Ok("" | "rest-of-batch") => FifoOnFailure::FailRestOfBatch,
        Ok("rest-of-group") => FifoOnFailure::FailRestOfGroup,
        Ok(_) => {
            let error =
                "HOOKRELAY_CONSUMER_FIFO_ON_FAILURE: must be rest-of-batch or rest-of-group";
            tracing::error!(error, "invalid configuration");
            return Err(error.into());
        }
    };
    let consumer = Consumer::new(secrets, LogEvents);
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(process_batch_with(consumer, event.payload, on_failure))
    }))
    .await
}
