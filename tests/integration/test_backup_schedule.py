"""Scheduled backups with real member processes: on the standby, pruned, across a kill -9."""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror.client.control import admin
from litemirror.config import load
from litemirror.testing.cluster import Cluster, wait_for
from litemirror.testing.secured import secured_cluster, start_with_users
from litemirror.testing.workload import settle_backup

EVERY = 2.0
FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}


def _sets(c: Cluster, member: str) -> list[dict[str, Any]]:
    """The complete sets in ``member``'s backup root, oldest first (read from the files)."""
    root = c.base / "data" / member / "backups" / c.name
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.name.startswith(".") or not (p / "manifest.json").is_file():
            continue
        m = json.loads((p / "manifest.json").read_text())
        out.append(
            {"set": p.name, "member": m["member"], "taken_at": m["taken_at"], "status": m["status"]}
        )
    return sorted(out, key=lambda s: s["taken_at"])


def _taken(c: Cluster, member: str) -> list[dict[str, Any]]:
    return c[member].events("backup_taken")


def _assert_once_per_interval(sets: list[dict[str, Any]]) -> None:
    times = [s["taken_at"] for s in sets]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= EVERY - 0.01 for g in gaps), (gaps, sets)


def _seed(c: Cluster) -> None:
    conn = litemirror.connect(c.url("app"))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t (v) VALUES ('x')")
    conn.commit()
    conn.close()


def test_scheduled_backups_run_on_the_standby_and_keep_prunes(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(
        members=[("a", "failover"), ("b", "failover")],
        sections={"backup": {"every": f"{EVERY}s", "keep": 2}},
        http=True,
    )
    c.start()
    _seed(c)
    primary = c.primary().name
    standby = "b" if primary == "a" else "a"
    wait_for(lambda: len(_taken(c, standby)) >= 4 or None, 40, "four scheduled backups")
    sets = _sets(c, standby)
    assert len(sets) == 2  # keep = 2: the older ones are gone
    assert all(s["member"] == standby and s["status"] == "verified" for s in sets)
    assert _sets(c, primary) == []  # the standby takes the saves, not the primary
    taken = [ev["data"]["path"] for ev in _taken(c, standby)]
    assert len(set(taken)) == len(taken)
    st = c[primary].status()["backup_schedule"]
    assert st["runs_here"] and st["every"] == f"{EVERY}s" and st["keep"] == 2
    assert st["last_good"]["member"] == standby
    assert 0 <= st["last_good_age_s"] < 30 and st["next_due"] is not None
    assert c[standby].status()["backup_schedule"]["runs_here"] is False
    assert not c[primary].events("backup_schedule_failed")
    # The HTTP API's /status and Prometheus show the same.
    base = f"http://{c.http[primary]}"
    with urllib.request.urlopen(f"{base}/status", timeout=5) as r:
        shown = json.loads(r.read())["backup_schedule"]
    assert shown["runs_here"] and shown["last_good_age_s"] is not None
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("litemirror_backup_last_success_timestamp_seconds{")
    )
    assert abs(float(line.split()[-1]) - time.time()) < 30
    assert "litemirror_backup_next_due_timestamp_seconds{" in metrics


def test_a_repeated_request_for_one_slot_takes_one_backup(cluster_factory: Any) -> None:
    # What a new primary does when the old one died while the standby was taking
    # the backup: it asks again for the same slot; the standby answers with the set.
    c: Cluster = cluster_factory(
        members=[("a", "failover"), ("b", "failover")],
        sections={"backup": {"cron": "0 3 1 1 *"}},  # not due during the test
    )
    c.start()
    _seed(c)
    primary = c.primary()
    standby = "b" if primary.name == "a" else "a"
    c[standby].wait_applied(primary.status()["lsn"])
    config = load(c.config_path)
    slot = time.time()
    first = admin(config, "backup_scheduled", {"slot": slot, "keep": 0}, member=standby)
    again = admin(config, "backup_scheduled", {"slot": slot, "keep": 0}, member=standby)
    assert first["already_taken"] is False and first["status"] == "verified"
    assert again["already_taken"] is True and again["set"] == first["set"]
    assert [s["set"] for s in _sets(c, standby)] == [first["set"]]
    later = admin(config, "backup_scheduled", {"slot": time.time() + 1, "keep": 1}, member=standby)
    assert later["already_taken"] is False and later["pruned"] == [first["set"]]
    assert [s["set"] for s in _sets(c, standby)] == [later["set"]]


def test_kill_9_of_the_primary_hands_the_schedule_over_once(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(
        members=[("a", "failover"), ("b", "failover")],
        arbiter=True,
        mirror=FAST,
        sections={"backup": {"every": f"{EVERY}s"}},
    )
    c.start()
    settle_backup(c)
    _seed(c)
    old = c.primary().name
    new = "b" if old == "a" else "a"
    wait_for(lambda: len(_sets(c, new)) >= 2 or None, 40, "two scheduled backups on the standby")
    before = _sets(c, new)
    c[old].kill()
    t_kill = time.time()
    wait_for(lambda: c[new].status().get("role") == "primary" or None, 30, f"{new} to take over")
    # The new primary runs the schedule and, with no standby left, takes the backups itself.
    wait_for(
        lambda: len([s for s in _sets(c, new) if s["taken_at"] > t_kill]) >= 3 or None,
        60,
        "three scheduled backups after the failover",
    )
    sets = _sets(c, new)
    assert sets[: len(before)] == before
    assert all(s["member"] == new and s["status"] == "verified" for s in sets)
    _assert_once_per_interval(sets)  # never two sets of one slot, before or after the kill
    st = c[new].status()["backup_schedule"]
    assert st["runs_here"] and st["last_good"]["member"] == new
    assert _sets(c, old) == []


def test_with_tls_and_logins_required_the_members_run_the_schedule(tmp_path: Path) -> None:
    # The primary asks the standby by its member certificate, with no user's login.
    c = start_with_users(
        secured_cluster(
            tmp_path / "s",
            arbiter=False,
            sections={"backup": {"every": f"{EVERY}s", "keep": 1}},
        )
    )
    try:
        primary = c.primary().name
        standby = "b" if primary == "a" else "a"
        wait_for(lambda: len(_taken(c, standby)) >= 2 or None, 40, "two scheduled backups")
        assert [s["member"] for s in _sets(c, standby)] == [standby]
        assert not c[primary].events("backup_schedule_failed")
    finally:
        c.kill_all()


@pytest.mark.slow
def test_kill_9_of_the_primary_while_the_standby_takes_the_backup(cluster_factory: Any) -> None:
    # A database large enough that a backup takes a while: the primary that asked
    # for it is killed while the standby writes the set.
    every = 6.0
    c: Cluster = cluster_factory(
        members=[("a", "failover"), ("b", "failover")],
        arbiter=True,
        mirror=FAST,
        sections={"backup": {"every": f"{every}s"}},
    )
    c.start()
    settle_backup(c)
    conn = litemirror.connect(c.url("app"))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    for _ in range(40):
        conn.executemany("INSERT INTO t (v) VALUES (randomblob(1000))", [()] * 1000)
        conn.commit()
    conn.close()
    old = c.primary().name
    new = "b" if old == "a" else "a"
    c[new].wait_applied(c[old].status()["lsn"], 60)
    root = c.base / "data" / new / "backups" / c.name
    seen = len(_sets(c, new))

    def in_flight() -> bool | None:
        # A backup of the loaded database, being written.
        return (
            len(_sets(c, new)) == seen
            and any(p.name.startswith(".partial-") for p in root.iterdir())
        ) or None

    wait_for(in_flight, 60, "the standby to be writing a scheduled backup")
    c[old].kill()
    t_kill = time.time()
    wait_for(lambda: c[new].status().get("role") == "primary" or None, 30, f"{new} to take over")
    wait_for(
        lambda: len([s for s in _sets(c, new) if s["taken_at"] > t_kill]) >= 1 or None,
        60,
        "a scheduled backup by the new primary",
    )
    sets = _sets(c, new)
    assert len(sets) == seen + 2 and all(s["status"] == "verified" for s in sets), sets
    times = [s["taken_at"] for s in sets]
    assert all(b - a >= every - 0.01 for a, b in itertools.pairwise(times)), sets
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
