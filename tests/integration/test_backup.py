"""Backups taken by real member processes: under a write load, killed midway, refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import apsw
import zstandard

import litemirror
from litemirror.backup import manifest as mf
from litemirror.engine.checksum import table_checksums
from litemirror.testing.cluster import Cluster, wait_for
from litemirror.testing.secured import PASSWORDS, cli, secured_cluster, start_with_users


def _mirror(factory: Any) -> Cluster:
    c: Cluster = factory(members=[("a", "failover"), ("b", "failover")])
    c.start()
    conn = litemirror.connect(c.url("app", members=["a"]))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    conn.close()
    return c


def _sets(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def _decompress(set_dir: Path, copy: mf.DatabaseCopy, out: Path) -> Path:
    out.write_bytes(zstandard.ZstdDecompressor().decompress((set_dir / copy.file).read_bytes()))
    return out


def test_backup_under_a_write_load_is_one_consistent_snapshot(
    cluster_factory: Any, tmp_path: Path
) -> None:
    c = _mirror(cluster_factory)
    url = c.url("app", members=["a"])
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        # One row per transaction, ids in order: a consistent snapshot holds exactly
        # the rows 1..K for some K, whatever moment it was taken at.
        conn = litemirror.connect(url)
        n = 0
        while not stop.is_set():
            n += 1
            conn.execute("INSERT INTO t (id, v) VALUES (?, randomblob(200))", (n,))
            conn.commit()
            written.append(n)
        conn.close()

    seed = litemirror.connect(url)
    for i in range(20):
        seed.executemany(
            "INSERT INTO t (id, v) VALUES (?, randomblob(200))",
            [(-(i * 1000 + k) - 1,) for k in range(1000)],
        )
        seed.commit()
    seed.close()
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(written) > 50 or None, 30, "the writer to commit")
        r = c.run_cli("backup")
        mid = len(written)
    finally:
        stop.set()
        thread.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "member b takes it" in r.stderr  # the caught-up standby takes the save
    assert r.stdout.startswith("verified: ")
    assert mid < len(written)  # writes went on after the backup
    root = c["b"].data_dir / "backups" / c.name
    (set_dir,) = _sets(root)
    m = mf.decode((set_dir / mf.MANIFEST_FILE).read_bytes())
    assert m.status == "verified" and m.member == "b"
    assert "app" in {d.name for d in m.databases}
    app = next(d for d in m.databases if d.name == "app")
    copy = _decompress(set_dir, app, tmp_path / "app.db")
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = [r[0] for r in conn.execute("SELECT id FROM t WHERE id > 0 ORDER BY id")]
        seeded = conn.execute("SELECT count(*) FROM t WHERE id < 0").fetchone()[0]
        lsn = conn.execute("SELECT v FROM _litemirror_meta WHERE k = 'lsn'").fetchone()[0]
    assert seeded == 20_000
    assert ids == list(range(1, len(ids) + 1)) and 0 < len(ids) < len(written)
    assert lsn == app.lsn
    # The member's own rows up to the copy's last row, once it has every write: the same
    # table as the copy (compared through a file of those rows, checksummed as verify does).
    final = c["a"].status()["lsn"]
    c["b"].wait_applied(final)
    member_db = apsw.Connection(str(c["b"].data_dir / "databases" / "app.db"))
    expected = tmp_path / "expected.db"
    exp = apsw.Connection(str(expected))
    exp.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    with exp:
        exp.executemany(
            "INSERT INTO t VALUES (?, ?)",
            member_db.execute("SELECT id, v FROM t WHERE id <= ? ORDER BY id", (ids[-1],)),
        )
    got = table_checksums(apsw.Connection(str(copy)))
    assert table_checksums(exp)["t"] == got["t"] == app.tables["t"]
    listed = c.run_cli("backup", "list", "--member", "b")
    assert listed.returncode == 0, listed.stderr
    assert "verified" in listed.stdout and str(m.lsn) in listed.stdout


def test_a_member_killed_midway_leaves_no_complete_looking_set(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(members=[("a", "failover")])
    c.start()
    conn = litemirror.connect(c.url("app"))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    for i in range(60):  # ~120 MB that does not compress: the backup takes a while
        conn.executemany(
            "INSERT INTO t (id, v) VALUES (?, randomblob(2000))",
            [(i * 1000 + k,) for k in range(1000)],
        )
        conn.commit()
    conn.close()
    root = c["a"].data_dir / "backups" / c.name
    run = subprocess.Popen(
        [sys.executable, "-m", "litemirror.cli.main", "backup", "--config", str(c.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: any((p / "app.db").exists() for p in root.glob(".partial-*")) or None,
            60,
            "the backup to start copying",
        )
        c["a"].kill()
        run.wait(timeout=30)
    finally:
        run.kill()
    assert run.returncode != 0
    assert _sets(root) == []
    assert [p.name.startswith(mf.PARTIAL_PREFIX) for p in root.iterdir()] == [True]
    c["a"].start()
    assert c.run_cli("backup", "list").stdout.count("verified") == 0
    r = c.run_cli("backup", "--db", "app", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # The next backup removed the leftover; one complete set remains.
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    assert len(_sets(root)) == 1


def test_backup_needs_the_admin_role_and_stays_in_its_root(tmp_path: Path) -> None:
    c = start_with_users(
        secured_cluster(tmp_path / "s", members=[("a", "failover")], arbiter=False)
    )
    try:
        _refusals(c)
    finally:
        c.kill_all()


def _refusals(c: Cluster) -> None:
    root = c["a"].data_dir / "backups"
    refused = cli(c, "backup", user="reader")
    assert refused.returncode == 1
    assert "backup needs the admin role" in refused.stderr
    outside = c.base / "elsewhere"
    outside.mkdir()
    for to in (str(outside), "../../elsewhere"):
        r = cli(c, "backup", "--to", to, user="root")
        assert r.returncode == 1
        assert "outside the backup root" in r.stderr and "nothing was written" in r.stderr
    assert list(outside.iterdir()) == []
    assert not root.exists() or _sets(root / c.name) == []
    ok = cli(c, "backup", "--to", "weekly", user="root")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert len(_sets(root / "weekly" / c.name)) == 1
    assert PASSWORDS["reader"] not in ok.stdout
    events = c["a"].events("backup_taken")
    assert len(events) == 1
