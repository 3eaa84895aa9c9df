"""Signed deliveries built the way each provider's documentation says its sender builds them.

Independent of the Rust code on purpose: signatures here come from Python's hmac module exactly as
the seed documents compute them, so the receiver's verification is checked against a second
implementation. Used by make_fixtures.py (fixed clock, committed events/) and by run_local.py
(fresh timestamps against the running receiver).
"""

import base64
import hashlib
import hmac
import json
import time

# Test secrets; events/README.md states them. Never use these anywhere real.
ENGINE_SECRET = "7c9f0d1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"
REKKO_SECRET = "hookrelay-test-rekko-secret"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"hookrelay-test-standard-secret!!").decode()
WRONG_SECRET = "not-the-configured-secret-at-all"


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def iso_millis(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".%03dZ" % int((epoch % 1) * 1000)


def iso_seconds(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# --- signing, as the senders document it (docs/contract.md, "The senders") ------------------------

def engine_headers(body: bytes, secret: str, event_type: str, delivery_id: str) -> dict:
    """The engine: X-Webhook-Signature: sha256=<hex HMAC-SHA256(body, secret)>."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-webhook-signature": f"sha256={digest}",
        "x-webhook-event": event_type,
        "x-webhook-id": delivery_id,
    }


def rekko_headers(body: bytes, secret: str) -> dict:
    """Rekko: x-webhook-signature: <hex HMAC-SHA256(body, secret)>."""
    return {
        "content-type": "application/json",
        "x-webhook-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def standard_headers(body: bytes, secret: str, msg_id: str, timestamp: int) -> dict:
    """Standard Webhooks: v1,<base64 HMAC-SHA256(id.timestamp.body, base64-decoded whsec key)>."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }


# --- payloads -----------------------------------------------------------------------------------

def engine_order_matched(sequence: int, at: float) -> bytes:
    """The engine's documented ORDER_MATCHED example, with our ids."""
    return compact({
        "id": f"dlv-{sequence:06d}",
        "sequence": sequence,
        "eventType": "ORDER_MATCHED",
        "marketId": "mkt-fed-cut-2026-03",
        "operatorId": "op-7f3a",
        "payload": {
            "orderId": f"ord-{sequence:06d}",
            "marketId": "mkt-fed-cut-2026-03",
            "outcomeId": "out-yes",
            "operatorId": "op-7f3a",
            "tradeId": f"trd-{sequence:06d}",
            "side": "BUY",
            "price": 0.65,
            "shares": 50,
            "filledShares": 50,
            "remainingShares": 0,
            "status": "FILLED",
            "timestamp": int(at * 1000),
        },
        "timestamp": iso_millis(at),
    })


def rekko_price_shift(at: float, new_yes: float = 0.68) -> bytes:
    return compact({
        "type": "price_shift",
        "market_id": "KXFED-26MAR19",
        "platform": "kalshi",
        "old_yes": 0.62,
        "new_yes": new_yes,
        "change_pct": 9.7,
        "timestamp": iso_seconds(at),
    })


def rekko_whale_alert(at: float) -> bytes:
    return compact({
        "type": "whale_alert",
        "market_id": "KXFED-26MAR19",
        "platform": "kalshi",
        "side": "yes",
        "flow": 250000,
        "price": 0.66,
        "timestamp": iso_seconds(at),
    })


def standard_body(event_type: str, at: float, n: int) -> bytes:
    return compact({"type": event_type, "timestamp": iso_seconds(at), "data": {"invoice": f"inv_{n:04d}", "amount": 4200}})


# --- deliveries: (name, path, headers, body, base64?) ---------------------------------------------

def deliveries(now: float, run: str = "fixture"):
    """Every fixture case, signed for the clock `now`. `run` makes ids unique per demo run."""
    stale = now - 3600
    out = []

    def add(name, path, headers, body, b64=False, expect=None):
        out.append({"name": name, "path": path, "headers": headers, "body": body, "base64": b64, "expect": expect})

    # engine
    body = engine_order_matched(42, now)
    h = engine_headers(body, ENGINE_SECRET, "ORDER_MATCHED", "dlv-000042")
    add("engine-valid", "/engine", h, body, expect=(200, "accepted"))
    add("engine-duplicate", "/engine", h, body, expect=(200, "duplicate"))
    forged = body.replace(b'"price":0.65', b'"price":0.95')
    add("engine-forged", "/engine", h, forged, expect=(401, "invalid_signature"))
    old = engine_order_matched(41, stale)
    add("engine-stale", "/engine", engine_headers(old, ENGINE_SECRET, "ORDER_MATCHED", "dlv-000041"), old,
        expect=(401, "stale_timestamp"))
    bad = compact({"id": "dlv-000040", "eventType": "ORDER_MATCHED", "timestamp": iso_millis(now)})
    add("engine-malformed", "/engine", engine_headers(bad, ENGINE_SECRET, "ORDER_MATCHED", "dlv-000040"), bad,
        expect=(400, "malformed_payload"))
    # Ends in a newline, as many JSON encoders (Go's json.Encoder, curl --data-binary @file) send.
    b64 = engine_order_matched(43, now) + b"\n"
    hb = engine_headers(b64, ENGINE_SECRET, "ORDER_MATCHED", "dlv-000043") | {"content-type": "application/octet-stream"}
    add("engine-base64", "/engine", hb, b64, b64=True, expect=(200, "accepted"))

    # rekko
    body = rekko_price_shift(now)
    h = rekko_headers(body, REKKO_SECRET)
    add("rekko-valid", "/rekko", h, body, expect=(200, "accepted"))
    add("rekko-duplicate", "/rekko", h, body, expect=(200, "duplicate"))
    add("rekko-forged", "/rekko", rekko_headers(body, WRONG_SECRET), body, expect=(401, "invalid_signature"))
    old = rekko_price_shift(stale)
    add("rekko-stale", "/rekko", rekko_headers(old, REKKO_SECRET), old, expect=(401, "stale_timestamp"))
    bad = compact({"market_id": "KXFED-26MAR19", "platform": "kalshi", "timestamp": iso_seconds(now)})
    add("rekko-malformed", "/rekko", rekko_headers(bad, REKKO_SECRET), bad, expect=(400, "malformed_payload"))
    b64 = rekko_whale_alert(now)
    add("rekko-base64", "/rekko", rekko_headers(b64, REKKO_SECRET) | {"content-type": "application/octet-stream"},
        b64, b64=True, expect=(200, "accepted"))

    # standard webhooks
    ts = int(now)
    body = standard_body("invoice.paid", now, 1)
    h = standard_headers(body, STANDARD_SECRET, f"msg_{run}_0001", ts)
    add("standard-valid", "/standard", h, body, expect=(200, "accepted"))
    add("standard-duplicate", "/standard", h, body, expect=(200, "duplicate"))
    add("standard-forged", "/standard", h, body.replace(b"4200", b"9200"), expect=(401, "invalid_signature"))
    old = standard_body("invoice.paid", stale, 2)
    add("standard-stale", "/standard", standard_headers(old, STANDARD_SECRET, f"msg_{run}_0002", int(stale)), old,
        expect=(401, "stale_timestamp"))
    bad = b"this is not json"
    add("standard-malformed", "/standard", standard_headers(bad, STANDARD_SECRET, f"msg_{run}_0003", ts), bad,
        expect=(400, "malformed_payload"))
    b64 = standard_body("invoice.voided", now, 4)
    add("standard-base64", "/standard",
        standard_headers(b64, STANDARD_SECRET, f"msg_{run}_0004", ts) | {"content-type": "application/octet-stream"},
        b64, b64=True, expect=(200, "accepted"))
    return out


def function_url_event(delivery: dict, received: float, request_id: str) -> dict:
    """A Lambda Function URL request event (API Gateway v2 payload format) for a delivery."""
    body = delivery["body"]
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": delivery["path"],
        "rawQueryString": "",
        "headers": {"host": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
                    "user-agent": "provider-webhooks/1.0", "x-forwarded-proto": "https", **delivery["headers"]},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnopqrstuvwxyz012345",
            "domainName": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnopqrstuvwxyz012345",
            "http": {"method": "POST", "path": delivery["path"], "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": "provider-webhooks/1.0"},
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(received)),
            "timeEpoch": int(received * 1000),
        },
        "body": base64.b64encode(body).decode() if delivery["base64"] else body.decode(),
        "isBase64Encoded": delivery["base64"],
    }
