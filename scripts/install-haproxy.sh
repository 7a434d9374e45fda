#!/bin/sh
# Install HAProxy (Debian's package) for tests/integration/test_haproxy.py and
# to try docs/haproxy.cfg. The test starts its own haproxy process with a
# generated config; the packaged service is left as the package sets it up.
# Run as root (or with sudo) on Debian/Ubuntu; safe to run again.
set -eu
if command -v haproxy >/dev/null 2>&1; then
    echo "haproxy already installed: $(haproxy -v 2>/dev/null | head -n 1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends haproxy
haproxy -v | head -n 1
