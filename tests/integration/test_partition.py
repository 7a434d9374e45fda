"""A network partition cuts the primary off from the backup and the arbiter.

The fault proxy (litemirror.testing.proxy) sits in front of every member and
the arbiter; members reach each other only through it, each from its own
loopback address, so one member can be cut off while clients still reach it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.testing.proxy import Rule
from litemirror.testing.trials.mirror import TrialMirror


@pytest.fixture
def mirror(tmp_path: Path) -> Any:
    m = TrialMirror(
        tmp_path / "m",
        members=[("a", "failover"), ("b", "failover")],
        mirror={"qos_timeout_ms": 1000, "heartbeat_ms": 200},
    )
    try:
        m.start()
        yield m
    finally:
        m.close()


def _primary(m: TrialMirror) -> str:
    for _ in range(200):
        for n in m.names:
            st = m[n].status()
            if st.get("role") == "primary" and st.get("writable"):
                return n
        time.sleep(0.05)
    raise AssertionError("no primary")


def test_isolated_primary_stops_committing_and_the_backup_takes_over(mirror: Any) -> None:
    m = mirror
    p = _primary(m)
    b = "b" if p == "a" else "a"
    m[b].wait_until(lambda s: s["failover"]["state"] == "backup active", 30, "backup active")
    conn = litemirror.connect(m.url("app", members=[p]), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    acked = []
    for i in range(100):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        acked.append(i)

    # Cut the primary off from the backup and the arbiter; clients still reach it.
    blackhole = Rule(mode="blackhole")
    m.proxy.set_rule(p, m.host_of(b), blackhole)
    m.proxy.set_rule(b, m.host_of(p), blackhole)
    m.proxy.set_rule("arbiter", m.host_of(p), blackhole)
    t_cut = time.monotonic()

    outcome: list[str] = []

    def in_flight() -> None:
        try:
            conn.execute("INSERT INTO t VALUES (1000)")
            outcome.append("acked")
        except errors.Error as exc:
            outcome.append(type(exc).__name__)

    t = threading.Thread(target=in_flight, daemon=True)
    t.start()
    st = m[p].wait_until(lambda s: s["failover"]["state"] == "in trouble", 10, "in trouble")
    print(
        f"old primary stopped committing {time.monotonic() - t_cut:.2f}s after the cut: "
        f"{st['reason']}"
    )
    assert st["writable"] is False
    # The decision that stopped it says why (the status reason is the latest
    # sentence, which a later event may have replaced by the standing one).
    assert any(
        "not committing until I learn whether a failover happened" in d
        for d in st["failover"]["decisions"]
    ), st["failover"]["decisions"]
    m[b].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 15, "takeover")
    # The isolated member refuses new writes (clients can still reach it).
    direct = litemirror.connect(m.url("app", members=[p]), isolation_level=None, connect_timeout=2)
    with pytest.raises(errors.OperationalError):
        direct.execute("INSERT INTO t VALUES (2000)")
    # The new primary takes writes.
    w = litemirror.connect(m.url("app", members=[b]), isolation_level=None)
    for i in range(3000, 3100):
        w.execute("INSERT INTO t VALUES (?)", (i,))
        acked.append(i)

    # Heal: the old primary learns the newer epoch, is fenced and rejoins as backup.
    m.proxy.heal()
    m[p].wait_until(
        lambda s: (
            s.get("role") == "backup"
            and s["failover"]["state"] in ("backup active", "backup catching up")
        ),
        20,
        "rejoined",
    )
    t.join(20)
    assert outcome and outcome[0] != "acked", outcome
    ids = {r[0] for r in w.execute("SELECT id FROM t")}
    assert set(acked) <= ids
    m[b].wait_until(lambda s: s.get("backup_active") is True, 30, "backup active again")
    r = m.verify()
    assert r.returncode == 0, r.stdout + r.stderr
