"""`litemirror restore` to a time or an LSN, from a real member's files.

The backup set is made from the member's database file (SQLite's backup API,
while the member runs); the archive is the member's own (``[archive] dir``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw

import litemirror
from litemirror.engine.checksum import table_checksums
from litemirror.testing.backup_sets import write_backup_set


def _restore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "restore", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rows(path: Path) -> set[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT id, batch FROM t"))
    finally:
        conn.close()


def _vk(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT rowid, v FROM vk ORDER BY rowid"))
    finally:
        conn.close()


def _checksums(path: Path) -> dict[str, str]:
    conn = apsw.Connection(
        f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        return table_checksums(conn)
    finally:
        conn.close()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def test_restore_to_a_time_and_an_lsn_before_a_delete(cluster_factory: Any, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    # The members' own archive: the purge waits for it (a copy taken by the test after
    # `journal switch` could lose the race with the purge of the closed segment).
    cluster = cluster_factory(sections={"archive": {"dir": str(archive)}})
    cluster.start()
    member = cluster["a"]
    conn = litemirror.connect(cluster.url())
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, 0, 'x')", [(i,) for i in range(1, 6)])
    conn.commit()
    auto = litemirror.connect(cluster.url(), isolation_level=None)

    st = member.status()
    backup = write_backup_set(
        tmp_path / "backups",
        "test",
        "a",
        epoch=int(st["epoch"]),
        lsn=int(st["lsn"]),
        databases={"app": member.data_dir / "databases" / "app.db"},
    )
    committed: dict[int, set[tuple[int, int]]] = {0: {(i, 0) for i in range(1, 6)}}
    lsn_after: dict[int, int] = {}
    done_at: dict[int, float] = {}
    begun_at: dict[int, float] = {}
    for batch in (1, 2, 3):
        time.sleep(0.4)  # so the batches' commit times are well apart
        begun_at[batch] = time.time()
        rows = [(batch * 100 + i, batch) for i in range(1, 4)]
        conn.executemany("INSERT INTO t VALUES (?, ?, 'y')", rows)
        conn.execute("UPDATE t SET v = 'z' WHERE id = 1")
        conn.commit()
        if batch == 2:
            # DDL, and a VACUUM that renumbers the rowids later changes are keyed by.
            auto.executescript(
                "CREATE TABLE vk(v); INSERT INTO vk VALUES ('a'), ('b'), ('c'), ('d'), ('e');"
                "DELETE FROM vk WHERE v IN ('a', 'c');"
            )
            auto.execute("VACUUM")
        if batch == 3:
            auto.execute("UPDATE vk SET v = 'D' WHERE v = 'd'")
        done_at[batch] = time.time()
        lsn_after[batch] = int(member.status()["lsn"])
        committed[batch] = committed[batch - 1] | set(rows)
    time.sleep(0.4)
    conn.execute("DELETE FROM t")
    conn.commit()
    conn.close()
    auto.close()
    last_lsn = int(member.status()["lsn"])

    switched = cluster.run_cli("journal", "switch")
    assert switched.returncode == 0, switched.stderr
    member.wait_until(
        lambda s: (s["archive"]["archived_lsn"] or 0) >= last_lsn, 30, "the DELETE archived"
    )

    # A moment between batch 2's commit and batch 3's start.
    at = _iso((done_at[2] + begun_at[3]) / 2)
    out = tmp_path / "at.db"
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(out),
        "--archive",
        str(archive),
        "--at",
        at,
    )
    assert r.returncode == 0, r.stderr
    assert "restored database app to LSN" in r.stdout
    assert " + 0 record(s)" not in r.stdout
    assert _rows(out) == committed[2]
    assert _vk(out) == [(1, "b"), (2, "d"), (3, "e")]

    # By LSN: the state right after batch 1.
    out1 = tmp_path / "lsn.db"
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(out1),
        "--archive",
        str(archive),
        "--lsn",
        str(lsn_after[1]),
    )
    assert r.returncode == 0, r.stderr
    assert f"to LSN {lsn_after[1]}" in r.stdout
    assert _rows(out1) == committed[1]
    with sqlite3.connect(out1) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    # No target: everything archived, the DELETE included.
    out_all = tmp_path / "all.db"
    r = _restore(
        "--from", str(backup), "--db", "app", "--out", str(out_all), "--archive", str(archive)
    )
    assert r.returncode == 0, r.stderr
    assert f"to LSN {last_lsn}" in r.stdout
    assert _rows(out_all) == set()
    assert _vk(out_all) == [(1, "b"), (2, "D"), (3, "e")]
    assert _checksums(out_all) == _checksums(member.data_dir / "databases" / "app.db")

    # Without the archive: the copy itself.
    out_copy = tmp_path / "copy.db"
    r = _restore("--from", str(backup), "--db", "app", "--out", str(out_copy))
    assert r.returncode == 0, r.stderr
    assert _rows(out_copy) == committed[0]

    # An existing file is replaced only with --force.
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(out),
        "--archive",
        str(archive),
        "--lsn",
        str(lsn_after[3]),
    )
    assert r.returncode == 1
    assert "already exists" in r.stderr
    assert _rows(out) == committed[2]
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(out),
        "--archive",
        str(archive),
        "--lsn",
        str(lsn_after[3]),
        "--force",
    )
    assert r.returncode == 0, r.stderr
    assert _rows(out) == committed[3]

    # Targets outside the restorable range are refused with the range.
    refused = tmp_path / "refused.db"
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(refused),
        "--archive",
        str(archive),
        "--lsn",
        str(last_lsn + 5),
    )
    assert r.returncode == 1
    assert f"LSN {last_lsn + 5} cannot be restored" in r.stderr
    assert f".. {last_lsn}" in r.stderr
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(refused),
        "--archive",
        str(archive),
        "--at",
        _iso(begun_at[1] - 3600),
    )
    assert r.returncode == 1
    assert "cannot be restored" in r.stderr and "times from" in r.stderr
    r = _restore(
        "--from",
        str(backup),
        "--db",
        "app",
        "--out",
        str(refused),
        "--archive",
        str(archive),
        "--at",
        _iso(time.time() + 60),
    )
    assert r.returncode == 1
    assert "up to, not including" in r.stderr
    assert not refused.exists()

    # A damaged stored file is refused, naming it; nothing is written.
    damaged = tmp_path / "backups" / "test" / (backup.name + "-damaged")
    shutil.copytree(backup, damaged)
    stored = damaged / "app.db.zst"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    r = _restore(
        "--from", str(damaged), "--db", "app", "--out", str(refused), "--archive", str(archive)
    )
    assert r.returncode == 1
    assert f"backup file {stored} is damaged" in r.stderr
    assert not refused.exists()
    assert not list(tmp_path.glob(".refused.db*"))

    # A damaged archived segment is refused, naming it.
    bad_archive = tmp_path / "bad-archive"
    shutil.copytree(archive, bad_archive)
    segment = sorted((bad_archive / "test" / "a").glob("*.lmj"))[0]
    data = bytearray(segment.read_bytes())
    data[-20] ^= 0xFF
    segment.write_bytes(bytes(data))
    r = _restore(
        "--from", str(backup), "--db", "app", "--out", str(refused), "--archive", str(bad_archive)
    )
    assert r.returncode == 1
    assert f"archived journal segment {segment} is damaged" in r.stderr
    assert not refused.exists()
