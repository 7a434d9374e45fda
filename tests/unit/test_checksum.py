"""Logical checksums: typed, order-independent of history, per table, snapshot reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from litemirror.engine import META_TABLE, database_checksum, ensure_meta, table_checksums, write_lsn
from litemirror.engine.checksum import SCHEMA_KEY


def open_db(path: Path) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def db(tmp_path: Path) -> Iterator[apsw.Connection]:
    conn = open_db(tmp_path / "c.db")
    yield conn
    conn.close()


def test_values_are_hashed_with_their_type(tmp_path: Path) -> None:
    sums = set()
    for i, value in enumerate([1, "1", 1.0, b"1", None, 2]):
        conn = open_db(tmp_path / f"{i}.db")
        conn.execute("CREATE TABLE t(v)")  # no affinity: the value keeps its type
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        sums.add(table_checksums(conn)["t"])
        conn.close()
    assert len(sums) == 6


def test_same_content_in_different_insert_order_is_equal(tmp_path: Path) -> None:
    a, b = open_db(tmp_path / "a.db"), open_db(tmp_path / "b.db")
    for conn in (a, b):
        conn.execute(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE k(a, b, PRIMARY KEY(a, b))"
        )
    for i in range(20):
        a.execute("INSERT INTO t VALUES (?, ?); INSERT INTO k VALUES (?, 'x')", (i, i * i, i))
    for i in reversed(range(20)):
        b.execute("INSERT INTO t VALUES (?, ?); INSERT INTO k VALUES (?, 'x')", (i, i * i, i))
    assert table_checksums(a) == table_checksums(b)
    assert database_checksum(a) == database_checksum(b)
    b.execute("UPDATE t SET v = v + 1 WHERE id = 7")
    sa, sb = table_checksums(a), table_checksums(b)
    assert sa["t"] != sb["t"]
    assert sa["k"] == sb["k"] and sa[SCHEMA_KEY] == sb[SCHEMA_KEY]
    assert database_checksum(a) != database_checksum(b)


def test_rowid_of_tables_without_primary_key_counts(tmp_path: Path) -> None:
    a, b = open_db(tmp_path / "a.db"), open_db(tmp_path / "b.db")
    for conn in (a, b):
        conn.execute("CREATE TABLE t(v)")
    a.execute("INSERT INTO t(rowid, v) VALUES (1, 'x'), (2, 'y')")
    b.execute("INSERT INTO t(rowid, v) VALUES (1, 'y'), (2, 'x')")
    assert table_checksums(a)["t"] != table_checksums(b)["t"]


def test_schema_and_meta(db: apsw.Connection) -> None:
    ensure_meta(db)
    db.execute("CREATE TABLE t(x)")
    before = table_checksums(db)
    assert set(before) == {SCHEMA_KEY, "t"}  # the meta table is not part of it
    with db:
        write_lsn(db, 42)
    assert table_checksums(db) == before
    db.execute("CREATE INDEX t_x ON t(x)")
    after = table_checksums(db)
    assert after[SCHEMA_KEY] != before[SCHEMA_KEY] and after["t"] == before["t"]
    assert META_TABLE not in after


def test_shadow_tables_and_internal_tables_are_included(db: apsw.Connection) -> None:
    db.execute(
        "CREATE VIRTUAL TABLE docs USING fts5(body);"
        "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1);"
        "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, g AS (id * 2) VIRTUAL);"
        "INSERT INTO docs VALUES ('hello'); INSERT INTO boxes VALUES (1, 0, 1);"
        "INSERT INTO a DEFAULT VALUES; CREATE INDEX a_g ON a(g); ANALYZE;"
    )
    names = set(table_checksums(db))
    assert {"docs_data", "docs_idx", "docs_content", "boxes_node", "boxes_rowid"} <= names
    assert {"sqlite_sequence", "sqlite_stat1", "a"} <= names
    assert "docs" not in names and "boxes" not in names
    before = table_checksums(db)
    db.execute("INSERT INTO docs VALUES ('world')")
    after = table_checksums(db)
    changed = {name for name in before if before[name] != after[name]}
    assert changed and all(name.startswith("docs_") for name in changed)


def test_reads_a_snapshot_without_blocking_the_writer(tmp_path: Path) -> None:
    writer = open_db(tmp_path / "s.db")
    writer.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
    reader = open_db(tmp_path / "s.db")
    committed = table_checksums(reader)
    writer.execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (2)")
    assert table_checksums(reader) == committed  # uncommitted rows are not seen
    writer.execute("INSERT INTO t VALUES (3); COMMIT")  # and the writer was not blocked
    assert reader.get_autocommit()  # the read transaction was closed
    assert table_checksums(reader) != committed
