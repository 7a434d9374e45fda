"""Automatic failover with real member and arbiter processes, really killed and paused."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster
from litemirror.testing.workload import Workload, settle_backup
from litemirror.testing.workload import ids_on as _ids
from litemirror.testing.workload import other as _other

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}


def _mirror(factory: Any, *extra: tuple[str, str], **kw: Any) -> Cluster:
    mirror = {**FAST, **kw.pop("mirror", {})}
    c: Cluster = factory(
        members=[("a", "failover"), ("b", "failover"), *extra], arbiter=True, mirror=mirror, **kw
    )
    c.start()
    settle_backup(c)
    conn = litemirror.connect(c.url("app"))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    conn.close()
    return c


def _verify_ok(c: Cluster) -> None:
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr


def test_kill_9_primary_under_load_fails_over_without_loss(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    old = c.primary().name
    new = _other(old)
    with Workload(c.url("app", retry=5)) as w:
        w.wait_acks(300)
        t_kill = time.monotonic()
        c[old].kill()
        w.wait_acks(len(w.acked) + 300)
    after = [t for _, t, mb in w.acked if t > t_kill]
    rto = after[0] - t_kill
    print(f"time from kill -9 to first acknowledged write: {rto:.3f}s")
    st = c[new].status()
    assert st["role"] == "primary" and st["epoch"] == 2
    assert "taking over" in " ".join(st["failover"]["decisions"])
    present = _ids(c, new)
    lost = [i for i, _, _ in w.acked if i not in present]
    assert not lost, f"acknowledged writes lost: {lost[:10]}"
    assert present <= set(w.attempted)
    # The old primary comes back as backup of the new one.
    c[old].start()
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "old primary rejoined")
    assert c[old].status()["role"] == "backup"
    _verify_ok(c)


def test_paused_primary_is_deposed_and_rejoins(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    old = c.primary().name
    new = _other(old)
    # A client gives up on a silent member after 3 s and finds the new primary.
    with Workload(c.url("app", retry=5, timeout=3)) as w:
        w.wait_acks(200)
        c[old].pause()
        c[new].wait_until(
            lambda s: s.get("role") == "primary" and s.get("writable"), 20, "takeover"
        )
        w.wait_acks(len(w.acked) + 100)
        c[old].resume()
        # The old primary learns the new epoch and cannot commit any more.
        st = c[old].wait_until(lambda s: s.get("role") == "backup", 20, "old primary demoted")
        assert st["epoch"] >= 2
        w.wait_acks(len(w.acked) + 100)
    direct = litemirror.connect(c.url("app", members=[old], read_only=True))
    with pytest.raises(litemirror.OperationalError):
        direct.execute("INSERT INTO t (id) VALUES (-1)")
    direct.close()
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "rejoined as active backup")
    present = _ids(c, new)
    assert not [i for i, _, _ in w.acked if i not in present]
    # No two members acknowledged in the same epoch: acks after the takeover all came from new.
    _verify_ok(c)


def test_arbiter_down_alone_no_failover(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    p = c.primary().name
    assert c.arbiter is not None
    c.arbiter.kill()
    conn = litemirror.connect(c.url("app"), isolation_level=None)
    for i in range(200):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
    time.sleep(1.5)
    for i in range(200, 300):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
    st = c[p].status()
    assert st["role"] == "primary" and st["epoch"] == 1 and st["writable"]
    assert c[_other(p)].status()["role"] == "backup"


def test_backup_down_alone_primary_goes_on(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    p = c.primary().name
    c[_other(p)].kill()
    conn = litemirror.connect(c.url("app"), isolation_level=None)
    for i in range(300):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
    st = c[p].status()
    assert st["role"] == "primary" and st["failover"]["state"] == "primary alone"
    assert "recorded b inactive" in " ".join(
        st["failover"]["decisions"]
    ) or "recorded a inactive" in " ".join(st["failover"]["decisions"])


def test_backup_and_arbiter_down_primary_stops_and_says_why(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    p = c.primary().name
    assert c.arbiter is not None
    c.arbiter.kill()
    c[_other(p)].kill()
    st = c[p].wait_until(lambda s: s["failover"]["state"] == "in trouble", 10, "in trouble")
    assert "lost both the backup" in st["reason"] or "not committing" in st["reason"]
    conn = litemirror.connect(c.url("app", members=[p]), isolation_level=None, connect_timeout=1)
    with pytest.raises(litemirror.OperationalError) as ei:
        conn.execute("INSERT INTO t (id) VALUES (1)")
    assert "in trouble" in str(ei.value)
    assert st["writable"] is False


def test_switchover_with_workload_loses_nothing(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    old = c.primary().name
    new = _other(old)
    with Workload(c.url("app", retry=5)) as w:
        w.wait_acks(300)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "switchover",
                "--to",
                new,
                "--config",
                str(c.config_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"switched over from {old} to {new}" in r.stdout
        w.wait_acks(len(w.acked) + 300)
    assert c[new].status()["role"] == "primary"
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "old primary as backup")
    assert c[old].status()["role"] == "backup"
    present = _ids(c, new)
    assert not [i for i, _, _ in w.acked if i not in present]
    _verify_ok(c)


def test_promote_dr_when_no_failover_member_is_left(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory, ("d", "dr"))
    with Workload(c.url("app", members=["a", "b"], retry=5, timeout=3)) as w:
        w.wait_acks(200)
        c["a"].kill()
        c["b"].kill()
    acked_before = {i for i, _, _ in w.acked}
    c["d"].wait_applied(0)
    time.sleep(1.5)  # the arbiter loses them
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "litemirror.cli.main",
            "promote",
            "--member",
            "d",
            "--config",
            str(c.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # It says what it did and what the promotion may have cost.
    assert "promoting me to primary" in r.stdout
    assert "I have every record of the last primary" in r.stdout or "WARNING" in r.stdout, r.stdout
    with Workload(c.url("app", members=["d"], retry=5, timeout=3)) as w2:
        w2.wait_acks(100)
    present = _ids(c, "d")
    # d had acknowledged the stream asynchronously: anything it had is kept, and every
    # write acknowledged after the promotion is there.
    assert {i for i, _, _ in w2.acked} <= present
    print(
        f"promoted dr member holds {len(acked_before & present)} of {len(acked_before)} "
        "writes acknowledged before both failover members died"
    )
    # The failover members come back and follow the promoted member.
    c["a"].start()
    c["b"].start()
    for n in ("a", "b"):
        c[n].wait_until(lambda s: s.get("role") == "backup", 30, "following d")
    c["d"].wait_until(
        lambda s: {x["member"] for x in s.get("replicas", [])} == {"a", "b"},
        30,
        "a and b replicate from d",
    )
    _verify_ok(c)


def test_rejoin_with_divergence_keeps_the_rolled_back_records(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory, mirror={"qos_timeout_ms": 3000, "heartbeat_ms": 200})
    old = c.primary().name
    new = _other(old)
    conn = litemirror.connect(c.url("app", members=[old]), isolation_level=None)
    for i in range(50):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
    # The backup stops reading; a commit on the primary is journalled there but waits.
    # It is far larger than the socket buffers, so the paused backup cannot hold it
    # all in its kernel buffer: when the primary dies the backup has only a torn frame.
    c[new].pause()
    done: list[str] = []

    def in_flight() -> None:
        try:
            conn.execute("INSERT INTO t (id, v) VALUES (777, randomblob(40000000))")
            done.append("acked")
        except errors.Error as exc:
            done.append(type(exc).__name__)

    t = threading.Thread(target=in_flight, daemon=True)
    t.start()
    time.sleep(1.0)
    c[old].kill()  # before the QoS timeout: the arbiter still records the backup active
    c[new].resume()
    c[new].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 20, "takeover")
    t.join(10)
    assert done and done[0] != "acked"
    c[old].start()
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "old primary rejoined")
    assert 777 not in _ids(c, new)
    assert 777 not in _ids(c, old)
    kept = list((c[old].data_dir / "diverged").glob("diverged-*.jsonl"))
    assert len(kept) == 1
    lines = [json.loads(x) for x in kept[0].read_text().splitlines()]
    assert lines[-1]["report"] == "records rolled back on rejoin"
    assert lines[-1]["tables"]["app"]["t"]["insert"] == 1
    events = (c[old].data_dir / "events.jsonl").read_text()
    assert "rejoin_rolled_back" in events
    _verify_ok(c)


def test_status_shows_the_arbiter_and_decisions(cluster_factory: Any, tmp_path: Path) -> None:
    c = _mirror(cluster_factory)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "litemirror.cli.main",
            "status",
            "--config",
            str(c.config_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    data = json.loads(r.stdout)
    roles = sorted(m["role"] for m in data["members"])
    assert roles == ["backup", "primary"]
    prim = next(m for m in data["members"] if m["role"] == "primary")
    assert prim["failover"]["arbiter_up"] is True and prim["reason"]


def test_redirect_false_keeps_to_the_hosts_in_the_url(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    primary = c.primary().name
    backup = _other(primary)
    # By default the backup's "the primary is X" answer is followed...
    conn = litemirror.connect(c.url("app", members=[backup]))
    conn.execute("SELECT 1")
    assert conn.member == primary
    conn.close()
    # ...with redirect=false it is not: the URL names only the backup.
    url = c.url("app", members=[backup], connect_timeout=1, redirect=False)
    with pytest.raises(errors.UnavailableError, match="not the primary"):
        litemirror.connect(url).execute("SELECT 1")


def test_open_transaction_neither_blocks_switchover_nor_commits_after_it(
    cluster_factory: Any,
) -> None:
    c = _mirror(cluster_factory)
    old = c.primary().name
    new = _other(old)
    tx = litemirror.connect(c.url("app", members=[old]))
    tx.execute("INSERT INTO t (id) VALUES (424242)")  # an open transaction on the old primary
    t0 = time.monotonic()
    r = c.run_cli("switchover", "--to", new)
    assert r.returncode == 0, r.stdout + r.stderr
    # It did not wait for the transaction (whose idle timeout is 30 s).
    assert time.monotonic() - t0 < 15
    # The transaction was rolled back when the old primary stopped writing:
    # its commit is refused, retryably, and the row exists nowhere.
    with pytest.raises((errors.TransactionAbortedError, errors.NotPrimaryError)) as ei:
        tx.commit()
    assert ei.value.retryable
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "old primary as backup")
    assert 424242 not in _ids(c, new) and 424242 not in _ids(c, old)
    _verify_ok(c)
