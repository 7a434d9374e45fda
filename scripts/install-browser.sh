#!/bin/sh
# Install the headless browser the Mirror Monitor test drives: Debian's chromium.
# The test uses playwright's Python package (the `test` extra) with
# executable_path=/usr/bin/chromium, so playwright never downloads a browser.
# Run as root (or with sudo) on Debian/Ubuntu; safe to run again.
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version 2>/dev/null || true
