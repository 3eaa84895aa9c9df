"""The stream bridge's sustained throughput: hookrelay-stream-sim in burst mode sends N trades on
Heisenberg's WebSocket and M events on Rekko's SSE feed as fast as the bridge reads them; the
release hookrelay-bridge publishes them to a local SQS endpoint (moto_server, standard queue),
which two consumer threads drain as they arrive (moto slows down as a queue grows). Reports
events per second from the first message received to the last, the CPU time the bridge and moto
used per 1,000 events (which shows where the limit is) and the bridge's peak RSS, and checks
every event arrived exactly once and that SIGTERM ends the bridge with exit code 0. Prints a
Markdown table.

With `--sink null` the endpoint is instead a minimal SQS JSON-protocol server in this script that
accepts every SendMessageBatch entry and keeps nothing: the bridge's own ceiling, not SQS's.

    python scripts/bench_bridge.py <target dir> [--trades N] [--rekko-events M] [--sink moto|null]

Run through scripts/bench.sh, which builds the binaries and prepares .venv.
"""

import argparse
import hashlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

LOCAL = pathlib.Path(__file__).resolve().parent.parent / ".local"
VENV_BIN = pathlib.Path(sys.executable).parent
TOKEN = "bench-stream-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relay_key_pair(target: pathlib.Path) -> dict:
    """A fresh relay key pair, as `hookrelay-dev relay-keygen` prints it: the two variables."""
    out = subprocess.run([str(target / "hookrelay-dev"), "relay-keygen"], check=True,
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def md5_of_attributes(attributes: dict) -> str:
    """The MD5 SQS answers over string attributes (the SQS developer guide, "Calculating the MD5
    message digest for message attributes"), which the bridge checks like every answer."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        for part in (name.encode(), attributes[name]["DataType"].encode()):
            digest.update(len(part).to_bytes(4, "big") + part)
        value = attributes[name]["StringValue"].encode()
        digest.update(b"\x01" + len(value).to_bytes(4, "big") + value)
    return digest.hexdigest()


def null_sqs(received: list) -> ThreadingHTTPServer:
    """A loopback endpoint speaking just enough of the SQS JSON protocol: every SendMessageBatch
    entry succeeds and is recorded (time, a message id, the envelope id), nothing is kept."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, without Nagle: else delayed ACKs add ~20 ms to every call.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            now = time.monotonic()
            successful = []
            for entry in request.get("Entries", []):
                message_id = str(uuid.uuid4())
                received.append((now, message_id, json.loads(entry["MessageBody"])["id"]))
                successful.append({"Id": entry["Id"], "MessageId": message_id,
                                   "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
                                   "MD5OfMessageAttributes": md5_of_attributes(entry.get("MessageAttributes", {}))})
            body = json.dumps({"Successful": successful, "Failed": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", type=pathlib.Path)
    parser.add_argument("--trades", type=int, default=20000)
    parser.add_argument("--rekko-events", type=int, default=5000)
    parser.add_argument("--sink", choices=["moto", "null"], default="moto")
    args = parser.parse_args()
    LOCAL.mkdir(exist_ok=True)
    processes = []
    try:
        received: list[tuple[float, str, str]] = []  # (when, SQS message id, envelope id)
        if args.sink == "moto":
            port = free_port()
            sink = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(sink)
            sink_pid = sink.pid
            endpoint = f"http://127.0.0.1:{port}"
            sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="local", aws_secret_access_key="local")
            deadline = time.time() + 60
            while True:
                try:
                    queue_url = sqs.create_queue(QueueName="bridge-bench")["QueueUrl"]
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
        else:
            server = null_sqs(received)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            sink_pid = os.getpid()
            endpoint = f"http://127.0.0.1:{server.server_address[1]}"
            queue_url = f"{endpoint}/000000000000/bridge-bench"

        sim = subprocess.Popen([str(args.target / "hookrelay-stream-sim"), "--token", TOKEN, "--mode", "burst",
                                "--trades", str(args.trades), "--rekko-events", str(args.rekko_events)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(sim)
        streams = json.loads(sim.stdout.readline())
        expected = len(streams["trades"]) + len(streams["rekko_events"])
        env = {
            "HOOKRELAY_QUEUE_URL": queue_url,
            "HOOKRELAY_HEISENBERG_TOKEN": TOKEN,
            "HOOKRELAY_HEISENBERG_URL": streams["heisenberg_ws"],
            "HOOKRELAY_REKKO_API_KEY": TOKEN,
            "HOOKRELAY_REKKO_STREAM_URL": streams["rekko_stream"],
            "AWS_ENDPOINT_URL_SQS": endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "RUST_LOG": "warn",
            # The bridge seals every message: a key pair made for this run, as the run command does.
            **relay_key_pair(args.target),
        }
        bridge = subprocess.Popen([str(args.target / "hookrelay-bridge")], env=env,
                                  stdout=open(LOCAL / "bridge-bench.log", "w"), stderr=subprocess.STDOUT)
        processes.append(bridge)

        done = threading.Event()

        def drain() -> None:
            client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="local", aws_secret_access_key="local")
            while not done.is_set():
                batch = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                               VisibilityTimeout=600).get("Messages", [])
                if not batch:
                    time.sleep(0.01)
                    continue
                now = time.monotonic()
                received.extend((now, m["MessageId"], json.loads(m["Body"])["id"]) for m in batch)
                client.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])

        drainers = [threading.Thread(target=drain) for _ in range(2 if args.sink == "moto" else 0)]
        for d in drainers:
            d.start()
        deadline = time.time() + 900
        while len(received) < expected and time.time() < deadline and bridge.poll() is None:
            time.sleep(0.05)
        if bridge.poll() is not None:
            done.set()
            sys.exit(f"the bridge exited early (code {bridge.returncode}); see {LOCAL / 'bridge-bench.log'}")
        bridge_cpu, rss, sink_cpu = cpu_seconds(bridge.pid), peak_rss_kib(bridge.pid), cpu_seconds(sink_pid)
        time.sleep(1.5)  # anything arriving now would be a duplicate
        done.set()
        for d in drainers:
            d.join()
        bridge.send_signal(signal.SIGTERM)
        code = bridge.wait(timeout=30)

        times = sorted(t for t, _, _ in received)
        # moto may hand one message to both drainers; what counts is distinct messages and ids.
        messages = {m for _, m, _ in received}
        ids = {i for _, _, i in received}
        total = len(messages)
        rate = (total - 1) / (times[-1] - times[0]) if total > 1 and times[-1] > times[0] else 0.0
        sink_name = "moto_server" if args.sink == "moto" else "null SQS (this script)"
        print(f"| figure ({args.sink} sink) | value |\n|---|---|")
        print(f"| events sent (trades + Rekko) | {expected:,} ({len(streams['trades']):,} + {len(streams['rekko_events']):,}) |")
        print(f"| messages queued (distinct envelope ids) | {total:,} ({len(ids):,}) |")
        print(f"| sustained rate, first to last message | {rate:,.0f} events/s |")
        print(f"| bridge CPU time | {bridge_cpu:.2f} s ({1e6 * bridge_cpu / max(expected, 1):.0f} µs per event) |")
        print(f"| {sink_name} CPU time | {sink_cpu:.2f} s ({1e6 * sink_cpu / max(expected, 1):.0f} µs per event) |")
        print(f"| bridge peak RSS | {rss / 1024:.1f} MiB |")
        print(f"| exit code after SIGTERM | {code} |")
        ok = total == expected == len(ids) and code == 0
        if not ok:
            print(f"\nFAILED: expected {expected} distinct messages and exit code 0", file=sys.stderr)
        return 0 if ok else 1
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
