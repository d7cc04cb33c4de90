#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the offline CPU test suite, spread
# over one test process per core (at most 4; pytest-xdist). Ray tests stay in one process
# (their xdist group). Pass -n 0 to run everything in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/setup_chromium.sh
exec .venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadgroup "$@"
