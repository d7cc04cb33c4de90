#!/usr/bin/env bash
# Refresh requirements.lock from pyproject.toml: exact versions of every package, for
# CPython 3.11+ on every platform (markers select the platform's packages).
#   bash scripts/lock.sh              keep the current pins where they still fit
#   bash scripts/lock.sh --upgrade    move every package to its newest fitting release
# uv resolves in seconds from package metadata alone and writes a plain requirements file
# that pip installs; pip-tools would have to download and build candidates to resolve.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=uv
"$uv" pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
  --constraint scripts/lock-constraints.txt --annotation-style line \
  --output-file requirements.lock "$@"
