#!/usr/bin/env bash
# Command one: the whole pipeline on this machine (local SQS endpoint, the receiver under
# `cargo lambda watch`, signed sample deliveries, the stream bridge reading stand-ins of both
# streams, and what arrived in the queue).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh run
echo "== building the receiver (as cargo lambda watch builds it), the stream bridge and the stand-ins"
cargo build --locked --bin hookrelay --bin hookrelay-gap-detector
cargo build --locked -p hookrelay-bridge -p hookrelay-devtools --bin hookrelay-bridge --bin hookrelay-stream-sim --bin hookrelay-dev
exec .venv/bin/python scripts/run_local.py
