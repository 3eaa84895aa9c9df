"""Turns benchmark output into the Markdown tables of BENCHMARKS.md (used by scripts/bench.sh).

  bench_report.py request-path <criterion dir>     the request path vs its floor, with ratios
  bench_report.py size <arm64 bootstrap> <x86_64 binary>
  bench_report.py levers-header
  bench_report.py lever <name> <build env> <lambda-bench markdown, one table per run> <binary>
  bench_report.py region <lambda-region.md>          medians of each "### <case>, run N" section
"""

import io
import json
import os
import pathlib
import re
import statistics
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


def lambda_tables(text):
    """Each lambda-bench table in `text`, as {figure: {function: cell}}."""
    tables, columns = [], None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            columns = None
        elif cells[0] == "figure":
            columns = cells[1:]
            tables.append({})
        elif columns and not set(cells[0]) <= set("-"):
            tables[-1][cells[0]] = dict(zip(columns, cells[1:]))
    return tables


def ms(cell):
    """A lambda-bench cell ("12.3 ms", "2301.4 µs") in milliseconds; None for "—" or "?"."""
    match = re.fullmatch(r"([\d.]+) (ms|µs)", cell or "")
    if not match:
        return None
    value = float(match.group(1))
    return value if match.group(2) == "ms" else value / 1000


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_ms(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f} ms"


def fmt_ratio(value):
    return "—" if value is None else f"{value:.2f}×"


WARM_OVERHEAD = "warm minus the endpoint's latency p50"


def case_figures(tables):
    """The medians over runs (lambda-bench tables) of the figures BENCHMARKS.md reports; each
    ratio is the median of the runs' ratios."""
    def each(figure, function):
        return [ms(t.get(figure, {}).get(function)) for t in tables]

    def ratio(figure, a, b):
        return median([x / y if x and y else None for x, y in zip(each(figure, a), each(figure, b))])

    first_over_warm = median([
        f / w if f and w else None
        for f, w in zip(each("first invocation p50", "hookrelay"), each("warm invocation p50", "hookrelay"))
    ])
    return {
        "init + first: hookrelay": fmt_ms(median(each("init + first invocation p50", "hookrelay"))),
        "floor": fmt_ms(median(each("init + first invocation p50", "floor"))),
        "ratio": fmt_ratio(ratio("init + first invocation p50", "hookrelay", "floor")),
        "init: hookrelay / floor": f"{fmt_ms(median(each('init p50', 'hookrelay')))} / {fmt_ms(median(each('init p50', 'floor')))}",
        "first / warm": fmt_ratio(first_over_warm),
        "warm − 10 ms: hookrelay": fmt_ms(median(each(WARM_OVERHEAD, "hookrelay")), 2),
        "floor ": fmt_ms(median(each(WARM_OVERHEAD, "floor")), 2),
        "ratio ": fmt_ratio(ratio(WARM_OVERHEAD, "hookrelay", "floor")),
        "hello warm": fmt_ms(median(each("warm invocation p50", "hello")), 2),
        "peer init + first": fmt_ms(median(each("init + first invocation p50", "python-peer"))),
        "peer warm − 10 ms": fmt_ms(median(each(WARM_OVERHEAD, "python-peer"))),
    }


def region(markdown):
    cases, name = {}, None
    for section in re.split(r"^### ", pathlib.Path(markdown).read_text(), flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        name = re.sub(r", run \d+$", "", heading.strip())
        cases.setdefault(name, []).extend(lambda_tables(body))
    columns = None
    for name, tables in cases.items():
        figures = case_figures(tables)
        if columns is None:
            columns = list(figures)
            print(f"| case (runs) | {' | '.join(c.strip() for c in columns)} |")
            print("|---" * (len(columns) + 1) + "|")
        print(f"| {name} ({len(tables)}) | {' | '.join(figures[c] for c in columns)} |")


def levers_header():
    print("| lever | build | init + first p50 (floor) | init p50 | first p50 | warm − 10 ms p50 (floor) | peak RSS | x86_64 binary | zipped |")
    print("|---|---|---|---|---|---|---|---|---|")


def lever(name, build_env, markdown, binary):
    tables = lambda_tables(pathlib.Path(markdown).read_text())
    each = lambda figure, function="hookrelay": median([ms(t.get(figure, {}).get(function)) for t in tables])
    def mib(cell):
        match = re.fullmatch(r"([\d.]+) MiB", cell or "")
        return float(match.group(1)) if match else None

    rss = median([mib(t.get("peak RSS after all warm invocations", {}).get("hookrelay")) for t in tables])
    print(
        f"| {name} | {f'`{build_env}`' if build_env else '—'} | {fmt_ms(each('init + first invocation p50'))} ({fmt_ms(each('init + first invocation p50', 'floor'))}) "
        f"| {fmt_ms(each('init p50'))} | {fmt_ms(each('first invocation p50'))} "
        f"| {fmt_ms(each(WARM_OVERHEAD), 2)} ({fmt_ms(each(WARM_OVERHEAD, 'floor'), 2)}) "
        f"| {'—' if rss is None else f'{rss:.1f} MiB'} | {mb(os.path.getsize(binary))} | {mb(zipped_size(binary))} |"
    )


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {
        "request-path": request_path,
        "size": size,
        "levers-header": levers_header,
        "lever": lever,
        "region": region,
    }[command](*args)
