"""Manual failover (``promote --force``) and what a restarted member remembers.

Real member processes, really killed and paused; the command line is run as
an operator would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import litemirror
from litemirror.testing.cluster import Cluster
from litemirror.testing.workload import settle_backup

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}


def _pair(factory: Any, *, arbiter: bool = False) -> Cluster:
    c: Cluster = factory(
        members=[("a", "failover"), ("b", "failover")], arbiter=arbiter, mirror=FAST
    )
    c.start()
    if arbiter:
        settle_backup(c)
    else:
        c["a"].wait_until(lambda s: s.get("backup_active") is True, 30, "backup active")
    conn = litemirror.connect(c.url("app", members=[c.primary().name]), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    for i in range(1, 101):
        conn.execute("INSERT INTO t VALUES (?, 'before')", (i,))
    conn.close()
    return c


def _ids(c: Cluster, member: str) -> set[int]:
    conn = litemirror.connect(c.url("app", members=[member], read_only=True))
    try:
        return {i for (i,) in conn.execute("SELECT id FROM t")}
    finally:
        conn.close()


def _promote(c: Cluster, member: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "litemirror.cli.main",
            "promote",
            "--member",
            member,
            "--config",
            str(c.config_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_manual_failover_without_an_arbiter(cluster_factory: Any) -> None:
    c = _pair(cluster_factory)
    assert c["a"].status()["role"] == "primary"
    c["b"].wait_applied(c["a"].status()["lsn"])
    c["a"].kill()

    # The backup says what to run.
    st = c["b"].wait_until(
        lambda s: "promote --member b --force" in (s.get("reason") or ""), 20, "hint"
    )
    assert "does not fail over by itself" in st["reason"]
    # Without --force a backup is not promoted, and says why.
    r = _promote(c, "b")
    assert r.returncode != 0 and "--force" in r.stderr + r.stdout
    # --force asks for confirmation; with no terminal it wants --yes, and changes nothing.
    r = _promote(c, "b", "--force")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "holds every record a had" in r.stdout, r.stdout
    assert "--yes" in r.stderr
    assert c["b"].status()["role"] == "backup"

    r = _promote(c, "b", "--force", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "promoted to primary at epoch 2" in r.stdout
    st = c["b"].status()
    assert st["role"] == "primary" and st["epoch"] == 2 and st["writable"]
    state = json.loads((c["b"].data_dir / "member.json").read_text())
    assert state["epoch"] == 2 and state["last_role"] == "primary"
    w = litemirror.connect(c.url("app", members=["b"]), isolation_level=None)
    for i in range(101, 151):
        w.execute("INSERT INTO t VALUES (?, 'after')", (i,))

    # The old primary restarts: it remembers it was primary, sees b primary at a
    # newer epoch, and joins as backup instead of leading again.
    c["a"].start(wait=False)
    st = c["a"].wait_until(
        lambda s: (
            s.get("role") == "backup" and (s.get("replication") or {}).get("state") == "streaming"
        ),
        30,
        "old primary rejoined as backup",
    )
    assert "b is primary at epoch 2" in json.dumps(
        [ln for ln in c["a"].log_path.read_text().splitlines() if "is backup" in ln]
    )
    assert c["b"].status()["role"] == "primary"
    c["b"].wait_until(lambda s: s.get("backup_active") is True, 30, "a active again")
    w.execute("INSERT INTO t VALUES (151, 'with a back')")
    assert _ids(c, "b") == set(range(1, 152))
    c["a"].wait_applied(c["b"].status()["lsn"])
    assert _ids(c, "a") == set(range(1, 152))
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr


def test_forced_promote_is_refused_while_the_primary_answers(cluster_factory: Any) -> None:
    c = _pair(cluster_factory)
    r = _promote(c, "b", "--force", "--yes")
    assert r.returncode != 0
    assert "a is primary (epoch 1) and reachable" in r.stdout + r.stderr
    assert c["b"].status()["role"] == "backup"
    assert c["a"].status()["role"] == "primary"


def test_a_primary_cut_off_during_a_manual_failover_steps_down(cluster_factory: Any) -> None:
    c = _pair(cluster_factory)
    c["b"].wait_applied(c["a"].status()["lsn"])
    c["a"].pause()  # unreachable, not dead: it comes back believing it is primary
    r = _promote(c, "b", "--force", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    w = litemirror.connect(c.url("app", members=["b"]), isolation_level=None)
    w.execute("INSERT INTO t VALUES (500, 'on b')")
    c["a"].resume()
    c["a"].wait_until(lambda s: s.get("role") == "backup", 15, "a steps down")
    assert any(
        "demoting myself: b is primary at epoch 2" in ln
        for ln in (c["a"].data_dir / "events.jsonl").read_text().splitlines()
    )
    c["a"].wait_until(
        lambda s: (s.get("replication") or {}).get("state") == "streaming", 30, "a streams"
    )
    c["a"].wait_applied(c["b"].status()["lsn"])
    assert 500 in _ids(c, "a")
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr


def test_forced_promote_of_a_catching_up_backup_through_the_arbiter(
    cluster_factory: Any,
) -> None:
    c = _pair(cluster_factory, arbiter=True)
    p = c.primary().name
    o = "b" if p == "a" else "a"
    c[o].wait_applied(c[p].status()["lsn"])
    # The backup goes away; the primary commits alone (the arbiter records it).
    c[o].kill()
    conn = litemirror.connect(c.url("app", members=[p]), isolation_level=None, timeout=10)
    for i in range(1001, 1011):
        conn.execute("INSERT INTO t VALUES (?, 'alone')", (i,))
    conn.close()
    # Then the primary dies for good, and the backup comes back behind it.
    c[p].kill()
    c[o].start(wait=False)
    st = c[o].wait_until(
        lambda s: (s.get("failover") or {}).get("state") == "backup catching up",
        30,
        "backup catching up, no primary",
    )
    r = _promote(c, o)
    assert r.returncode != 0  # not without --force
    r = _promote(c, o, "--force", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "promoting me to primary at epoch 2 on operator request (forced)" in r.stdout
    st = c[o].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 20, "led")
    assert st["epoch"] == 2
    # The ten rows only the old primary had are lost — said before, and now true.
    assert _ids(c, o) == set(range(1, 101))
    w = litemirror.connect(c.url("app", members=[o]), isolation_level=None)
    w.execute("INSERT INTO t VALUES (2000, 'new primary')")
    # The old primary comes back: its ten rows are rolled back and kept.
    c[p].start(wait=False)
    c[p].wait_until(
        lambda s: (
            s.get("role") == "backup" and (s.get("replication") or {}).get("state") == "streaming"
        ),
        30,
        "old primary rejoined",
    )
    kept = list((c[p].data_dir / "diverged").glob("*.jsonl"))
    assert kept, "the rolled-back records are kept"
    deadline = time.monotonic() + 20
    while 2000 not in _ids(c, p) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ids(c, p) == set(range(1, 101)) | {2000}
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr
