"""The restore shell on real files: a journal written by the journal code, a
backup set built from a database the apply code brought to the copy's LSN.

Records are SQL ops (what DDL records hold), so no member is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

from litemirror.backup.plan import Target
from litemirror.backup.restore import ByLsn, ByTime, Latest, parse_time, restore
from litemirror.engine import apply as engine_apply
from litemirror.engine.ops import SqlOp, encode_ops
from litemirror.errors import RestoreError
from litemirror.journal import Journal, NewRecord, Record, RecordKind
from litemirror.testing.backup_sets import archive_closed_segments, write_backup_set

C, M = RecordKind.CHANGES, RecordKind.MARKER


def sql(*statements: str) -> bytes:
    return encode_ops([SqlOp(s) for s in statements])


#: (kind, db, payload); record n gets LSN n and commit time n seconds.
HISTORY = [
    (RecordKind.CREATE_DB, "app", b""),  # 1
    (C, "app", sql("CREATE TABLE t(x INTEGER PRIMARY KEY)")),  # 2
    (C, "app", sql("INSERT INTO t VALUES (1)")),  # 3: the copy holds up to here
    (C, "app", sql("INSERT INTO t VALUES (2)")),  # 4
    (M, "", b""),  # 5
    (C, "other", sql("CREATE TABLE o(y)")),  # 6
    (C, "app", sql("INSERT INTO t VALUES (3)")),  # 7
    (RecordKind.IMPORT_DB, "app", b""),  # 8: the database was replaced by an import
    (C, "app", sql("INSERT INTO t VALUES (99)")),  # 9
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """(backup set, archive root) of the history above."""
    journal = Journal.open(tmp_path / "journal", segment_bytes=200, fsync=False)
    records: list[Record] = []
    for n, (kind, db, payload) in enumerate(HISTORY, start=1):
        records += journal.append([NewRecord(1, kind, db, n * 1000, payload)])
    journal.switch()
    journal.close()
    db = tmp_path / "app.db"
    conn = engine_apply.open_apply_connection(str(db))
    for r in records[:3]:
        if r.kind == C:
            engine_apply.apply_record(conn, r.lsn, r.payload)
    conn.close()
    backup = write_backup_set(tmp_path / "sets", "m", "a", epoch=1, lsn=3, databases={"app": db})
    archive = tmp_path / "archive"
    assert len(archive_closed_segments(tmp_path / "journal", archive / "m" / "a")) > 2
    return backup, archive


def rows(path: Path) -> list[int]:
    conn = apsw.Connection(str(path))
    try:
        return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("target", "expect", "lsn"),
    [
        (ByLsn(3), [1], 3),
        (ByLsn(4), [1, 2], 4),
        (ByLsn(6), [1, 2], 6),
        (ByTime(3000), [1], 3),
        (ByTime(4999), [1, 2], 4),
        (ByTime(6500), [1, 2], 6),
        (Latest(), [1, 2, 3], 7),  # up to the import, which no replay can cross
    ],
)
def test_targets(
    files: tuple[Path, Path], tmp_path: Path, target: Target, expect: list[int], lsn: int
) -> None:
    backup, archive = files
    out = tmp_path / "out.db"
    outcome = restore(backup, "app", out, archive=archive, target=target)
    assert rows(out) == expect
    assert outcome.lsn == lsn


def test_a_target_past_an_import_is_refused(files: tuple[Path, Path], tmp_path: Path) -> None:
    backup, archive = files
    with pytest.raises(RestoreError, match="replaced by an imported file at LSN 8"):
        restore(backup, "app", tmp_path / "out.db", archive=archive, target=ByLsn(9))
    assert not (tmp_path / "out.db").exists()


def test_the_archive_may_be_given_as_one_member_directory(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    backup, archive = files
    restore(backup, "app", tmp_path / "out.db", archive=archive / "m" / "a", target=ByLsn(7))
    assert rows(tmp_path / "out.db") == [1, 2, 3]


def test_a_missing_segment_ends_the_range(files: tuple[Path, Path], tmp_path: Path) -> None:
    backup, archive = files
    segments = sorted((archive / "m" / "a").glob("*.lmj"))
    segments[1].unlink()
    with pytest.raises(RestoreError, match="the archive lacks LSN"):
        restore(backup, "app", tmp_path / "out.db", archive=archive, target=ByLsn(7))


def _manifest(backup: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((backup / "manifest.json").read_text())
    return data


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda b: (b / "manifest.json").unlink(), "has no manifest.json"),
        (lambda b: (b / "manifest.json").write_text("{"), "is not a valid backup manifest"),
        (
            lambda b: (b / "manifest.json").write_text(
                json.dumps({**_manifest(b), "status": "failed", "problem": "checksums differ"})
            ),
            "failed its verification \\(checksums differ\\)",
        ),
        (
            lambda b: (b / "manifest.json").write_text(
                json.dumps({**_manifest(b), "encryption": "key-1"})
            ),
            "encryption 'key-1' is not supported",
        ),
        (lambda b: (b / "app.db.zst").unlink(), "cannot read backup file"),
    ],
)
def test_a_bad_set_is_refused(
    files: tuple[Path, Path], tmp_path: Path, spoil: Callable[[Path], object], words: str
) -> None:
    backup, _ = files
    spoil(backup)
    with pytest.raises(RestoreError, match=words):
        restore(backup, "app", tmp_path / "out.db")
    assert not (tmp_path / "out.db").exists()


def test_other_refusals(files: tuple[Path, Path], tmp_path: Path) -> None:
    backup, _ = files
    with pytest.raises(RestoreError, match="holds no database 'nope' \\(it holds: app\\)"):
        restore(backup, "nope", tmp_path / "out.db")
    hidden = backup.parent / f".partial-{backup.name}"
    shutil.copytree(backup, hidden)
    with pytest.raises(RestoreError, match="still being written"):
        restore(hidden, "app", tmp_path / "out.db")
    with pytest.raises(RestoreError, match="is a directory"):
        restore(backup, "app", tmp_path)
    with pytest.raises(RestoreError, match="has no time zone"):
        parse_time("2026-12-06T14:03:00")
    with pytest.raises(RestoreError, match="not an ISO 8601 time"):
        parse_time("yesterday")
    assert parse_time("1970-01-01T01:00:01.5+01:00") == 1500


def test_files_in_the_way(files: tuple[Path, Path], tmp_path: Path) -> None:
    backup, archive = files
    out = tmp_path / "out.db"
    # A WAL left next to --out would be applied to the restored file when opened.
    Path(f"{out}-wal").write_bytes(b"stale")
    with pytest.raises(
        RestoreError, match=r"out\.db-wal already exists; remove it or give --force"
    ):
        restore(backup, "app", out, archive=archive)
    # So would one left by a killed restore next to its temporary file.
    Path(tmp_path / ".out.db.restoring-wal").write_bytes(b"stale")
    restore(backup, "app", out, archive=archive, target=ByLsn(4), force=True)
    assert rows(out) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == [
        "out.db"
    ]
