"""The Python consumer's verdict on every message of a queue, for the Rust tests
(devtools/src/python_consumer.rs): runs examples/python/consume.py's own `decode` with the trust
it reads from the environment, exactly as the example does, and prints one JSON line per message:

    {"message_id", "envelope_id", "accepted", "age_only", "error"}

Usage: check_consumer.py --queue-url URL (AWS_ENDPOINT_URL and credentials from the environment).
Receives until the queue looks empty (each message stays invisible for 30 s) and deletes nothing.
A configuration error goes to stderr with exit status 2.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"))

import boto3  # noqa: E402
import consume  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue-url", required=True)
    queue_url = parser.parse_args().queue_url
    try:
        trust = consume.relay_trust_from_env()
    except consume.ConfigError as error:
        print(f"check_consumer.py: {error}", file=sys.stderr)
        return 2
    secrets = consume.secrets_from_env()
    sqs = boto3.client("sqs")
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=30, MessageAttributeNames=["All"])
        messages = batch.get("Messages", [])
        if not messages:
            return 0
        for message in messages:
            verdict = {"message_id": message["MessageId"], "envelope_id": None, "accepted": False,
                       "age_only": False, "error": None}
            try:
                verdict["envelope_id"] = consume.decode(message, secrets, trust)["id"]
                verdict["accepted"] = True
            except Exception as error:  # the consumer's rule: any failure is this message's alone
                verdict["error"] = f"{type(error).__name__}: {error}"
                verdict["age_only"] = bool(getattr(error, "age_only", False))
            print(json.dumps(verdict), flush=True)


if __name__ == "__main__":
    sys.exit(main())
