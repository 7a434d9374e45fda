#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the benchmark if it is not there yet.
#
# Idempotent and quiet: when /usr/lib/postgresql/<version>/bin/postgres exists
# it does nothing. The bench starts its own clusters in a temp dir, so the
# package's default "main" cluster is not wanted: it would be one more server
# eating the machine's cores during the run, so none is created.
set -euo pipefail

have_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null &&
    compgen -G '/usr/lib/postgresql/*/bin/pg_basebackup' >/dev/null
}

if have_postgres; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_postgres.sh: PostgreSQL is not installed and this is not root;" \
    "install Debian's 'postgresql' package (apt-get install postgresql) and rerun" >&2
  exit 1
fi

# The package's createcluster.conf (managed by ucf) includes this directory,
# so a drop-in turns the main cluster off without touching that file.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" \
  >/etc/postgresql-common/createcluster.d/litemirror-bench.conf

export DEBIAN_FRONTEND=noninteractive
echo "installing PostgreSQL (Debian package) for the benchmark..." >&2
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if ! have_postgres; then
  echo "install_postgres.sh: apt-get finished but no /usr/lib/postgresql/*/bin/postgres" \
    "was found; check the apt output above" >&2
  exit 1
fi
