#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the browser tests (Playwright drives /usr/bin/chromium; nothing
# downloads a browser of its own, which fails on these machines). Idempotent.
# No recommends: with them the install pulls systemd, udev, avahi and cups helpers (twice the size).
# Writes OR1_CHROMIUM and OR1_CHROMEDRIVER into the env file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root chromium_install
apt_install chromium chromium-driver
# chromium's wrapper script prints its version without starting a browser.
log chromium "$(/usr/bin/chromium --version 2>/dev/null | head -1); $(/usr/bin/chromedriver --version | head -1)"
env_set OR1_CHROMIUM /usr/bin/chromium OR1_CHROMEDRIVER /usr/bin/chromedriver
echo "OR1_CHROMIUM=/usr/bin/chromium  OR1_CHROMEDRIVER=/usr/bin/chromedriver"
echo "launch flags: --headless --no-sandbox --disable-gpu --disable-quic --no-first-run" \
  "--disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage"
