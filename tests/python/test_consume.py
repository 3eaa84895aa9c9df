"""Unit tests of examples/python/consume.py's own rules (run by scripts/test.sh with unittest).
The end-to-end checks against real queued messages are in tests/api/relay.rs; these pin what
needs no queue: small-order keys, the entry bound, the genuine flags, configuration, FIFO order."""

import base64
import json
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"))

import consume  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

NOW = 1_790_000_000
KEY = Ed25519PrivateKey.from_private_bytes(bytes([5]) * 32)
PUBLIC = "whpk_" + base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
# The same list as relay.rs's small_order_public_keys_are_refused test, which ed25519-dalek confirms.
SMALL_ORDER = ["0100000000000000000000000000000000000000000000000000000000000000",
               "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
               "0000000000000000000000000000000000000000000000000000000000000000",
               "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
               "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"]


def envelope(envelope_id: str, market: str = "m1") -> str:
    return json.dumps({"version": 1, "id": envelope_id, "provider": "rekko", "via": "webhook", "type": "news",
                       "market_id": market, "sequence": None, "delivery_id": None, "occurred_at": None,
                       "received_at": "2026-12-02T00:00:00.000Z", "data": {"type": "news"}},
                      separators=(",", ":"))


def sealed(body: str, envelope_id: str, at: int = NOW, entries: list[str] | None = None, group: str | None = None) -> dict:
    relay_id = consume.signed_id(envelope_id)
    signature = "v1a," + base64.b64encode(KEY.sign(f"{relay_id}.{at}.{body}".encode())).decode()
    attributes = {"relay_id": relay_id, "relay_timestamp": str(at),
                  "relay_signature": " ".join((entries or []) + [signature])}
    message = {"MessageId": envelope_id, "Body": body,
               "MessageAttributes": {k: {"StringValue": v, "DataType": "String"} for k, v in attributes.items()}}
    if group is not None:
        message["Attributes"] = {"MessageGroupId": group}
    return message


class RelayRules(unittest.TestCase):
    trust = consume.RelayTrust.parse(PUBLIC)

    def test_a_sealed_message_decodes_and_a_dotted_id_is_signed_as_its_sha256(self):
        for envelope_id in ("rekko:1", "standard:msg.1"):
            self.assertEqual(consume.decode(sealed(envelope(envelope_id), envelope_id), {}, self.trust, NOW)["id"],
                             envelope_id)
        self.assertEqual(consume.signed_id("standard:msg.1"),
                         "d2c51cafe29d8a2f002d5668c2f2a1434ef82878ff54f645de68b45580fec40f")

    def test_small_order_public_keys_are_refused(self):
        for hex_key in SMALL_ORDER:
            for sign in (0, 0x80):
                raw = bytearray(bytes.fromhex(hex_key))
                raw[31] |= sign
                with self.assertRaises(consume.ConfigError, msg=f"{hex_key} {sign}"):
                    consume.RelayTrust.parse("whpk_" + base64.b64encode(bytes(raw)).decode())

    def test_more_entries_than_hookrelay_writes_are_refused_unchecked(self):
        junk = "v1a," + "A" * 86 + "=="
        body = envelope("rekko:1")
        consume.decode(sealed(body, "rekko:1", entries=[junk] * 3), {}, self.trust, NOW)
        with self.assertRaisesRegex(consume.RelaySignatureError, "more than 4 entries"):
            consume.decode(sealed(body, "rekko:1", entries=[junk] * 4), {}, self.trust, NOW)

    def test_refusals_after_a_verified_signature_are_marked_genuine(self):
        body = envelope("rekko:1")
        old = sealed(body, "rekko:1", at=NOW - consume.DEFAULT_MAX_AGE - 1)
        with self.assertRaises(consume.RelaySignatureError) as refused:
            consume.decode(old, {}, self.trust, NOW)
        self.assertTrue(refused.exception.age_only and refused.exception.genuine)
        with self.assertRaises(consume.RelaySignatureError) as refused:
            consume.decode(sealed(body, "rekko:1", at=NOW + 301), {}, self.trust, NOW)
        self.assertTrue(refused.exception.genuine and not refused.exception.age_only)
        relabelled = sealed(body, "rekko:1")
        relabelled["Body"] = envelope("rekko:1", market="m2")
        with self.assertRaises(consume.RelaySignatureError) as refused:
            consume.decode(relabelled, {}, self.trust, NOW)
        self.assertFalse(refused.exception.genuine)

    def test_configuration_fails_closed(self):
        with self.assertRaisesRegex(consume.ConfigError, "HOOKRELAY_RELAY_PUBLIC_KEYS"):
            consume.relay_trust_from_env({})
        with self.assertRaisesRegex(consume.ConfigError, "HOOKRELAY_RELAY_VERIFICATION"):
            consume.relay_trust_from_env({"HOOKRELAY_RELAY_PUBLIC_KEYS": PUBLIC, "HOOKRELAY_RELAY_VERIFICATION": "off"})
        for bad in ("+400000", "²", "86400"):
            with self.assertRaises(consume.ConfigError, msg=bad):
                consume.relay_trust_from_env({"HOOKRELAY_RELAY_PUBLIC_KEYS": PUBLIC, "HOOKRELAY_RELAY_MAX_AGE_SECS": bad})
        self.assertIsNone(consume.relay_trust_from_env({"HOOKRELAY_RELAY_VERIFICATION": "insecure-off"}))
        self.assertEqual(consume.relay_trust_from_env({"HOOKRELAY_RELAY_PUBLIC_KEYS": PUBLIC}).max_age, 30 * 86_400)

    def test_a_fifo_failure_holds_back_the_rest_of_its_group(self):
        batch = [sealed(envelope(f"rekko:{i}"), f"rekko:{i}", group=group) for i, group in enumerate("abab")]
        batch[0]["Body"] = batch[0]["Body"].replace('"m1"', '"m2"')  # a forgery in group a
        acted = []
        done = consume.process_batch(batch, {}, self.trust, lambda envelope: acted.append(envelope["id"]), NOW)
        self.assertEqual([m["MessageId"] for m in done], ["rekko:1", "rekko:3"])
        self.assertEqual(acted, ["rekko:1", "rekko:3"])


if __name__ == "__main__":
    unittest.main()
