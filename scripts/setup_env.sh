#!/usr/bin/env bash
# Create .venv next to the project and install rotoscope with its test tools into it,
# at the exact versions of requirements.lock (the versions the tests ran with).
# Safe to run again: it reinstalls only when pyproject.toml or the lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "rotoscope needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.rotoscope-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "installing rotoscope into .venv from requirements.lock (first time: torch and diffusers, a few minutes)" >&2
  log=.venv/install.log
  # The lock already names every package, so the project itself installs without deps:
  # nothing outside the lock can slip in.
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -r requirements.lock &&
         .venv/bin/python -m pip install --no-deps -e . &&
         .venv/bin/python -m pip check; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "install failed; the whole pip log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
