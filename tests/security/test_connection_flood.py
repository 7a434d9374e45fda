"""Issue 12, item 4: a flood of anonymous connections locks nobody out and does not stop failover.

Anyone who can open a TLS connection to a member can say Hello without
credentials and ping forever. Such connections used to count against
``limits.max_connections`` and stay for ``idle_timeout_s``: enough of them
locked every client out, and a backup restarted meanwhile could not rejoin
(its replication link was refused), so the mirror could not fail over while
the flood lasted. Now they have their own small caps, overall and per host,
and are closed ``limits.anonymous_timeout_s`` after their Hello; clients
that log in, and members' links, are counted apart.

The attack here: 15 hosts, 8 anonymous pinging connections each, against
both members, reconnecting as fast as they are closed -- more than
``limits.max_anonymous`` and, for the old code, more than
``limits.max_connections`` (lowered to 100 so the test stays small).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litemirror.testing.cluster import Cluster
from litemirror.testing.flood import Flood
from litemirror.testing.secured import (
    ATTACKERS,
    connect,
    secured_mirror,
    url,
    wait_primary,
)
from litemirror.testing.workload import TABLE, Workload, other

LIMITS = {"max_connections": 100}
HOSTS, PER_HOST = 15, 8  # 120 connections per member


@pytest.mark.slow
def test_anonymous_flood_locks_out_neither_clients_nor_members(tmp_path: Path) -> None:
    c = secured_mirror(
        tmp_path,
        distinct_hosts=True,
        mirror={"qos_timeout_ms": 2000, "heartbeat_ms": 250},
        sections={"limits": LIMITS},
        schema=[TABLE],
    )
    floods: list[Flood] = []
    try:
        primary = wait_primary(c)
        backup = other(primary)
        assert c.certs is not None
        floods = [
            Flood(
                mp.host,
                mp.port,
                ATTACKERS[:HOSTS],
                PER_HOST,
                ca=str(c.certs / "ca.crt"),
                retry_s=1.0,
            ).start()
            for mp in c.members.values()
        ]
        for f in floods:
            f.wait_open(60)  # as many as the member lets in

        # A client that logs in still gets a connection and writes.
        conn = connect(c, "writer", members=[primary], isolation_level=None, connect_timeout=10)
        conn.execute("INSERT INTO t (id, v) VALUES (1, 'during the flood')")
        conn.close()

        # A backup restarted during the flood rejoins: its replication link gets through.
        c[backup].kill()
        c[backup].start(wait=False)
        c[primary].wait_until(lambda s: s.get("backup_active") is True, 90, "backup rejoined")
        c[backup].wait_until(
            lambda s: (s.get("failover") or {}).get("state") == "backup active",
            30,
            "the backup knows it is active",
        )

        # And the mirror fails over: the primary is killed, the backup takes over.
        with Workload(url(c, "writer", retry=5)) as w:
            w.wait_acks(50)
            c[primary].kill()
            w.wait_acks(len(w.acked) + 50, timeout=60)
        st = c[backup].wait_until(lambda s: bool(s.get("writable")), 30, "took over")
        assert st["role"] == "primary"
        present = ids_as_root(c, backup)
        lost = [i for i, _, _ in w.acked if i not in present]
        assert not lost, f"acknowledged writes lost: {lost[:10]}"

        # The flood was held back, not served: refusals and closings, logged with the peer.
        for f in floods:
            assert f.refused > 0 and f.closed > 0, str(f)
        seen = c[backup].events("connection_refused") + c[primary].events("connection_refused")
        limits = {ev["data"]["limit"] for ev in seen}
        assert limits & {"limits.max_anonymous", "limits.max_anonymous_per_host"}, limits
        assert all(ev["data"]["peer"].split(":")[0] in ATTACKERS for ev in seen), seen[:3]
        assert c[backup].status()["admission"]["connections"]["anonymous"] <= 64
    finally:
        for f in floods:
            f.stop()
        c.kill_all()


def ids_as_root(c: Cluster, member: str) -> set[int]:
    """The ids in table t as ``member`` holds them."""
    conn = connect(c, "root", members=[member], isolation_level=None, read_only=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM t")}
    finally:
        conn.close()
