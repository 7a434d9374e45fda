"""Encryption at rest, end to end: real members write an encrypted backup set and an
encrypted journal archive; `litemirror restore` brings the data back with the key,
refuses with a wrong key or none, and no file written holds SQLite or journal bytes
in clear."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import litemirror
from litemirror.backup.sealed import key_id
from litemirror.testing.cluster import Cluster


def _key(path: Path, byte: int) -> Path:
    path.write_text(bytes([byte]).hex() * 32 + "\n")
    path.chmod(0o600)
    return path


def _restore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "restore", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_encrypted_backup_and_archive_restore_only_with_the_key(
    cluster_factory: Any, tmp_path: Path
) -> None:
    key, wrong = _key(tmp_path / "backup.key", 7), _key(tmp_path / "wrong.key", 9)
    archive_key = _key(tmp_path / "archive.key", 8)
    backups, archive = tmp_path / "backups", tmp_path / "archive"
    c: Cluster = cluster_factory(
        members=[("a", "failover")],
        sections={
            "backup": {"dir": str(backups), "encrypt_key_file": str(key)},
            "archive": {"dir": str(archive), "encrypt_key_file": str(archive_key)},
        },
    )
    c.start()
    a = c["a"]
    conn = litemirror.connect(c.url())
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, 'before')", [(i,) for i in range(200)])
    conn.commit()
    r = c.run_cli("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    conn.executemany("INSERT INTO t VALUES (?, 'after')", [(i,) for i in range(200, 300)])
    conn.execute("UPDATE t SET v = 'changed' WHERE id < 10")
    conn.commit()
    conn.close()
    last = int(a.status()["lsn"])
    assert c.run_cli("journal", "switch").returncode == 0
    a.wait_until(
        lambda s: (s["archive"]["archived_lsn"] or 0) >= last and s["archive"]["ok"],
        30,
        f"archived through LSN {last}",
    )
    # A restarted member knows its archive from the files alone: it opens their headers.
    a.stop()
    a.start()
    a.wait_until(
        lambda s: (s["archive"]["archived_lsn"] or 0) >= last and s["archive"]["ok"],
        30,
        "the archive known again after a restart",
    )
    expected = {(i, "changed" if i < 10 else "before" if i < 200 else "after") for i in range(300)}

    sets = [p for p in (backups / "test").iterdir() if not p.name.startswith(".")]
    assert len(sets) == 1
    manifest = (sets[0] / "manifest.json").read_text()
    kid = key_id(bytes([7]) * 32)
    assert f'"encryption": "aes-256-gcm-chunked-v1:{kid}"' in manifest
    assert (sets[0] / "app.db.zst.enc").is_file()
    # Nothing in clear: no SQLite file, no journal segment, anywhere under either root.
    written = [p for root in (backups, archive) for p in root.rglob("*") if p.is_file()]
    assert len(written) >= 3  # manifest, a copy per database, at least one segment
    for p in written:
        data = p.read_bytes()
        assert b"SQLite format 3" not in data, p
        assert b"LMJS" not in data, p
        assert b"before" not in data, p
    assert list((a.data_dir / "backup-scratch").iterdir()) == []

    out = tmp_path / "out.db"
    common = ["--from", str(sets[0]), "--db", "app", "--out", str(out), "--archive", str(archive)]

    r = _restore(*common)
    assert r.returncode == 1, r.stdout
    assert f"encrypted with key id {kid}" in r.stderr and "none" in r.stderr
    r = _restore(*common, "--key-file", str(wrong))
    assert r.returncode == 1, r.stdout
    assert f"encrypted with key id {kid}" in r.stderr and key_id(bytes([9]) * 32) in r.stderr
    assert not out.exists() and list(tmp_path.glob(".out.db*")) == []

    # The backup's key alone: the archive's segments refuse, naming the file and key id.
    r = _restore(*common, "--key-file", str(key))
    assert r.returncode == 1, r.stdout
    assert "0000000001.lmj is encrypted with key id " + key_id(bytes([8]) * 32) in r.stderr
    assert not out.exists()

    # With both keys: the copy and the archive open; every row is back.
    r = _restore(*common, "--key-file", str(key), "--key-file", str(archive_key))
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(out)
    try:
        assert set(db.execute("SELECT id, v FROM t")) == expected
    finally:
        db.close()

    # The backup copy alone (no archive), with old and new keys given together.
    out2 = tmp_path / "copy.db"
    r = _restore(
        "--from",
        str(sets[0]),
        "--db",
        "app",
        "--out",
        str(out2),
        "--key-file",
        str(wrong),
        "--key-file",
        str(key),
    )
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(out2)
    try:
        assert db.execute("SELECT count(*) FROM t WHERE v = 'before'").fetchone() == (200,)
    finally:
        db.close()
