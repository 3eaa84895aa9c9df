# Sourced by the README commands: makes ./.venv hold exactly requirements-dev.txt and
# ./.venv-checkov hold requirements-checkov.txt (checkov's pins conflict with the SAM CLI's).
# Idempotent: a second run only compares checksums (well under a second).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ensure_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.requirements.sha256"
  local want
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"

  if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      # Debian/Ubuntu ship venv separately; install it when we can, else say how.
      if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$venv" && python3 -m venv "$venv"
      else
        echo "python3 -m venv failed: install your distribution's python3-venv package" >&2
        exit 1
      fi
    fi
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== installing Python tools into $(basename "$venv") ($(basename "$requirements"))"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
}

ensure_venv "$root/.venv" "$root/requirements-dev.txt"
ensure_venv "$root/.venv-checkov" "$root/requirements-checkov.txt"
export SAM_CLI_TELEMETRY=0
