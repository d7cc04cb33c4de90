#!/usr/bin/env bash
# The report page tests (tests/e2e/test_report_page.py) drive a headless Chromium through
# Playwright, using the system's Chromium (Playwright never downloads a browser here).
# Install Debian's package when it is missing and this can (root with apt-get); otherwise
# say exactly what is missing: those tests then fail with the same message, never skip.
set -euo pipefail
if [ -n "${ROTOSCOPE_CHROMIUM:-}" ]; then
  [ -x "$ROTOSCOPE_CHROMIUM" ] && exit 0
  echo "ROTOSCOPE_CHROMIUM=$ROTOSCOPE_CHROMIUM is not an executable Chromium" >&2
  exit 0
fi
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Chromium for the report page tests (apt-get install chromium)" >&2
  log=/tmp/rotoscope-chromium-install.log
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
      >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "could not install chromium (log: $log); the report page tests will fail" >&2
  fi
else
  echo "missing: Chromium (the report page tests need it and will fail)." >&2
  echo "  install it with: sudo apt-get install -y chromium" >&2
  echo "  or set ROTOSCOPE_CHROMIUM to a Chromium or Chrome binary" >&2
fi
