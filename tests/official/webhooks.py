"""Signs and verifies with the official Standard Webhooks libraries, for tests/api/official.rs.

Reads one JSON request on stdin and writes one JSON answer on stdout, so a whole test's worth of
signatures costs one Python start. Signing uses each library's own `Webhook.sign` (never our
code): `standardwebhooks` (the spec's reference library) and `svix` (the library Svix-powered
providers publish). Verifying uses each library's `Webhook.verify`, the way a consumer would.

Request:  {"sign":   [{"library": "svix"|"standardwebhooks", "secret": "whsec_...",
                       "id": "...", "timestamp": <unix seconds>, "body": "..."}, ...],
           "verify": [{"library": ..., "secret": ..., "body": "...", "headers": {...}}, ...]}
Answer:   {"signatures": ["v1,...", ...], "verified": [true|"<error>", ...]}
"""

import json
import sys
from datetime import datetime, timezone

import standardwebhooks
import svix


def webhook(library, secret):
    if library == "svix":
        return svix.Webhook(secret)
    if library == "standardwebhooks":
        return standardwebhooks.Webhook(secret)
    raise ValueError(f"unknown library {library!r}")


def main():
    request = json.load(sys.stdin)
    signatures = []
    for item in request.get("sign", []):
        at = datetime.fromtimestamp(item["timestamp"], tz=timezone.utc)
        signatures.append(webhook(item["library"], item["secret"]).sign(item["id"], at, item["body"]))
    verified = []
    for item in request.get("verify", []):
        try:
            webhook(item["library"], item["secret"]).verify(item["body"], item["headers"])
            verified.append(True)
        except Exception as error:  # the libraries raise their own WebhookVerificationError
            verified.append(f"{type(error).__name__}: {error}")
    json.dump({"signatures": signatures, "verified": verified}, sys.stdout)


if __name__ == "__main__":
    main()
