#!/usr/bin/env bash
# Create .venv next to the project and install rotoscope with its test tools into it.
# Safe to run again: it reinstalls only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "rotoscope needs Python 3.10 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.rotoscope-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing rotoscope into .venv (first time: torch and diffusers, a few minutes)" >&2
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e ".[dev]"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "install failed; the whole pip log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
