#!/usr/bin/env bash
# Regenerates the hash-locked requirements/*.txt from requirements/*.in (after changing a pin).
# run.txt is resolved within test.txt, so the run and test commands agree on every version in
# the ./.venv they share. Python 3.10 is the oldest the SAM CLI supports.
set -euo pipefail
cd "$(dirname "$0")/../requirements"
source ../scripts/venv.sh run >/dev/null   # for uv
uv="$(hookrelay_uv)"
compile() { "$uv" pip compile --quiet --universal --generate-hashes --python-version 3.10 "$@"; }
compile test.in -o test.txt
compile run.in -c test.txt -o run.txt
compile checkov.in -o checkov.txt
compile bench.in -o bench.txt
echo "requirements/*.txt regenerated"
