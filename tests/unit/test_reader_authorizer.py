"""Reader connections run reads only: anything else is refused at prepare and sent to the writer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import pytest

from litemirror.server.storage.reads import NeedsWriter, open_reader, run_read


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "x.db"
    conn = apsw.Connection(str(path))
    list(conn.execute("PRAGMA journal_mode=wal"))
    list(conn.execute("CREATE TABLE t(x); CREATE INDEX i ON t(x); INSERT INTO t VALUES (1)"))
    conn.close()
    return path


READS = [
    ("SELECT * FROM t", [(1,)]),
    ("SELECT count(*) FROM sqlite_master", [(2,)]),
    ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) "
     "SELECT n FROM c", [(1,), (2,), (3,)]),
    ("PRAGMA table_info(t)", None),
    ("PRAGMA user_version", [(0,)]),
    ("PRAGMA integrity_check", [("ok",)]),
    ("EXPLAIN SELECT 1", None),
]  # fmt: skip

WRITES = [
    "INSERT INTO t VALUES (2)",
    "WITH x AS (SELECT 1) DELETE FROM t",
    "REINDEX",
    "REINDEX t",
    "ANALYZE",
    "VACUUM",
    "BEGIN",
    "PRAGMA query_only=0",
    "PRAGMA user_version=7",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA optimize",
    "ATTACH 'other.db' AS o",
    "CREATE TEMP TABLE z(a)",
]


@pytest.mark.parametrize(("sql", "rows"), READS)
def test_reads_run_on_a_reader(db: Path, sql: str, rows: list[tuple[object, ...]] | None) -> None:
    res = run_read(open_reader(str(db)), sql, None)
    if rows is not None:
        assert res.rows == rows


@pytest.mark.parametrize("sql", WRITES)
def test_anything_else_goes_to_the_writer_and_changes_nothing(db: Path, sql: str) -> None:
    reader = open_reader(str(db))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(NeedsWriter):
        run_read(reader, sql, None)
    # The reader still works, and neither the file nor the connection changed.
    assert run_read(reader, "SELECT x FROM t", None).rows == [(1,)]
    assert run_read(reader, "PRAGMA query_only", None).rows == [(1,)]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not (db.parent / "other.db").exists()
