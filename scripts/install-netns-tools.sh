#!/usr/bin/env bash
# Install the tools the virtual IP needs (and its network-namespace test uses):
# iproute2 for `ip addr` / `ip netns`, iputils-arping for gratuitous ARP.
# Idempotent: does nothing when both commands are already present.
set -euo pipefail

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v arping >/dev/null 2>&1 || missing+=(iputils-arping)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-netns-tools: ip and arping already present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-netns-tools: need root to install ${missing[*]} (run as root or with sudo)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-netns-tools: apt-get not found; install ${missing[*]} with this system's package manager" >&2
  exit 1
fi

echo "install-netns-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; update once, then install.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
command -v ip >/dev/null && command -v arping >/dev/null
echo "install-netns-tools: done"
