"""Turns benchmark output into the Markdown tables of BENCHMARKS.md (used by scripts/bench.sh).

  bench_report.py request-path <criterion dir>     the request path vs its floor, with ratios
  bench_report.py size <arm64 bootstrap> <x86_64 binary>
  bench_report.py levers-header
  bench_report.py lever <name> <build env> <lambda-bench markdown> <binary>
"""

import io
import json
import os
import pathlib
import re
import sys
import zipfile

SENDERS = ["engine", "rekko", "standard"]
SIZES = ["1KiB", "16KiB"]


def estimate_ns(criterion, group, function):
    # criterion names the directory after the group id, '/' replaced by '_'.
    path = pathlib.Path(criterion) / group.replace("/", "_") / function / "new" / "estimates.json"
    with open(path) as f:
        estimates = json.load(f)
    return estimates["median"]["point_estimate"]


def fmt_time(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def request_path(criterion):
    print("| sender | body | floor (HMAC + routing parse) | pipeline | pipeline / floor | Lambda event in → response out | event / floor | pipeline throughput |")
    print("|---|---|---|---|---|---|---|---|")
    for sender in SENDERS:
        for size in SIZES:
            group = f"request_path/{sender}/{size}"
            floor = estimate_ns(criterion, group, "floor")
            pipeline = estimate_ns(criterion, group, "pipeline")
            event = estimate_ns(criterion, group, "lambda_event")
            body = 1024 * int(size.removesuffix("KiB"))
            throughput = body / pipeline * 1e9 / 2**20
            print(
                f"| {sender} | {size} | {fmt_time(floor)} | {fmt_time(pipeline)} | {pipeline / floor:.2f}× "
                f"| {fmt_time(event)} | {event / floor:.2f}× | {throughput:.0f} MiB/s |"
            )
    print("\nMedians of criterion's estimates; ratios are to the floor measured in the same run.")


def zipped_size(path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, pathlib.Path(path).read_bytes())
    return len(buffer.getvalue())


def mb(n):
    return f"{n / 1e6:.2f} MB"


def size(arm64, x86_64):
    print("| binary | size | zipped (deflate, as `sam build` packages it) |")
    print("|---|---|---|")
    for name, path in [("arm64 bootstrap (cargo lambda build --release --arm64)", arm64), ("x86_64 release binary", x86_64)]:
        print(f"| {name} | {mb(os.path.getsize(path))} | {mb(zipped_size(path))} |")


def lambda_figure(markdown, figure):
    for line in pathlib.Path(markdown).read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] == figure:
            return cells[1]
    return "?"


def levers_header():
    print("| lever | build | init p50 | first invocation p50 | init + first p50 | handler overhead p50 / p99 | peak RSS | x86_64 binary | zipped |")
    print("|---|---|---|---|---|---|---|---|---|")


def lever(name, build_env, markdown, binary):
    f = lambda figure: lambda_figure(markdown, figure)
    print(
        f"| {name} | `{build_env}` | {f('init p50')} | {f('first invocation p50')} | {f('init + first invocation p50')} "
        f"| {f('handler overhead p50 (warm minus SQS send)')} / {f('handler overhead p99')} "
        f"| {f('peak RSS after all warm invocations')} | {mb(os.path.getsize(binary))} | {mb(zipped_size(binary))} |"
    )


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"request-path": request_path, "size": size, "levers-header": levers_header, "lever": lever}[command](*args)
