"""Local copies: the member's snapshot file, the driver's receiver, and copying into targets.

Real files and real SQLite throughout; the network part is covered by
tests/integration/test_dbapi_sqlite3.py.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
from pathlib import Path

import apsw
import pytest
import xxhash

from litemirror import errors
from litemirror.client import copies
from litemirror.engine.meta import META_TABLE, ensure_meta, write_lsn
from litemirror.protocol import messages as m
from litemirror.server.storage import snapshot
from litemirror.server.stream.seeding import chunks


def _member_database(path: Path) -> None:
    """A database as a member keeps it: WAL, the meta table, some rows."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    ensure_meta(conn)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v); CREATE INDEX tv ON t (v)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(os.urandom(300),) for _ in range(4000)])
    write_lsn(conn, 42)
    conn.execute("COMMIT")
    conn.close()


def _frames(path: Path, rid: int = 7) -> list[m.FileChunk]:
    return [
        m.FileChunk(id=rid, offset=o, data=d, last=last, size=s, digest=h, lsn=42)
        for o, d, last, s, h in chunks(path)
    ]


def _dump(conn: sqlite3.Connection) -> list[str]:
    return list(conn.iterdump())


def test_snapshot_has_the_rows_but_not_the_meta_table(tmp_path: Path) -> None:
    src = tmp_path / "app.sqlite"
    _member_database(src)
    copy = tmp_path / "copy"
    assert snapshot.make_snapshot(src, copy) == 42
    local = sqlite3.connect(copy)
    names = [r[0] for r in local.execute("SELECT name FROM sqlite_schema ORDER BY name")]
    assert names == ["t", "tv"] and META_TABLE not in names
    assert local.execute("SELECT count(*) FROM t").fetchone() == (4000,)
    local.close()


def test_claim_bounds_copies_in_flight_and_removes_leftovers(tmp_path: Path) -> None:
    src = tmp_path / "app.sqlite"
    _member_database(src)
    folder = tmp_path / "snapshots"
    folder.mkdir()
    (folder / "123-456-deadbeef").mkdir()  # left by a member process that was killed
    (folder / "123-456-deadbeef" / "copy.sqlite").write_bytes(b"x")
    (folder / "stray").write_bytes(b"x")
    held = [snapshot.claim(folder, src) for _ in range(snapshot.MAX_IN_FLIGHT)]
    assert sorted(folder.iterdir()) == sorted(h.parent for h in held)  # left-overs gone
    # The copy replaces its file (the backup API does); the place stays claimed.
    snapshot.make_snapshot(src, held[0])
    with pytest.raises(errors.OperationalError, match="retry") as info:
        snapshot.claim(folder, src)
    assert info.value.retryable
    assert sorted(folder.iterdir()) == sorted(h.parent for h in held)  # the refusal made nothing
    snapshot.release(held[0])
    assert not held[0].parent.exists()
    again = snapshot.claim(folder, src)
    assert again.parent.is_dir() and not again.exists()
    snapshot.release(again)
    snapshot.release(again)  # twice is harmless


def test_claim_refuses_a_copy_the_disk_cannot_hold(tmp_path: Path) -> None:
    # A sparse file: as large as the disk's free space says, and occupying nothing.
    src = tmp_path / "huge.sqlite"
    with open(src, "wb") as f:
        f.truncate(shutil.disk_usage(tmp_path).free)
    folder = tmp_path / "snapshots"
    with pytest.raises(errors.OperationalError, match="not enough free disk") as info:
        snapshot.claim(folder, src)
    assert not info.value.retryable
    assert list(folder.iterdir()) == []  # nothing was made


@pytest.mark.parametrize(
    ("total", "kept"),
    [(10**9, 64 * 1024 * 1024), (2 * 10**12, 10**11), (0, 64 * 1024 * 1024)],
)
def test_reserve(total: int, kept: int) -> None:
    assert snapshot.reserve(total) == kept


def test_receiver_checks_order_size_and_digest(tmp_path: Path) -> None:
    src = tmp_path / "app.sqlite"
    _member_database(src)
    snapshot.make_snapshot(src, tmp_path / "copy")
    frames = _frames(tmp_path / "copy")
    assert len(frames) > 1  # several chunks

    good = copies.CopyFile()
    for frame in frames:
        good.write(frame)
    assert good.complete and good.lsn == 42
    assert good.path.read_bytes() == (tmp_path / "copy").read_bytes()
    good.discard()
    assert not good.path.exists()

    # A copy sent again from the start (after a reconnect) replaces the first.
    again = copies.CopyFile()
    again.write(frames[0])
    for frame in frames:
        again.write(frame)
    assert again.complete and again.path.read_bytes() == (tmp_path / "copy").read_bytes()
    again.discard()

    skipped = copies.CopyFile()
    skipped.write(frames[0])
    with pytest.raises(errors.ProtocolError, match="offset"):
        skipped.write(frames[2])
    skipped.discard()

    damaged = copies.CopyFile()
    for frame in frames[:-1]:
        damaged.write(frame)
    last = frames[-1]
    bad = m.FileChunk(
        id=last.id, offset=last.offset, data=b"\x00" * len(last.data), last=True,
        size=last.size, digest=last.digest,
    )  # fmt: skip
    with pytest.raises(errors.ProtocolError, match="digest"):
        damaged.write(bad)
    assert not damaged.complete
    damaged.discard()


def test_copy_into_sqlite3_and_apsw_targets(tmp_path: Path) -> None:
    src = tmp_path / "app.sqlite"
    _member_database(src)
    copy = tmp_path / "copy"
    snapshot.make_snapshot(src, copy)
    expected = _dump(sqlite3.connect(copy))

    calls: list[tuple[int, int, int]] = []
    target = sqlite3.connect(tmp_path / "s3.db")
    copies.copy_into(copy, target, pages=50, progress=lambda *a: calls.append(a))
    assert _dump(target) == expected
    assert len(calls) > 1 and calls[-1][1] == 0  # in steps, to the end

    steps: list[tuple[int, int, int]] = []
    atarget = apsw.Connection(str(tmp_path / "apsw.db"))
    copies.copy_into(copy, atarget, pages=50, progress=lambda *a: steps.append(a))
    atarget.close()
    assert _dump(sqlite3.connect(tmp_path / "apsw.db")) == expected
    assert steps[-1][0] == apsw.SQLITE_DONE and steps[-1][1] == 0 and len(steps) > 1

    with pytest.raises(TypeError, match=r"sqlite3\.Connection or an apsw\.Connection"):
        copies.copy_into(copy, "not a connection")


def test_dump_lines_deletes_its_file_when_done_or_dropped(tmp_path: Path) -> None:
    src = tmp_path / "app.sqlite"
    _member_database(src)
    first, second = tmp_path / "c1", tmp_path / "c2"
    snapshot.make_snapshot(src, first)
    snapshot.make_snapshot(src, second)
    expected = _dump(sqlite3.connect(tmp_path / "c1"))

    lines = copies.dump_lines(first)
    assert list(lines) == expected and expected[0] == "BEGIN TRANSACTION;"
    assert not first.exists()

    dropped = copies.dump_lines(second)
    next(dropped)
    del dropped
    gc.collect()
    assert not second.exists()


def test_digest_is_xxh3_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    frames = _frames(path)
    assert frames[-1].digest == xxhash.xxh3_64(path.read_bytes()).hexdigest()
