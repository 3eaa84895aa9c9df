#!/usr/bin/env bash
# Every benchmark in BENCHMARKS.md, in one run: `bash scripts/bench.sh [--quick] [--levers]`.
#   1. the request path in-process against its floor (criterion, benches/request_path.rs);
#   2. cold start, first and warm invocations, handler overhead and peak RSS of the release
#      binary under the Runtime API emulator against a local TLS SQS endpoint, and the same for
#      the Python peer (benches/python_peer) in the same run (hookrelay-lambda-bench); then the
#      same under Lambda's CPU share at 128, 512 and 1769 MB, with init at full speed and with
#      init throttled (--memory-mb, a cgroup v1 quota; unthrottled where cgroups aren't writable);
#      and the in-region model: canned SQS, DynamoDB and Secrets Manager endpoints over TLS
#      answering after 10 ms, hookrelay (store off, then on) beside the floor and the hello-world
#      (benches/floor) and the peer, at each memory size, three runs each (--canned-latency-ms);
#      then at 128 MB with init throttled and with each runtime lever (fewer secret reads, no
#      platform roots), and the medians of the runs (scripts/bench_report.py region);
#   3. the deployment size: the stripped arm64 bootstrap and its zip (cargo lambda build);
#   4. the stream bridge's sustained throughput: stand-ins of both streams in burst mode, the
#      release hookrelay-bridge, and moto, then a null SQS endpoint (scripts/bench_bridge.py);
#   5. with --levers: each release-profile lever, rebuilt and measured in the in-region model at
#      128 MB (init, first invocation, warm overhead, binary size) against the shipped build.
# --quick shortens every measurement (for trying the command, not for BENCHMARKS.md).
# Results: target/bench/*.md, printed at the end. Needs Rust and Python 3; installs the rest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

quick=0 levers=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --levers) levers=1 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--levers]" >&2; exit 2 ;;
  esac
done

source scripts/venv.sh bench
export PATH="$root/.venv/bin:$PATH"   # cargo-lambda and zig for the arm64 build

out="$root/target/bench"
mkdir -p "$out"
if [ "$quick" = 1 ]; then
  criterion_args=(--warm-up-time 1 --measurement-time 2)
  lambda_args=(--cold-starts 5 --warm 500)
  cpu_args=(--cold-starts 5 --warm 50)
  region_args=(--cold-starts 5 --warm 50) region_runs=1
  moto_events=(--trades 400 --rekko-events 100)
  null_events=(--trades 2000 --rekko-events 500)
else
  criterion_args=()
  lambda_args=(--cold-starts 20 --warm 10000)
  cpu_args=(--cold-starts 20 --warm 200)
  region_args=(--cold-starts 15 --warm 200) region_runs=3
  moto_events=(--trades 2000 --rekko-events 500)
  null_events=(--trades 20000 --rekko-events 5000)
fi

machine() {
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo "- Kernel: $(uname -r); $(rustc --version); $(python3 --version)"
}

echo "== 1/4 request path vs floor (criterion)"
cargo bench --locked --bench request_path -- "${criterion_args[@]}" | tee "$out/criterion.txt"
.venv/bin/python scripts/bench_report.py request-path target/criterion > "$out/request_path.md"

echo "== 2/4 Lambda: cold start, warm invocations, peer"
cargo build --locked --release -p hookrelay-receiver -p hookrelay-devtools -p hookrelay-bench-floor \
  --bin hookrelay --bin hookrelay-lambda-bench --bin hookrelay-floor --bin hookrelay-hello
.venv/bin/python scripts/bench_tls.py "$out/tls"
lambda_bench() {
  HOOKRELAY_TEST_PYTHON="$root/.venv/bin/python" target/release/hookrelay-lambda-bench \
    --tls-dir "$out/tls" --log-dir "$out/lambda-logs" "$@"
}
lambda_bench --peer-python "$root/.venv-bench/bin/python" --peer-dir benches/python_peer \
  "${lambda_args[@]}" | tee "$out/lambda.md"
: > "$out/lambda-cpu.md"
for memory in 128 512 1769; do
  for init in full-speed throttled; do
    lambda_bench --peer-python "$root/.venv-bench/bin/python" --peer-dir benches/python_peer \
      "${cpu_args[@]}" --memory-mb "$memory" --init "$init" | tee -a "$out/lambda-cpu.md"
  done
done

: > "$out/lambda-region.md"
peer=(--peer-python "$root/.venv-bench/bin/python" --peer-dir benches/python_peer)
region() {
  lambda_bench --canned-latency-ms 10 --floor target/release/hookrelay-floor \
    --hello target/release/hookrelay-hello "${region_args[@]}" "$@" | tee -a "$out/lambda-region.md"
}
for memory in 128 512 1769; do
  for store in off on; do
    store_env=()
    [ "$store" = on ] && store_env=(--env HOOKRELAY_IDEMPOTENCY_TABLE=bench)
    for run in $(seq "$region_runs"); do
      echo "### $memory MB, store $store, run $run" >> "$out/lambda-region.md"
      region "${peer[@]}" "${store_env[@]}" --memory-mb "$memory"
    done
  done
done
# Init throttled too (the provisioned-concurrency model), and the runtime levers, at 128 MB.
for run in $(seq "$region_runs"); do
  echo "### 128 MB, store off, init throttled, run $run" >> "$out/lambda-region.md"
  region "${peer[@]}" --memory-mb 128 --init throttled
done
# The levers run without the peer, so they get a baseline of their own.
for lever in "as deployed, without the peer|" \
  "one secret read (relay keys from the environment)|--secret-reads webhooks" \
  "no secret read (both from the environment)|--secret-reads none" \
  "no platform roots (the endpoint's CA only)|--trust-bundle none"; do
  for run in $(seq "$region_runs"); do
    echo "### 128 MB, store off, ${lever%%|*}, run $run" >> "$out/lambda-region.md"
    # shellcheck disable=SC2086 # the lever's flags are words
    region --memory-mb 128 ${lever#*|}
  done
done
.venv/bin/python scripts/bench_report.py region "$out/lambda-region.md" | tee "$out/region-summary.md"

echo "== 3/4 deployment size (arm64, as sam build makes it)"
cargo lambda build --release --arm64 --bin hookrelay >/dev/null
.venv/bin/python scripts/bench_report.py size target/lambda/hookrelay/bootstrap target/release/hookrelay | tee "$out/size.md"

echo "== 4/4 stream bridge throughput"
cargo build --locked --release -p hookrelay-bridge -p hookrelay-devtools --bin hookrelay-bridge --bin hookrelay-stream-sim \
  --bin hookrelay-dev
.venv/bin/python scripts/bench_bridge.py target/release --sink moto "${moto_events[@]}" | tee "$out/bridge.md"
.venv/bin/python scripts/bench_bridge.py target/release --sink null "${null_events[@]}" | tee -a "$out/bridge.md"

if [ "$levers" = 1 ]; then
  echo "== levers (each one a separate release build of the receiver, in the in-region model at 128 MB)"
  .venv/bin/python scripts/bench_report.py levers-header > "$out/levers.md"
  # name | environment for the build
  while IFS='|' read -r name build_env; do
    [ -z "$name" ] && continue
    dir="$root/target/levers/$name"
    mkdir -p "$dir"
    echo "-- $name: ${build_env:-the shipped settings}"
    if [ -z "$build_env" ]; then
      binary="$root/target/release/hookrelay"   # built in step 2
    else
      env $build_env CARGO_TARGET_DIR="$dir" cargo build --locked --release --bin hookrelay >/dev/null
      binary="$dir/release/hookrelay"
    fi
    : > "$dir/lambda.md"
    for run in $(seq "$region_runs"); do
      lambda_bench --receiver "$binary" --canned-latency-ms 10 --floor target/release/hookrelay-floor \
        "${region_args[@]}" --memory-mb 128 >> "$dir/lambda.md"
    done
    .venv/bin/python scripts/bench_report.py lever "$name" "$build_env" "$dir/lambda.md" "$binary" >> "$out/levers.md"
    if [ -n "$build_env" ]; then rm -rf "$dir/release"; fi   # a lever build is 1 to 2 GB
  done <<'LEVERS'
shipped|
opt-level-s|CARGO_PROFILE_RELEASE_OPT_LEVEL=s
opt-level-z|CARGO_PROFILE_RELEASE_OPT_LEVEL=z
panic-abort|CARGO_PROFILE_RELEASE_PANIC=abort
LEVERS
  cat "$out/levers.md"
fi

{ echo "Machine:"; machine; } | tee "$out/machine.md"
echo
cat "$out/request_path.md"
