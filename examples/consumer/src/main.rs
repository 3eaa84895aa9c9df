//! The example SQS consumer Lambda: accepts only messages sealed by a trusted relay key
//! (`HOOKRELAY_RELAY_PUBLIC_KEYS`, required; `HOOKRELAY_RELAY_MAX_AGE_SECS`), decodes hookrelay
//! envelopes, re-verifies senders' signatures when given their secrets (the optional
//! `HOOKRELAY_*_SECRETS` variables), and reports partial batch failures. It refuses to start
//! without public keys unless `HOOKRELAY_RELAY_VERIFICATION=insecure-off`, which it logs at
//! ERROR on every cold start. Wiring only; see the crate's `process_batch`.

use aws_lambda_events::event::sqs::SqsEvent;
use hookrelay::config::Env;
use hookrelay::consumer::Consumer;
use hookrelay_example_consumer::{FifoOnFailure, LogEvents, process_batch_with};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Lambda's log controls (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL), with the runtime capped
    // at INFO whatever the level: at TRACE it would log every raw batch, envelopes and signature
    // attributes included.
    hookrelay_ingest::telemetry::init();
    let consumer = Consumer::from_env(&Env::process(), LogEvents)
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    if !consumer.verifies_relay_signatures() {
        tracing::error!(
            "HOOKRELAY_RELAY_VERIFICATION=insecure-off: relay signatures are NOT checked; anything that can write to the queue can make this consumer act"
        );
    }
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
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(process_batch_with(consumer, event.payload, on_failure))
    }))
    .await
}
