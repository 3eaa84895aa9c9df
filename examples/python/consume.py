"""A hookrelay consumer in Python (boto3): receive, check hookrelay's relay signature over the
exact message, check the envelope against its JSON Schema, optionally re-verify the sender's
own signature over the exact signed bytes, act, delete.

    pip install boto3 jsonschema cryptography
    HOOKRELAY_QUEUE_URL=... HOOKRELAY_RELAY_PUBLIC_KEYS=whpk_... python consume.py

Fails closed, like the Rust consumer API (crates/hookrelay/src/consumer.rs): without
HOOKRELAY_RELAY_PUBLIC_KEYS it refuses to start, and a message without a valid relay signature
(`v1a`, Ed25519 over `{relay_id}.{relay_timestamp}.{body}`, checked with pyca `cryptography`)
from one of those keys is refused before its body is parsed. HOOKRELAY_RELAY_MAX_AGE_SECS
(default 30 days, at least 4) bounds the relay timestamp's age; a message whose signature
verified but whose timestamp is refused is genuine (`RelaySignatureError.genuine`; `.age_only`
when only its age failed): leave it for the dead-letter queue, never drop it.
HOOKRELAY_RELAY_VERIFICATION=insecure-off turns the check off (a warning on every start).
The senders' HOOKRELAY_*_SECRETS, when set, add the sender's own signature as a second proof.

scripts/run_local.py and tests/python/check_consumer.py read local queues with this module, so
it runs against real messages.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import pathlib
import re
import sys
import time

import boto3
import jsonschema
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SCHEMA = json.loads((pathlib.Path(__file__).resolve().parents[2] / "schema" / "envelope.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

RELAY_PUBLIC_KEYS = "HOOKRELAY_RELAY_PUBLIC_KEYS"
RELAY_MAX_AGE_SECS = "HOOKRELAY_RELAY_MAX_AGE_SECS"
RELAY_VERIFICATION = "HOOKRELAY_RELAY_VERIFICATION"
INSECURE_OFF = "insecure-off"
# 4 days queued + 14 in the DLQ (FIFO restarts retention on the move) + 4 once redriven, plus a
# margin: one backlog, dead-letter and redrive cycle is never refused for age (relay.rs says more).
DEFAULT_MAX_AGE = 30 * 86_400
MIN_MAX_AGE = 4 * 86_400  # the queue's retention: a backlog is never refused for age alone
MAX_FUTURE_SKEW = 300
# Each entry is checked against each key over the whole body: bound the work a forged message
# can cause (a rotation writes two entries). The same limits as the Rust consumer.
MAX_SIGNATURE_ENTRIES = 4
MAX_SIGNATURE_ATTRIBUTE_LEN = MAX_SIGNATURE_ENTRIES * (4 + 88 + 1) - 1
P = 2**255 - 19
# The y coordinates of Ed25519's small-order points (orders 1, 2, 4, 8): a public key on one of
# them verifies forged signatures. OpenSSL does not refuse them; the Rust side (`is_weak`) does.
SMALL_ORDER_Y = {1, P - 1, 0,
                 int.from_bytes(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"),
                 int.from_bytes(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little")}


class ConfigError(ValueError):
    """The consumer's configuration is unusable; names the variable, never echoes a key."""


class RelaySignatureError(ValueError):
    """The message is not one hookrelay sealed with a trusted key (or no longer young enough).
    `genuine` is true when the signature verified and only its timestamp was refused (too old,
    from the future, malformed): a real message. `age_only` when only its age failed."""

    def __init__(self, problem: str, genuine: bool = False, age_only: bool = False):
        super().__init__(problem)
        self.genuine = genuine or age_only
        self.age_only = age_only


class RelayTrust:
    """The relay public keys a consumer trusts, and the maximum age of a relay timestamp."""

    def __init__(self, keys: list[Ed25519PublicKey], max_age: int = DEFAULT_MAX_AGE):
        if not keys:
            raise ConfigError(f"{RELAY_PUBLIC_KEYS}: at least one whpk_ key is required")
        if max_age < MIN_MAX_AGE:
            raise ConfigError(f"{RELAY_MAX_AGE_SECS}: must be at least {MIN_MAX_AGE} seconds (the queue's "
                              "retention), or a backlog would be refused")
        self.keys = keys
        self.max_age = max_age

    @classmethod
    def parse(cls, text: str, max_age: int = DEFAULT_MAX_AGE) -> "RelayTrust":
        """`whpk_<base64 of 32 bytes>` keys separated by spaces, commas or newlines."""
        keys = []
        for part in filter(None, re.split(r"[,\s]+", text)):
            if not part.startswith("whpk_"):
                raise ConfigError(f"{RELAY_PUBLIC_KEYS}: each key must start with whpk_")
            try:
                raw = base64.b64decode(part.removeprefix("whpk_"), validate=True)
                if len(raw) != 32:
                    raise ValueError("length")
                key = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                raise ConfigError(f"{RELAY_PUBLIC_KEYS}: a whpk_ key must be base64 of 32 bytes after its prefix") from None
            y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
            if y >= P or y in SMALL_ORDER_Y:
                raise ConfigError(f"{RELAY_PUBLIC_KEYS}: a whpk_ key is not a usable Ed25519 public key")
            keys.append(key)
        return cls(keys, max_age)


def relay_trust_from_env(environ=os.environ) -> RelayTrust | None:
    """The consumer's relay trust from its environment; None only when verification is turned off
    explicitly (HOOKRELAY_RELAY_VERIFICATION=insecure-off). Raises ConfigError otherwise."""
    switch = environ.get(RELAY_VERIFICATION, "").strip()
    if switch == INSECURE_OFF:
        print(f"WARNING: {RELAY_VERIFICATION}={INSECURE_OFF}: relay signatures are NOT verified; anyone who can "
              "write to the queue can forge events", file=sys.stderr)
        return None
    if switch:
        raise ConfigError(f"{RELAY_VERIFICATION}: must be unset or {INSECURE_OFF}")
    keys = environ.get(RELAY_PUBLIC_KEYS, "").strip()
    if not keys:
        raise ConfigError(f"{RELAY_PUBLIC_KEYS}: is required: the relay public keys (whpk_...) whose signatures "
                          "this consumer trusts")
    max_age_text = environ.get(RELAY_MAX_AGE_SECS, "").strip() or str(DEFAULT_MAX_AGE)
    if not (max_age_text.isascii() and max_age_text.isdigit()):
        raise ConfigError(f"{RELAY_MAX_AGE_SECS}: must be a whole number of seconds")
    return RelayTrust.parse(keys, int(max_age_text))


def signed_id(envelope_id: str) -> str:
    """The id the relay signature covers: the envelope id, or its SHA-256 hex when it holds a '.'."""
    return hashlib.sha256(envelope_id.encode()).hexdigest() if "." in envelope_id else envelope_id


def _attribute(message: dict, name: str) -> str | None:
    return message.get("MessageAttributes", {}).get(name, {}).get("StringValue")


def verify_relay(message: dict, trust: RelayTrust, now: int | None = None) -> str:
    """Checks the relay signature of one SQS message over its raw body; returns the signed id
    (which the caller must match against the body's `id`). Raises RelaySignatureError."""
    relay_id, timestamp, signatures = (_attribute(message, name)
                                       for name in ("relay_id", "relay_timestamp", "relay_signature"))
    for name, value in (("relay_id", relay_id), ("relay_timestamp", timestamp), ("relay_signature", signatures)):
        if value is None:
            raise RelaySignatureError(f"no {name} attribute: not sealed by hookrelay")
    if len(signatures) > MAX_SIGNATURE_ATTRIBUTE_LEN or len(signatures.split(" ")) > MAX_SIGNATURE_ENTRIES:
        raise RelaySignatureError(f"relay_signature holds more than {MAX_SIGNATURE_ENTRIES} entries")
    content = f"{relay_id}.{timestamp}.".encode() + message["Body"].encode()
    if not any(_verifies(key, entry, content) for entry in signatures.split(" ") for key in trust.keys):
        raise RelaySignatureError("no relay signature from a trusted key over this message")
    # Only a genuine timestamp is judged for age, so an age failure means a real message.
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise RelaySignatureError("relay_timestamp is not Unix seconds", genuine=True)
    age = (int(time.time()) if now is None else now) - int(timestamp)
    if -age > MAX_FUTURE_SKEW:
        raise RelaySignatureError(f"relay_timestamp is more than {MAX_FUTURE_SKEW} s in the future", genuine=True)
    if age > trust.max_age:
        raise RelaySignatureError(f"sealed {age} s ago, older than the maximum age of {trust.max_age} s",
                                  age_only=True)
    return relay_id


def _verifies(key: Ed25519PublicKey, entry: str, content: bytes) -> bool:
    if not entry.startswith("v1a,"):
        return False
    try:
        key.verify(base64.b64decode(entry.removeprefix("v1a,"), validate=True), content)
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


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


def decode(message: dict, secrets: dict[str, list[str]], trust: RelayTrust | None, now: int | None = None) -> dict:
    """One SQS message (as boto3 returns it, with MessageAttributeNames=["All"]) to a checked
    envelope. `trust` None means relay verification was turned off explicitly
    (relay_trust_from_env). Raises ValueError (RelaySignatureError for the relay signature) if
    the message is not sealed by a trusted key, not a valid v1 envelope, or fails re-verification
    for a sender we hold secrets for."""
    relay_id = verify_relay(message, trust, now) if trust is not None else None
    try:
        envelope = json.loads(message["Body"])
        errors = [e.message for e in VALIDATOR.iter_errors(envelope)]
    except RecursionError:
        # JSON nested deeper than Python's recursion limit (about 1,000 levels): one poison
        # message must fail alone (ValueError, like every other bad message), not end the process.
        raise ValueError(f"{message.get('MessageId')}: nested too deeply to decode") from None
    if errors:
        raise ValueError(f"not a hookrelay v1 envelope: {errors}")
    if relay_id is not None and signed_id(envelope["id"]) != relay_id:
        raise RelaySignatureError("the relay signature belongs to another envelope id")
    # Stream events (via the bridge; Heisenberg and Rekko only) carry no sender signature; the
    # relay signature covers `via`, so that claim can't be forged.
    unsigned_stream = envelope.get("via") == "stream" and envelope["provider"] in ("heisenberg", "rekko")
    provider_secrets = None if unsigned_stream else secrets.get(envelope["provider"])
    if provider_secrets:
        signature = _attribute(message, "signature") or ""
        if not signature_matches(envelope, signed_data(message["Body"]), signature, provider_secrets):
            raise ValueError(f"{envelope['id']}: data is not what {envelope['provider']} signed")
    return envelope


SMOKE_TEST_TYPE = "hookrelay.smoke_test"


def is_smoke_test(envelope: dict) -> bool:
    """hookrelay's own smoke test (`hookrelay-dev send`): acknowledge (delete) it, never act on it."""
    return envelope.get("type") == SMOKE_TEST_TYPE


def secrets_from_env(environ=os.environ) -> dict[str, list[str]]:
    return {p: [s.strip() for s in environ.get(f"HOOKRELAY_{p.upper()}_SECRETS", "").split(",") if s.strip()]
            for p in ("engine", "rekko", "standard")}


def process_batch(messages: list[dict], secrets: dict[str, list[str]], trust: RelayTrust | None, act,
                  now: int | None = None) -> list[dict]:
    """Decodes and acts on one received batch in order; returns the messages to delete. Any
    exception (a poison message, your `act` failing) fails that message alone and is printed.
    On a FIFO queue (receive with MessageSystemAttributeNames=["MessageGroupId"]) the later
    messages of a failed message's group are not processed either: they come back after the
    visibility timeout, behind it, so order holds."""
    done, failed_groups = [], set()
    for message in messages:
        group = message.get("Attributes", {}).get("MessageGroupId")
        if group is not None and group in failed_groups:
            continue
        try:
            envelope = decode(message, secrets, trust, now)
            if is_smoke_test(envelope):
                print(f"smoke test {envelope['id']} acknowledged")  # never act on it
            else:
                act(envelope)
        except Exception as error:  # one poison message never ends the consumer
            print(f"left for the DLQ: {message['MessageId']}: {type(error).__name__}: {error}")
            if group is not None:
                failed_groups.add(group)
            continue
        done.append(message)
    return done


def main() -> None:
    try:
        trust = relay_trust_from_env()
    except ConfigError as error:
        sys.exit(f"consume.py: {error}")
    # boto3 reads AWS_DEFAULT_REGION; Lambda and the AWS CLI v2 set AWS_REGION too.
    sqs = boto3.client("sqs", region_name=os.environ.get("AWS_REGION") or None)
    queue_url = os.environ["HOOKRELAY_QUEUE_URL"]
    secrets = secrets_from_env()

    def act(envelope: dict) -> None:  # your logic here; envelope["id"] is the idempotency key
        print(envelope["provider"], envelope["type"], envelope["id"])

    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20,
                                    MessageAttributeNames=["All"], MessageSystemAttributeNames=["MessageGroupId"])
        for message in process_batch(batch.get("Messages", []), secrets, trust, act):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    main()
