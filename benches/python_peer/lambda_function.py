"""The benchmark's peer: the providers' own example receiver logic as a Python Lambda behind a Function URL.

Verification is the providers' example code: hex HMAC-SHA256 of the raw body with `hmac.new(...).hexdigest()`
compared by `hmac.compare_digest` (Rekko), the same with the `sha256=` prefix for the
engine. The verified body is parsed with `json.loads` and sent to the same FIFO queue
with boto3 `send_message` (group: the market, deduplication id: the engine's operator and
`sequence`, as the engine's document advises, or the SHA-256 of a Rekko body). The boto3 client is created at
init, as AWS advises for Python functions.

It does less than hookrelay: no replay window, no in-process dedupe, no typed envelope, no
metrics beyond the one figure the benchmark reads (its SQS send time, printed as
`PublishLatency` in milliseconds, the name hookrelay's metrics use). Run by
`scripts/bench.sh` with awslambdaric: `python -m awslambdaric lambda_function.handler`.
"""

import base64
import hashlib
import hmac
import json
import os
import time

import boto3

QUEUE_URL = os.environ["HOOKRELAY_QUEUE_URL"]
ENGINE_SECRET = os.environ["HOOKRELAY_ENGINE_SECRETS"]
REKKO_SECRET = os.environ["HOOKRELAY_REKKO_SECRETS"]

sqs = boto3.client("sqs")


def respond(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def handler(event, context):
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    headers = event.get("headers") or {}
    signature = headers.get("x-webhook-signature", "")
    path = event.get("rawPath", "")

    if path == "/engine":
        expected = hmac.new(ENGINE_SECRET.encode(), body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(f"sha256={expected}", signature)
    elif path == "/rekko":
        expected = hmac.new(REKKO_SECRET.encode(), body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, signature)
    else:
        return respond(404, {"error": "unknown_route"})
    if not valid:
        return respond(401, {"error": "invalid_signature"})

    payload = json.loads(body)
    if path == "/engine":
        event_type = payload["eventType"]
        group = payload.get("marketId") or "none"
        dedupe = f"{payload['operatorId']}:{payload['sequence']}"
    else:
        event_type = payload["type"]
        group = payload.get("market_id") or "none"
        dedupe = hashlib.sha256(body).hexdigest()

    message = json.dumps({"provider": path[1:], "type": event_type, "data": payload})
    started = time.perf_counter()
    try:
        sqs.send_message(
            QueueUrl=QUEUE_URL,
            MessageBody=message,
            MessageGroupId=group,
            MessageDeduplicationId=dedupe,
        )
    except Exception as error:
        print(json.dumps({"level": "ERROR", "message": "send_message failed", "error": repr(error)}))
        return respond(503, {"error": "queue_unavailable"})
    finally:
        print(json.dumps({"PublishLatency": (time.perf_counter() - started) * 1000}))
    return respond(200, {"status": "accepted"})
