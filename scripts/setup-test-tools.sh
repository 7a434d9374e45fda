#!/usr/bin/env bash
# System tools some tests use (network namespaces, gratuitous ARP, a headless
# browser, firewall rules for partitions). Run as root; each installer is
# idempotent and a missing tool only makes its tests skip with the reason.
set -uo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-test-tools: not root, so nothing is installed; tests that need ip/arping"
  echo "  (virtual IP), chromium (Mirror Monitor page) or haproxy will skip: run"
  echo "  'sudo bash scripts/setup-test-tools.sh' once to run them too"
  exit 0
fi
echo "setup-test-tools: installing what the tests need if missing (Debian packages):"
echo "  iproute2 + iputils-arping (virtual IP), chromium (Mirror Monitor page), haproxy"
for script in install-netns-tools.sh install-browser.sh install-fault-tools.sh install-haproxy.sh; do
  if [ -x "./$script" ] || [ -f "./$script" ]; then
    bash "./$script" || echo "setup-test-tools: $script failed; its tests will skip"
  fi
done
exit 0
