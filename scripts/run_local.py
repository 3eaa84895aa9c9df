"""The whole pipeline on this machine, once: the local lab (`hookrelay-dev up`: moto's SQS and
DynamoDB endpoints, the queue and tables, the receiver under `cargo lambda watch`), freshly signed
sample deliveries for every route, and what arrived in the queue; then the stream bridge
(hookrelay-bridge) reading stand-ins of Heisenberg's WebSocket gateway and Rekko's SSE feed
(hookrelay-stream-sim, with a 4001 close, abrupt drops and replays) into the same queue. Exits
non-zero if anything differs from the contract, and stops the lab.

Run it through scripts/run-local.sh, which prepares .venv first.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3

import senders

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples" / "python"))
import consume  # noqa: E402  (the Python consumer of docs/operations.md, run here against the real queue)

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
BUILT = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug"
VENV_BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(process: subprocess.Popen, marker: str) -> list[str]:
    """Lines `process` prints up to and including the first holding `marker`."""
    lines = []
    while True:
        line = process.stdout.readline()
        if not line:
            sys.exit(f"hookrelay-dev up exited (code {process.poll()}); see {LOCAL / 'up.log'}")
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines


def read_env(path: pathlib.Path) -> dict[str, str]:
    """`NAME=value` and `export NAME="value"` lines, as the lab writes them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            values[name] = value.strip('"')
    return values


def post(url: str, delivery: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=delivery["body"], headers=delivery["headers"], method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def main() -> int:
    LOCAL.mkdir(exist_ok=True)
    processes = []

    def stop(*_):
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(143)))
    try:
        # 1-2. The local lab, as `hookrelay-dev up` runs it for a user (docs/getting-started.md,
        # "The local lab"): moto behind the lab's endpoint, the FIFO queue and the tables as
        # template.yaml creates them, and the receiver (store and sequence gaps on) under
        # `cargo lambda watch`, sealing every message with the lab's relay key pair. Here the
        # gap detector, run right after the deliveries, gets a 1 s grace.
        lambda_port = free_port()
        up = subprocess.Popen(
            [str(BUILT / "hookrelay-dev"), "up", "--state-dir", str(LOCAL), "--port", str(lambda_port),
             "--aws-port", str(free_port()), "--set", "HOOKRELAY_SEQUENCE_GAP_GRACE_SECS=1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(LOCAL / "up.log", "w"), text=True)
        processes.append(up)
        print("$ hookrelay-dev up")
        for line in read_until(up, "Ctrl-C stops the lab"):
            print("  " + line)
        lab = read_env(LOCAL / "lab.env")
        endpoint, queue_url = lab["AWS_ENDPOINT_URL"], lab["HOOKRELAY_QUEUE_URL"]
        relay = {"HOOKRELAY_RELAY_PUBLIC_KEYS": lab["HOOKRELAY_RELAY_PUBLIC_KEYS"],
                 **read_env(LOCAL / "lab-relay-keys.env")}
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        base = lab["HOOKRELAY_LAB_URL"]
        print()

        # 3. Freshly signed deliveries, as each provider's sender would make them.
        now = time.time()
        failures = 0
        accepted = []
        print(f"{'delivery':20} {'expected':26} {'answer'}")
        for delivery in senders.deliveries(now, run=f"run{int(now)}"):
            status, body = post(base + delivery["path"], delivery)
            expected_status, expected_word = delivery["expect"]
            word = body.get("status") or body.get("error")
            ok = (status, word) == (expected_status, expected_word)
            failures += not ok
            if status == 200 and word == "accepted":
                accepted.append(body["id"])
            print(f"{delivery['name']:20} {expected_status} {expected_word:22} {status} {json.dumps(body)}"
                  + ("" if ok else "   <-- UNEXPECTED"))

        # 3b. A committed fixture, re-signed for now by `hookrelay-dev event` (the library's own
        # signing), handed to the function the way a Rust Lambda user would: `cargo lambda invoke`.
        fixture = LOCAL / "standard-valid.now.json"
        fixture.write_text(subprocess.run(
            [str(ROOT / "target/debug/hookrelay-dev"), "event", "standard", "valid"],
            check=True, capture_output=True, text=True).stdout)
        invoked = subprocess.run(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", "hookrelay", "--data-file", str(fixture),
             "-A", "127.0.0.1", "-P", str(lambda_port), "-o", "json"],
            cwd=ROOT, capture_output=True, text=True)
        try:
            answer = json.loads(invoked.stdout)
            status, body = answer.get("statusCode"), json.loads(answer.get("body") or "{}")
        except ValueError:
            status, body = None, {"output": invoked.stdout[-300:], "stderr": invoked.stderr[-300:]}
        ok = status == 200
        failures += not ok
        if ok and body.get("status") == "accepted":
            accepted.append(body["id"])
        print(f"\n{'cargo lambda invoke':20} {'200':26} {status} {json.dumps(body)}"
              f"   (hookrelay-dev event standard valid, re-signed for now)" + ("" if ok else "   <-- UNEXPECTED"))

        # 4. What arrived in the queue.
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                        MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
            if not batch.get("Messages"):
                break
            messages.extend(batch["Messages"])
        print(f"\n{len(messages)} message(s) in {queue_url.rsplit('/', 1)[1]}, "
              "each checked by examples/python/consume.py (relay signature, schema, re-verified sender signature):")
        secrets = {"engine": [senders.ENGINE_SECRET], "rekko": [senders.REKKO_SECRET],
                   "standard": [senders.STANDARD_SECRET]}
        trust = consume.RelayTrust.parse(relay["HOOKRELAY_RELAY_PUBLIC_KEYS"])
        for m in messages:
            try:
                envelope = consume.decode(m, secrets, trust)
            except ValueError as error:
                print(f"\n--- {m['MessageId']}: {error}   <-- UNEXPECTED")
                failures += 1
                continue
            attributes = {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}
            system = m.get("Attributes", {})
            print(f"\n--- {envelope['id']}  group={system.get('MessageGroupId')} "
                  f"dedup={system.get('MessageDeduplicationId')}")
            print(f"attributes: {json.dumps(attributes)}")
            print(json.dumps(envelope, indent=2))
        # 5. The receiver's metrics: one EMF document per delivery in its log.
        emf = [json.loads(line) for line in (LOCAL / "receiver.log").read_text().splitlines()
               if line.startswith('{"_aws"')]
        # One request document per delivery; the store's figures are a second document.
        request_metrics = {"Accepted", "Duplicate", "Rejected", "PublishFailures"}
        requests = [doc for doc in emf
                    if request_metrics & {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}]
        counted = {}
        for doc in emf:
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                if metric["Unit"] == "Count":
                    counted[metric["Name"]] = counted.get(metric["Name"], 0) + 1
        print(f"\nEMF metric documents in the receiver's log: {len(emf)} {json.dumps(counted, sort_keys=True)}")
        # The deliveries, the invoke, and the lab's readiness probe (a GET, answered 405).
        expected_documents = len(senders.deliveries(now)) + 2
        if len(requests) != expected_documents:
            print(f"expected one EMF document per delivery ({expected_documents})")
            failures += 1

        # The Python consumer must refuse a message changed after hookrelay sealed it: its data,
        # or a relabelled market.
        if messages:
            body = messages[0]["Body"]
            for tampered_body in (body.replace('"data":{', '"data":{"x":1,', 1),
                                  re.sub(r'"market_id":("[^"]*"|null)', '"market_id":"another-market"', body, count=1)):
                try:
                    consume.decode(dict(messages[0], Body=tampered_body), secrets, trust)
                    print("examples/python/consume.py accepted a tampered message   <-- UNEXPECTED")
                    failures += 1
                except consume.RelaySignatureError:
                    pass

        queued = sorted(json.loads(m["Body"])["id"] for m in messages)
        if queued != sorted(accepted):
            print(f"\nqueue holds {queued}, but the accepted deliveries were {sorted(accepted)}")
            failures += 1
        print(f"\n{'OK' if failures == 0 else 'FAILED'}: {len(accepted)} accepted and queued once each; "
              "duplicates answered without a second message; forged, stale and malformed rejected.")

        # Consumed: delete them, so the queue holds only what the streams add (and FIFO groups
        # are not held back behind messages in flight).
        for m in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

        # 5a. Exactly once beyond one instance's memory: a new receiver instance (its in-memory
        # window empty) gets the engine delivery again, re-signed with a new delivery id: the
        # durable store answers `duplicate`. Then the engine skips a sequence, and the gap
        # detector (the stack's scheduled function) reports it as a sealed event.
        failures += show_store_and_gaps(sqs, queue_url, base, now, lambda_port, up, secrets, trust)

        # 5b. The smoke test a user runs against a deployed stack, here against this one: accepted,
        # found in the queue, relay signature, envelope and signature checked, deleted; consumers skip its type.
        smoke = subprocess.run(
            [str(ROOT / "target/debug/hookrelay-dev"), "send", "--url", base, "--provider", "rekko",
             "--queue-url", queue_url, "--i-own-this-queue", "--wait-secs", "20"],
            cwd=ROOT, capture_output=True, text=True,
            env=os.environ | {"HOOKRELAY_REKKO_SECRETS": senders.REKKO_SECRET, "AWS_ENDPOINT_URL_SQS": endpoint,
                              "HOOKRELAY_RELAY_PUBLIC_KEYS": relay["HOOKRELAY_RELAY_PUBLIC_KEYS"],
                              "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local",
                              "AWS_SECRET_ACCESS_KEY": "local"})
        print(f"\nhookrelay-dev send (smoke test):\n{smoke.stdout.strip()}{smoke.stderr.strip()}"
              + ("" if smoke.returncode == 0 else "   <-- UNEXPECTED"))
        failures += smoke.returncode != 0

        # 6. The streams, through the bridge, into the same queue.
        failures += run_streams(sqs, queue_url, endpoint, processes, secrets, relay)
        print(f"\n{'OK' if failures == 0 else 'FAILED'}: webhooks and both streams")
        return 1 if failures else 0
    finally:
        stop()


def show_store_and_gaps(sqs, queue_url, base, now, lambda_port, up, secrets, trust) -> int:
    failures = 0
    print("\n\n== the durable store and sequence gaps")
    up.send_signal(signal.SIGUSR1)  # the lab restarts the receiver: a cold instance
    print(read_until(up, "receiver restarted")[-1])
    body = senders.engine_order_matched(42, now)
    headers = senders.engine_headers(body, senders.ENGINE_SECRET, "ORDER_MATCHED", "dlv-retry-after-restart")
    rows = [("engine 42, re-sent", body, headers, (200, "duplicate"))]
    # Sequence 44 never arrives; 45 does.
    body45 = senders.engine_order_matched(45, now)
    rows.append(("engine 45 (44 skipped)", body45,
                 senders.engine_headers(body45, senders.ENGINE_SECRET, "ORDER_MATCHED", "dlv-000045"),
                 (200, "accepted")))
    for name, body, headers, expected in rows:
        status, answer = post(base + "/engine", {"headers": headers, "body": body, "b64": False})
        word = answer.get("status") or answer.get("error")
        ok = (status, word) == expected
        failures += not ok
        print(f"{name:24} {expected[0]} {expected[1]:10} {status} {json.dumps(answer)}"
              + ("" if ok else "   <-- UNEXPECTED"))
    time.sleep(2)  # past the detector's 1 s grace
    invoked = subprocess.run(
        [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", "hookrelay-gap-detector", "--data-ascii", "{}",
         "-A", "127.0.0.1", "-P", str(lambda_port), "-o", "json"],
        cwd=ROOT, capture_output=True, text=True)
    print(f"gap detector pass     {invoked.stdout.strip() or invoked.stderr.strip()[-300:]}")
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                    MessageAttributeNames=["All"])
        if not batch.get("Messages"):
            break
        for m in batch["Messages"]:
            envelope = consume.decode(m, secrets, trust)
            found.append(envelope)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    ids = sorted(e["id"] for e in found)
    gaps = [e for e in found if e["type"] == "hookrelay.sequence_gap"]
    print(f"queued since: {ids}")
    if gaps:
        print("the gap report, relay signature checked by examples/python/consume.py:\n"
              + json.dumps(gaps[0], indent=2))
    expected_ids = ["engine:op-7f3a:45"]
    if len(gaps) != 1 or gaps[0]["data"]["first_missing"] != 44 or gaps[0]["data"]["last_missing"] != 44 \
            or sorted(e["id"] for e in found if e not in gaps) != expected_ids:
        print("expected engine 45 and one gap report for 44, and no second copy of 42   <-- UNEXPECTED")
        failures += 1
    return failures


def run_streams(sqs, queue_url: str, endpoint: str, processes: list, secrets: dict, relay: dict) -> int:
    """Stand-ins for both streams, the bridge between them and the queue, and what arrived."""
    token = "local-stream-token"
    sim = subprocess.Popen([str(BUILT / "hookrelay-stream-sim"), "--token", token],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(LOCAL / "stream-sim.log", "w"),
                           text=True)
    processes.append(sim)
    streams = json.loads(sim.stdout.readline())
    expected = streams["trades"] + streams["rekko_events"]
    bridge_env = {
        "HOOKRELAY_QUEUE_URL": queue_url,
        # The same idempotency store as the receiver's.
        "HOOKRELAY_IDEMPOTENCY_TABLE": "hookrelay-idempotency",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        **relay,
        "HOOKRELAY_HEISENBERG_TOKEN": token,
        "HOOKRELAY_HEISENBERG_URL": streams["heisenberg_ws"],
        "HOOKRELAY_REKKO_API_KEY": token,
        "HOOKRELAY_REKKO_STREAM_URL": streams["rekko_stream"],
        "HOOKRELAY_BRIDGE_BACKOFF_INITIAL_MS": "200",
        "AWS_ENDPOINT_URL_SQS": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "PATH": os.environ.get("PATH", ""),
        "RUST_LOG": "info",
    }
    bridge_log = LOCAL / "bridge.log"
    bridge = subprocess.Popen([str(BUILT / "hookrelay-bridge")], env=bridge_env,
                              stdout=open(bridge_log, "w"), stderr=subprocess.STDOUT)
    processes.append(bridge)
    print(f"\n\n== streams: hookrelay-bridge reading {streams['heisenberg_ws']} (Heisenberg WebSocket stand-in) "
          f"and {streams['rekko_stream']} (Rekko SSE stand-in)   (logs: .local/bridge.log)")

    # Received and deleted as a consumer would: a FIFO group's later messages are held back while
    # an earlier one is in flight, and after a delete SQS no longer deduplicates that id, so any
    # repeat the bridge sent would show up here.
    messages = []

    def receive() -> list:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                    MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
        got = batch.get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        return got

    deadline = time.time() + 60
    while len(messages) < len(expected) and time.time() < deadline and bridge.poll() is None:
        got = receive()
        messages.extend(got)
        if not got:
            time.sleep(0.2)
    time.sleep(1.5)  # anything arriving late would be a duplicate
    while got := receive():
        messages.extend(got)

    failures = 0
    print(f"{len(messages)} stream message(s) in the queue (expected {len(expected)}: "
          f"{len(streams['trades'])} trades, {len(streams['rekko_events'])} Rekko events, each once):")
    print(f"{'id':58} {'provider':10} {'type':18} {'market':30} group")
    seen = {}
    trust = consume.RelayTrust.parse(relay["HOOKRELAY_RELAY_PUBLIC_KEYS"])
    for m in messages:
        try:
            envelope = consume.decode(m, secrets, trust)
        except ValueError as error:
            print(f"{m['MessageId']}: {error}   <-- UNEXPECTED")
            failures += 1
            continue
        data = consume.signed_data(m["Body"]).decode()
        seen[data] = seen.get(data, 0) + 1
        ok = envelope["via"] == "stream" and "signature" not in m.get("MessageAttributes", {})
        failures += not ok
        short_id = envelope["id"] if len(envelope["id"]) <= 58 else envelope["id"][:48] + "…" + envelope["id"][-9:]
        print(f"{short_id:58} {envelope['provider']:10} {envelope['type']:18} "
              f"{str(envelope['market_id']):30} {m.get('Attributes', {}).get('MessageGroupId')}"
              + ("" if ok else "   <-- UNEXPECTED"))
    if messages:
        print("\nthe first, in full:\n" + json.dumps(json.loads(messages[0]["Body"]), indent=2))
    missing = [e for e in expected if seen.get(e, 0) == 0]
    repeated = [e for e, n in seen.items() if n > 1]
    unexpected = [e for e in seen if e not in expected]
    for label, items in (("missing", missing), ("more than once", repeated), ("not sent by the stand-ins", unexpected)):
        if items:
            print(f"{len(items)} event(s) {label}   <-- UNEXPECTED")
            failures += 1

    bridge.send_signal(signal.SIGTERM)
    try:
        code = bridge.wait(timeout=30)
    except subprocess.TimeoutExpired:
        bridge.kill()
        code = "killed"
    sim.stdin.close()
    log = bridge_log.read_text()
    # The bridge's counters: EMF documents, one per stream per minute and one at shutdown.
    totals: dict[str, dict[str, float]] = {}
    for line in log.splitlines():
        if line.startswith('{"_aws"'):
            doc = json.loads(line)
            stream = totals.setdefault(doc["stream"], {})
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                stream[metric["Name"]] = stream.get(metric["Name"], 0) + doc[metric["Name"]]
    print("\nwhat the bridge counted (its EMF metrics):")
    names = ["StreamEvents", "Published", "Duplicate", "Reconnects", "ProviderErrors", "RateLimited", "Malformed"]
    print(f"{'stream':12}" + "".join(f"{n:>15}" for n in names))
    for stream, counts in sorted(totals.items()):
        print(f"{stream:12}" + "".join(f"{counts.get(n, 0):>15.0f}" for n in names))
    print(f"Heisenberg subscriptions acknowledged {log.count('INFO subscribed')} time(s) (once per connection); "
          f"SIGTERM → exit code {code}")
    expected_counts = {"heisenberg": {"Duplicate": 2, "Reconnects": 2, "ProviderErrors": 1, "RateLimited": 1},
                       "rekko": {"Duplicate": 1, "Reconnects": 1}}
    for stream, want in expected_counts.items():
        for name, value in want.items():
            if totals.get(stream, {}).get(name) != value:
                print(f"{stream} {name}: expected {value}   <-- UNEXPECTED")
                failures += 1
    if code != 0:
        print("the bridge did not stop cleanly   <-- UNEXPECTED")
        failures += 1
    if token in log:
        print("the stream token appears in the bridge's log   <-- UNEXPECTED")
        failures += 1
    return failures


if __name__ == "__main__":
    sys.exit(main())
