#!/usr/bin/env bash
# Installs Debian's Chromium for the UI test when it is missing and we may install packages (root).
# Without it the UI test is skipped with a message saying so.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the UI test..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: chromium is not installed and this user cannot install it; the UI test will be skipped" >&2
fi
