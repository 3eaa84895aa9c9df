#!/usr/bin/env bash
# Command one: the whole pipeline on this machine (local SQS endpoint, the receiver under
# `cargo lambda watch`, signed sample deliveries, and what arrived in the queue).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
echo "== building the receiver"
cargo build --locked --bin hookrelay
exec .venv/bin/python scripts/run_local.py
