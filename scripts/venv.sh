# The Python tools, from hash-locked lock files (requirements/*.txt), installed with uv.
#
#   source scripts/venv.sh [run|test|bench]     # default: test
#
#   run    ./.venv with requirements/run.txt (moto, cargo-lambda + zig, jsonschema): the run command
#   test   ./.venv with requirements/test.txt (run's tools plus the SAM CLI and the official
#          Standard Webhooks libraries) and ./.venv-checkov with requirements/checkov.txt
#   bench  test's, plus ./.venv-bench with requirements/bench.txt (the Python peer)
#
# uv comes from PyPI: the one on PATH if there is one, else it is installed into ./.venv-uv with
# pip; when neither works, pip installs the lock files itself (slower, same hashes). Each venv
# keeps a stamp per lock file, so a second run only compares checksums. Sourcing this from your
# own shell never closes it (failures return an error instead of exiting), and puts ./.venv/bin
# on PATH for sam, cargo-lambda and zig.
HOOKRELAY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOOKRELAY_UV_VERSION="0.13.9"

# Prints the uv to use, installing the pinned one into ./.venv-uv when none is on PATH.
hookrelay_uv() {
  if command -v uv >/dev/null 2>&1; then
    command -v uv
    return 0
  fi
  local tool="$HOOKRELAY_ROOT/.venv-uv"
  if [ ! -x "$tool/bin/uv" ]; then
    echo "== installing uv $HOOKRELAY_UV_VERSION into .venv-uv (pip)" >&2
    python3 -m venv "$tool" >&2 2>/dev/null \
      && "$tool/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$HOOKRELAY_UV_VERSION" >&2 \
      || { rm -rf "$tool"; return 1; }
  fi
  echo "$tool/bin/uv"
}

# Makes `venv` hold `lock` (additively: several lock files may share one venv).
hookrelay_ensure_venv() {
  local venv="$1" lock="$2"
  local stamp="$venv/.stamp-$(basename "$lock")"
  local want uv
  want="$(sha256sum "$lock" | cut -d' ' -f1)" || return 1
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "== installing $(basename "$lock") into $(basename "$venv")"
  if uv="$(hookrelay_uv)"; then
    if [ ! -x "$venv/bin/python" ]; then
      "$uv" venv --quiet --python python3 "$venv" || return 1
    fi
    "$uv" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$lock" || return 1
  else
    echo "   (uv unavailable: installing with pip)"
    if [ ! -x "$venv/bin/python" ]; then
      if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian/Ubuntu ship venv separately; install it when we can, else say how.
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
          apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null || return 1
          rm -rf "$venv" && python3 -m venv "$venv" || return 1
        else
          echo "python3 -m venv failed: install your distribution's python3-venv package" >&2
          return 1
        fi
      fi
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock" \
      || return 1
  fi
  echo "$want" > "$stamp"
}

hookrelay_venvs() {
  local set="${1:-test}"
  case "$set" in
    run) hookrelay_ensure_venv "$HOOKRELAY_ROOT/.venv" "$HOOKRELAY_ROOT/requirements/run.txt" ;;
    test|bench)
      hookrelay_ensure_venv "$HOOKRELAY_ROOT/.venv" "$HOOKRELAY_ROOT/requirements/test.txt" \
        && hookrelay_ensure_venv "$HOOKRELAY_ROOT/.venv-checkov" "$HOOKRELAY_ROOT/requirements/checkov.txt" \
        || return 1
      if [ "$set" = bench ]; then
        hookrelay_ensure_venv "$HOOKRELAY_ROOT/.venv-bench" "$HOOKRELAY_ROOT/requirements/bench.txt" || return 1
      fi
      ;;
    *) echo "scripts/venv.sh: unknown set '$set' (run, test or bench)" >&2; return 2 ;;
  esac
  export SAM_CLI_TELEMETRY=0
  # sam, cargo-lambda and zig for the commands you type next (scripts use explicit paths).
  case ":$PATH:" in
    *":$HOOKRELAY_ROOT/.venv/bin:"*) ;;
    *) export PATH="$HOOKRELAY_ROOT/.venv/bin:$PATH" ;;
  esac
}

hookrelay_venvs "${1:-test}"
