"""Point-in-time restore end to end, with the real pieces: `litemirror backup` taken by
the standby, the members' own journal archive, then `litemirror restore --at` a moment
before a mistaken DELETE gives exactly the rows committed up to that moment."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import litemirror
from litemirror.testing.cluster import Cluster


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def _restore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "restore", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rows(path: Path) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM t")}
    finally:
        conn.close()


def test_backup_archive_and_restore_to_a_moment_before_a_delete(
    cluster_factory: Any, tmp_path: Path
) -> None:
    archive, backups = tmp_path / "archive", tmp_path / "backups"
    c: Cluster = cluster_factory(
        members=[("a", "failover"), ("b", "failover")],
        sections={
            "journal": {"segment_bytes": 65536},
            "archive": {"dir": str(archive)},
            "backup": {"dir": str(backups)},
        },
    )
    c.start()
    conn = litemirror.connect(c.url("app", members=["a"]))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany("INSERT INTO t VALUES (?, randomblob(300))", [(i,) for i in range(1, 101)])
    conn.commit()
    c["b"].wait_applied(c["a"].status()["lsn"])

    r = c.run_cli("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("verified: ")
    (set_dir,) = [p for p in (backups / c.name).iterdir() if not p.name.startswith(".")]

    # After the backup: rows 101..300 in small transactions (several journal segments).
    for start in range(101, 301, 20):
        conn.executemany(
            "INSERT INTO t VALUES (?, randomblob(300))", [(i,) for i in range(start, start + 20)]
        )
        conn.commit()
    time.sleep(0.3)
    moment = time.time()  # every row so far is committed before this moment
    time.sleep(0.3)
    conn.execute("DELETE FROM t")  # the mistake
    conn.commit()
    lsn = int(c["a"].status()["lsn"])
    # Close the segment holding the DELETE and commit once more, so the commit point
    # passes it and the archiver may copy it.
    assert c.run_cli("journal", "switch").returncode == 0
    conn.execute("CREATE TABLE after_the_mistake (x)")
    conn.commit()
    conn.close()
    c["a"].wait_until(
        lambda s: (s["archive"]["archived_lsn"] or 0) >= lsn, 30, "the DELETE archived"
    )

    out = tmp_path / "before.db"
    r = _restore(
        "--from", str(set_dir), "--db", "app", "--out", str(out),
        "--archive", str(archive), "--at", _iso(moment),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert _rows(out) == set(range(1, 301))  # exactly what was committed by that moment

    everything = tmp_path / "now.db"
    r = _restore(
        "--from", str(set_dir), "--db", "app", "--out", str(everything),
        "--archive", str(archive), "--lsn", str(lsn),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert _rows(everything) == set()  # the DELETE itself, restored to its LSN
