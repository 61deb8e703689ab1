#!/usr/bin/env bash
# Install Debian's Chromium (and its ChromeDriver) for the browser tests, idempotently.
# Playwright drives this system binary (/usr/bin/chromium); no browser is ever downloaded
# by Playwright or Selenium. Needs root (apt-get) the first time; a no-op afterwards.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
chromium --version
