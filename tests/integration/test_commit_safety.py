"""No reader on any member sees a change that a failover can take back.

Real member and arbiter processes. Two paths are driven on purpose:

* a primary is deposed while a group waits for its backup: the group is
  never committed — not by the old primary's commit path, and not by the
  recovery it runs when it demotes itself — and is rolled back on rejoin
  without ever having reached a database;
* a reporting member receives records before the backup acknowledged them
  (its link is not held back, the backup's is): it applies none of them until
  they are committed, and those a failover removes it never shows at all.
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

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}


class Watcher(threading.Thread):
    """Reads the ids of table ``t`` on one member, as fast as it can, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[int, float] = {}
        self.reads = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn = litemirror.connect(self.url, timeout=2, connect_timeout=2)
                try:
                    while not self.stop.is_set():
                        for (i,) in conn.execute("SELECT id FROM t").fetchall():
                            self.seen.setdefault(i, time.monotonic())
                        self.reads += 1
                        time.sleep(0.005)
                finally:
                    conn.close()
            except errors.Error:
                time.sleep(0.02)

    def halt(self) -> None:
        self.stop.set()
        self.join(10)


class Pending(threading.Thread):
    """One autocommit INSERT whose outcome is recorded (it may wait a long time)."""

    def __init__(self, url: str, row: int) -> None:
        super().__init__(daemon=True)
        self.url, self.row = url, row
        self.outcome: str | None = None

    def run(self) -> None:
        try:
            conn = litemirror.connect(self.url, isolation_level=None, timeout=60)
            conn.execute("INSERT INTO t (id) VALUES (?)", (self.row,))
            self.outcome = "acked"
        except (errors.Error, OSError) as exc:
            self.outcome = type(exc).__name__


def _ids(url: str) -> set[int]:
    conn = litemirror.connect(url)
    try:
        return {i for (i,) in conn.execute("SELECT id FROM t")}
    finally:
        conn.close()


def test_deposed_primary_never_commits_a_group_whose_replication_failed(
    tmp_path: Path,
) -> None:
    m = TrialMirror(tmp_path / "m", members=[("a", "failover"), ("b", "failover")], mirror=FAST)
    try:
        m.start()
        _deposed_primary(m)
    finally:
        m.close()


def _deposed_primary(m: TrialMirror) -> None:
    p = _primary(m)
    o = "b" if p == "a" else "a"
    m[o].wait_until(lambda s: s["failover"]["state"] == "backup active", 20, "backup active")
    conn = litemirror.connect(m.url("app", members=[p]), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    for i in range(1, 51):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
    conn.close()
    before = m[p].status()["lsn"]

    # The backup's link to the primary is held: the next record never reaches it.
    m.proxy.set_rule(p, m.host_of(o), Rule(mode="blackhole"))
    pending = Pending(m.url("app", members=[p]), 1000)
    pending.start()
    m[p].wait_until(lambda s: s["lsn"] > before, 5, "the group's record durable on the primary")
    # The primary stops before its QoS timeout could let it go on alone; the
    # backup and the arbiter both lose it, and the backup takes over.
    m[p].pause()
    m[o].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 20, "takeover")
    assert pending.outcome is None
    # The held connections are reset (their bytes never arrive), the link heals.
    m.proxy.cut(p, m.host_of(o))
    m.proxy.heal()

    # The old primary resumes, demotes itself and rejoins. Readers on it watch.
    watch = Watcher(m.url("app", members=[p], read_only=True))
    watch.start()
    m[p].resume()
    m[p].wait_until(
        lambda s: (
            s.get("role") == "backup" and (s.get("replication") or {}).get("state") == "streaming"
        ),
        30,
        "old primary rejoined",
    )
    pending.join(30)
    time.sleep(0.3)
    watch.halt()

    assert pending.outcome not in (None, "acked"), pending.outcome
    assert 1000 not in watch.seen, "a reader on the deposed primary saw the failed group"
    assert watch.reads > 0
    assert 1000 not in _ids(m.url("app", members=[o]))
    # The rejoin rolled the record back, and it had reached no database.
    rolled = m[p].events("rejoin_rolled_back")
    assert rolled, m[p].log_tail()
    assert "(0 had reached the databases" in rolled[-1]["message"], rolled[-1]["message"]
    r = m.verify()
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def proxied(tmp_path: Path) -> Any:
    m = TrialMirror(
        tmp_path / "m",
        members=[("a", "failover"), ("b", "failover"), ("r", "reporting")],
        # Long enough that the primary does not go on alone while the test holds
        # the backup's acknowledgements back.
        mirror={"qos_timeout_ms": 5000, "heartbeat_ms": 200},
    )
    try:
        m.start()
        yield m
    finally:
        m.close()


def _primary(m: TrialMirror) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for n in ("a", "b"):
            try:
                st = m[n].status()
            except errors.Error:
                continue
            if st.get("role") == "primary" and st.get("backup_active"):
                return n
        time.sleep(0.05)
    raise AssertionError("no primary with an active backup")


def test_reporting_member_applies_only_committed_records(proxied: TrialMirror) -> None:
    m = proxied
    p = _primary(m)
    o = "b" if p == "a" else "a"
    conn = litemirror.connect(m.url("app", members=[p]), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    for i in range(1, 21):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
    conn.close()
    m["r"].wait_until(
        lambda s: s["replication"]["applied_lsn"] >= m[p].status()["lsn"], 20, "r caught up"
    )
    watch = Watcher(m.url("app", members=["r"], read_only=True))
    watch.start()
    try:
        # 1. Hold the backup's link: the primary's records reach r but are not
        #    acknowledged by the backup. r must not apply them.
        hold = Rule(mode="blackhole")
        m.proxy.set_rule(p, m.host_of(o), hold)
        lsn = m[p].status()["lsn"]
        first = Pending(m.url("app", members=[p]), 1000)
        first.start()
        st = m["r"].wait_until(
            lambda s: s["replication"]["received_lsn"] > lsn, 5, "r received the record early"
        )
        assert st["replication"]["applied_lsn"] <= lsn
        time.sleep(0.5)
        assert first.outcome is None
        assert 1000 not in watch.seen, "r showed a record the backup had not acknowledged"
        # Released: the backup acknowledges, the write commits, r shows it.
        m.proxy.heal()
        first.join(10)
        assert first.outcome == "acked"
        deadline = time.monotonic() + 10
        while 1000 not in watch.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert 1000 in watch.seen, "r never showed the committed record"

        # 2. Hold it again; this time the primary dies before the backup has the
        #    record, and the backup takes over without it. r received it, and
        #    must never have shown it.
        m[o].wait_until(lambda s: s["failover"]["state"] == "backup active", 20, "active again")
        m.proxy.set_rule(p, m.host_of(o), hold)
        lsn = m[p].status()["lsn"]
        second = Pending(m.url("app", members=[p]), 2000)
        second.start()
        m["r"].wait_until(
            lambda s: s["replication"]["received_lsn"] > lsn, 5, "r received the record early"
        )
        m[p].kill()
        m.proxy.cut(p, m.host_of(o))  # the held bytes never reach the backup
        m.proxy.heal()
        m[o].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 20, "takeover")
        m["r"].wait_until(
            lambda s: (
                (s.get("replication") or {}).get("primary") == o
                and s["replication"]["state"] == "streaming"
            ),
            20,
            "r follows the new primary",
        )
        w = litemirror.connect(m.url("app", members=[o]), isolation_level=None)
        w.execute("INSERT INTO t (id) VALUES (3000)")
        w.close()
        deadline = time.monotonic() + 10
        while 3000 not in watch.seen and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watch.halt()
    second.join(10)
    assert second.outcome != "acked"
    final = _ids(m.url("app", members=[o]))
    assert 2000 not in final
    assert 2000 not in watch.seen, "r showed a record that the failover took back"
    assert set(watch.seen) <= final, sorted(set(watch.seen) - final)[:10]
    assert 3000 in watch.seen
