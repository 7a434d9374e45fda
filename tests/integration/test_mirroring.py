"""Mirroring with real member processes: backup, async members, catch-up, base copy, verify."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror.journal import Journal
from litemirror.testing.cluster import Cluster


def _write(url: str, start: int, count: int, *, batch: int = 50) -> list[int]:
    """Insert rows start..start+count-1 in small transactions; return the acknowledged ids."""
    conn = litemirror.connect(url)
    acked: list[int] = []
    for i in range(start, start + count, batch):
        ids = list(range(i, min(i + batch, start + count)))
        conn.executemany("INSERT INTO t (id, v) VALUES (?, randomblob(32))", [(x,) for x in ids])
        conn.commit()
        acked.extend(ids)
    conn.close()
    return acked


def _ids(url: str) -> set[int]:
    conn = litemirror.connect(url)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM t")}
    finally:
        conn.close()


def _mirror(factory: Any, *extra: tuple[str, str], **kw: Any) -> Cluster:
    c: Cluster = factory(members=[("a", "failover"), ("b", "failover"), *extra], **kw)
    c.start()
    conn = litemirror.connect(c.url("app", members=["a"]))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    conn.close()
    return c


def _verify_ok(c: Cluster) -> None:
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "identical" in r.stdout


def test_primary_backup_reporting_5000_rows(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory, ("r", "reporting"))
    acked = _write(c.url("app", members=["a"]), 1, 5000)
    st = c["a"].status()
    assert st["role"] == "primary" and st["backup_active"] is True
    # The reporting member serves the same rows within a second.
    deadline = time.monotonic() + 1.0
    got: set[int] = set()
    while time.monotonic() < deadline:
        got = _ids(c.url("app", members=["r"], read_only=True))
        if len(got) == 5000:
            break
        time.sleep(0.02)
    assert got == set(acked)
    # Writes on a reporting member are refused with the primary named.
    conn = litemirror.connect(c.url("app", members=["r"], read_only=True))
    with pytest.raises(litemirror.OperationalError) as ei:
        conn.execute("INSERT INTO t (id) VALUES (0)")
    assert c["a"].address in str(ei.value) or ei.value.primary == c["a"].address
    conn.close()
    # Status knows every member and its lag.
    reps = {x["member"]: x for x in c["a"].status()["replicas"]}
    assert set(reps) == {"b", "r"}
    assert reps["b"]["state"] == "active"
    assert "records" in reps["r"]["lag"]
    _verify_ok(c)


def test_read_your_writes_on_a_reporting_member(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory, ("r", "reporting"))
    w = litemirror.connect(c.url("app", members=["a"]), isolation_level=None)
    rd = litemirror.connect(c.url("app", members=["r"], read_only=True))
    for i in range(50):
        w.execute("INSERT INTO t (id) VALUES (?)", (i,))
        rd.min_lsn = w.last_lsn
        assert rd.execute("SELECT count(*) FROM t WHERE id = ?", (i,)).fetchone()[0] == 1


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_backup_down_then_catches_up(cluster_factory: Any, how: str) -> None:
    c = _mirror(cluster_factory)
    _write(c.url("app", members=["a"]), 1, 500)
    getattr(c["b"], how)()
    # The primary goes on alone once the backup is gone.
    acked = _write(c.url("app", members=["a"]), 1000, 3000)
    assert c["a"].status()["backup_active"] is False
    c["b"].start()
    st = c["a"].wait_until(lambda s: s.get("backup_active") is True, 30, "backup active again")
    assert st["lsn"] >= 3
    c["b"].wait_applied(c["a"].status()["lsn"])
    assert set(acked) <= _ids(c.url("app", members=["b"], read_only=True))
    _verify_ok(c)


def test_backup_out_of_retention_is_reseeded(cluster_factory: Any) -> None:
    c = _mirror(
        cluster_factory, sections={"journal": {"segment_bytes": 65536, "max_retain_bytes": 100_000}}
    )
    _write(c.url("app", members=["a"]), 1, 200)
    c["b"].kill()
    acked = _write(c.url("app", members=["a"]), 1000, 3000)
    # The primary purged what the backup would need.
    c["a"].wait_until(lambda s: (s["journal"]["first_lsn"] or 0) > 10, 20, "journal purged")
    c["b"].start()
    c["a"].wait_until(lambda s: s.get("backup_active") is True, 60, "backup re-seeded")
    assert set(acked) <= _ids(c.url("app", members=["b"], read_only=True))
    log = c["b"].log_path.read_text()
    assert "seeding_started" in log and "seeding_finished" in log
    _verify_ok(c)


def test_new_dr_member_with_empty_data_dir_is_seeded_while_writes_go_on(
    cluster_factory: Any,
) -> None:
    c = _mirror(cluster_factory)
    _write(c.url("app", members=["a"]), 1, 1000)
    stop = threading.Event()
    acked: list[int] = []

    def writer() -> None:
        n = 10_000
        while not stop.is_set():
            acked.extend(_write(c.url("app", members=["a"]), n, 20, batch=20))
            n += 20

    t = threading.Thread(target=writer)
    t.start()
    try:
        # Restarting a and b with the new config keeps roles; d is new.
        d = c.add_member("d", "dr")
        d.start()
        d.wait_until(
            lambda s: (s.get("replication") or {}).get("state") == "streaming", 60, "dr streaming"
        )
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(30)
    d.wait_applied(c["a"].status()["lsn"])
    assert set(acked) <= _ids(c.url("app", members=["d"], read_only=True))
    # A dr member gets a compressed stream by default; the backup does not.
    reps = {x["member"]: x for x in c["a"].status()["replicas"]}
    assert reps["d"]["compression"] == "zstd" and reps["b"]["compression"] == "off"
    _verify_ok(c)


def test_db_add_from_file_appears_on_all_members(cluster_factory: Any, tmp_path: Path) -> None:
    imports = tmp_path / "import"
    imports.mkdir()
    c = _mirror(
        cluster_factory, ("r", "reporting"), sections={"server": {"import_dir": str(imports)}}
    )
    src = imports / "legacy.sqlite"
    with sqlite3.connect(src) as s:
        s.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)")
        s.executemany("INSERT INTO patients VALUES (?, ?)", [(i, f"p{i}") for i in range(300)])
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "litemirror.cli.main",
            "db",
            "add",
            "legacy",
            "--from",
            str(src),
            "--config",
            str(c.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    # Writes to the imported database replicate too.
    w = litemirror.connect(c.url("legacy", members=["a"]))
    w.execute("INSERT INTO patients VALUES (1000, 'new')")
    w.commit()
    lsn = w.last_lsn
    for name in ("b", "r"):
        c[name].wait_applied(lsn)
        rd = litemirror.connect(c.url("legacy", members=[name], read_only=True))
        assert rd.execute("SELECT count(*) FROM patients").fetchone()[0] == 301
        rd.close()
    _verify_ok(c)


def test_durable_ack_means_on_the_backups_disk(cluster_factory: Any) -> None:
    c = _mirror(cluster_factory)
    url = c.url("app", members=["a"])
    conn = litemirror.connect(url, isolation_level=None)
    lsns = []
    for i in range(300):
        conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
        lsns.append(conn.last_lsn)
    # Kill both right after the acknowledgements.
    c["a"].kill()
    c["b"].kill()
    with Journal.open(c["b"].data_dir / "journal") as j:
        held = {rec.lsn for rec in j.read_from(j.first_lsn or 1)}
    missing = [x for x in lsns if x not in held]
    assert not missing, f"acknowledged LSNs missing on the backup: {missing[:10]}"
