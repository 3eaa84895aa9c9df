"""A hookrelay consumer in Python (boto3): receive, check each message against the envelope's
JSON Schema, re-verify the sender's signature over the exact signed bytes, act, delete.

    pip install boto3 jsonschema
    HOOKRELAY_QUEUE_URL=... HOOKRELAY_ENGINE_SECRETS=... python consume.py

scripts/run_local.py reads the local queue with this module, so it runs against real messages.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib

import boto3
import jsonschema

SCHEMA = json.loads((pathlib.Path(__file__).resolve().parents[2] / "schema" / "envelope.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def signed_data(message_body: str) -> bytes:
    """The sender's body exactly as signed: the text between "data": and the final "}".
    (json.loads + json.dumps would change the bytes.)"""
    start = message_body.index('"data":') + len('"data":')
    return message_body[start:message_body.rindex("}")].encode()


def signature_matches(envelope: dict, data: bytes, signature: str, secrets: list[str]) -> bool:
    for secret in secrets:
        if envelope["provider"] == "standard":
            key = base64.b64decode(secret.removeprefix("whsec_"))
            signed = f"{envelope['delivery_id']}.{envelope['occurred_at']}.".encode() + data
            expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            if any(hmac.compare_digest(expected, s) for s in signature.split()):
                return True
        else:
            expected = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
            given = signature.removeprefix("sha256=") if envelope["provider"] == "engine" else signature
            if hmac.compare_digest(expected, given.lower()):
                return True
    return False


def decode(message: dict, secrets: dict[str, list[str]]) -> dict:
    """One SQS message (as boto3 returns it) to a checked envelope; raises ValueError if it is
    not a valid v1 envelope or fails re-verification for a sender we hold secrets for."""
    try:
        envelope = json.loads(message["Body"])
        errors = [e.message for e in VALIDATOR.iter_errors(envelope)]
    except RecursionError:
        # JSON nested deeper than Python's recursion limit (about 1,000 levels): one poison
        # message must fail alone (ValueError, like every other bad message), not end the process.
        raise ValueError(f"{message.get('MessageId')}: nested too deeply to decode") from None
    if errors:
        raise ValueError(f"not a hookrelay v1 envelope: {errors}")
    # Stream events (via the bridge; Heisenberg and Rekko only) are not signed per message.
    unsigned_stream = envelope.get("via") == "stream" and envelope["provider"] in ("heisenberg", "rekko")
    provider_secrets = None if unsigned_stream else secrets.get(envelope["provider"])
    if provider_secrets:
        signature = message.get("MessageAttributes", {}).get("signature", {}).get("StringValue", "")
        if not signature_matches(envelope, signed_data(message["Body"]), signature, provider_secrets):
            raise ValueError(f"{envelope['id']}: data is not what {envelope['provider']} signed")
    return envelope


SMOKE_TEST_TYPE = "hookrelay.smoke_test"


def is_smoke_test(envelope: dict) -> bool:
    """hookrelay's own smoke test (`hookrelay-dev send`): acknowledge (delete) it, never act on it."""
    return envelope.get("type") == SMOKE_TEST_TYPE


def secrets_from_env() -> dict[str, list[str]]:
    return {p: [s.strip() for s in os.environ.get(f"HOOKRELAY_{p.upper()}_SECRETS", "").split(",") if s.strip()]
            for p in ("engine", "rekko", "standard")}


def main() -> None:
    sqs = boto3.client("sqs")
    queue_url = os.environ["HOOKRELAY_QUEUE_URL"]
    secrets = secrets_from_env()
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20,
                                    MessageAttributeNames=["All"])
        for message in batch.get("Messages", []):
            try:
                envelope = decode(message, secrets)
            except ValueError as error:
                print(f"skipping {message['MessageId']}: {error}")  # left for the redrive policy / DLQ
                continue
            if is_smoke_test(envelope):
                print(f"smoke test {envelope['id']} acknowledged")  # never act on it
            else:
                print(envelope["provider"], envelope["type"], envelope["id"])  # your logic here
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    main()
