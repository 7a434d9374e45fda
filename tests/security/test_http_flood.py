"""Issue 12, item 5: the HTTP port cannot take the descriptors the databases need.

The HTTP port (aiohttp) had no connection cap and no time limit on a
request: slowloris clients held connections for minutes, and idle HTTPS
connections used up the member's file descriptors -- clients were refused
and the log filled with ``Errno 24`` lines. Now the HTTP port has its own
caps (overall and per host), a request's headers and body must each arrive
within ``limits.http_timeout_s``, the caps are fitted to the descriptor
limit at start (``descriptor_budget`` event when they had to be lowered),
and accept errors are one event a minute, not a line per attempt.

Here the member runs with RLIMIT_NOFILE 512 and is sent 600 idle HTTPS
connections from 20 hosts plus slowloris clients.
"""

from __future__ import annotations

import re
import ssl
import time
import urllib.request
from pathlib import Path

import pytest

from litemirror.testing.cluster import Cluster
from litemirror.testing.flood import Flood
from litemirror.testing.secured import (
    ATTACKERS,
    connect,
    secured_cluster,
    start_with_users,
    wait_primary,
)
from litemirror.testing.workload import TABLE

NOFILE = 512


@pytest.mark.slow
def test_idle_and_slow_https_connections_do_not_exhaust_the_member(tmp_path: Path) -> None:
    # Fewer open databases than the default (256) leave room for connections in 512.
    c = secured_cluster(
        tmp_path,
        distinct_hosts=True,
        http=True,
        sections={"server": {"max_open_databases": 16}},
        nofile=NOFILE,
    )
    try:
        _attack_and_check(c)
    finally:
        c.kill_all()


def _attack_and_check(c: Cluster) -> None:
    floods: list[Flood] = []
    try:
        start_with_users(c, schema=[TABLE])
        primary = wait_primary(c)
        p = c[primary]
        assert p.http is not None and c.certs is not None
        host, port = p.http.rsplit(":", 1)
        ca = str(c.certs / "ca.crt")
        # Slowloris first (once the idle flood has taken every place, nobody new gets one).
        slow = Flood(host, int(port), ATTACKERS[20:25], 2, mode="slowloris", ca=ca, ping_s=1.0)
        floods = [slow.start()]
        slow.wait_open(10, 30)
        began = time.monotonic()
        idle = Flood(host, int(port), ATTACKERS[:20], 30, mode="silent", ca=ca, retry_s=1.0)
        floods.append(idle.start())
        idle.wait_tried(600)  # every one of them has tried at least once

        # The member still serves clients: a new login, a write.
        conn = connect(c, "writer", members=[primary], isolation_level=None, connect_timeout=10)
        conn.execute("INSERT INTO t (id, v) VALUES (1, 'during the flood')")
        conn.close()
        assert idle.refused > 0, str(idle)

        # Slow requests are cut at limits.http_timeout_s (10 s), not held for minutes.
        deadline = began + 30
        while slow.closed < 10 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert slow.closed >= 10, str(slow)
        assert max(slow.lifetimes) < 14, slow.lifetimes

        # Another write while the idle flood goes on.
        conn = connect(c, "writer", members=[primary], isolation_level=None, connect_timeout=10)
        conn.execute("INSERT INTO t (id, v) VALUES (2, 'still during the flood')")
        conn.close()
    finally:
        for f in floods:
            f.stop()
    # After the flood. The log did not fill with one line per refused attempt.
    log = p.log_path.read_text(errors="replace")
    exhausted = len(re.findall(r"Errno 24|Too many open files", log))
    assert exhausted < 10, f"{exhausted} lines about exhausted descriptors"
    # What happened is in the event log: the lowered caps, the refused peers.
    budget = p.events("descriptor_budget")
    assert budget and f"RLIMIT_NOFILE {NOFILE}" in budget[0]["message"], budget
    refused = p.events("connection_refused")
    limits = {e["data"]["limit"] for e in refused}
    assert limits & {"limits.http_max_connections", "limits.http_max_connections_per_host"}
    assert all(e["data"]["peer"].split(":")[0] in ATTACKERS for e in refused), refused[:3]
    # Once the flood is over, HTTPS answers again.
    ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(f"https://{p.http}/health", context=ctx, timeout=10) as r:
        assert r.status == 200
