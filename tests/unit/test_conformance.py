"""Conformance table: every SQLite feature comes out identical on a copy.

Each row is a feature and a workload of jobs. Every job runs on database A
the way the member runs it (BEGIN IMMEDIATE, SAVEPOINT, capture, RELEASE,
meta LSN, COMMIT) and becomes one record; the record's payload is encoded,
decoded and applied with ``apply_record`` to database B, which started as an
identical (empty) copy. Then A and B must have equal table checksums, equal
row dumps (rowids included where they are replicated), equal answers to the
row's queries, and B must read fine with the standard library's sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import pytest

from litemirror.engine import (
    META_TABLE,
    Capture,
    Where,
    apply_record,
    decode_ops,
    encode_ops,
    ensure_meta,
    open_apply_connection,
    read_lsn,
    table_checksums,
    write_lsn,
)

BIG = os.urandom(10 * 1024 * 1024)

#: A job: a script, or a list of (sql, params) run with execute().
Job = str | list[tuple[str, Any]]


class Primary:
    """Database A driven the way the member drives its writer connection."""

    def __init__(self, path: Path) -> None:
        self.conn = apsw.Connection(str(path))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        ensure_meta(self.conn)
        self.capture = Capture(self.conn)
        self.lsn = 0

    def run_group(self, jobs: list[Job]) -> tuple[int, bytes] | None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        ops = []
        for job in jobs:
            conn.execute("SAVEPOINT j")
            self.capture.begin_job(Where.SCRIPT if isinstance(job, str) else Where.TRANSACTION)
            if isinstance(job, str):
                self.capture.executescript(job)
            else:
                for sql, params in job:
                    self.capture.execute(sql, params)
            ops += self.capture.end_job()
            conn.execute("RELEASE j")
        if not ops:
            conn.execute("COMMIT")
            return None
        self.lsn += 1
        write_lsn(conn, self.lsn)
        conn.execute("COMMIT")
        return self.lsn, encode_ops(ops)


def dump(conn: apsw.Connection) -> dict[str, list[str]]:
    """Every table's rows (with rowid where it is replicated), sorted; and the header."""
    out: dict[str, list[str]] = {}
    for (name,) in list(conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")):
        if name == META_TABLE:
            continue
        info = list(conn.execute(f'PRAGMA table_xinfo("{name}")'))
        keyed = [r for r in info if r[5]]
        rowid_is_data = not keyed or (len(keyed) == 1 and keyed[0][2].upper() == "INTEGER")
        if name.startswith("sqlite_") or not rowid_is_data:
            query = f'SELECT * FROM "{name}"'
        else:
            query = f'SELECT rowid, * FROM "{name}"'
        out[name] = sorted(repr(row) for row in conn.execute(query))
    out["(header)"] = [
        repr(conn.execute(f"PRAGMA {p}").fetchone()) for p in ("user_version", "application_id")
    ]
    return out


@dataclass
class Case:
    id: str
    jobs: list[Job]
    queries: list[str] = field(default_factory=list)
    group: bool = False  # run all jobs as one group (one record) instead of one each


CASES = [
    Case(
        "ddl-basic-index-view",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB);"
            "CREATE INDEX t_a ON t(a); CREATE VIEW v AS SELECT id, a FROM t WHERE b > 1;",
            [("INSERT INTO t(a, b, c) VALUES (?, ?, ?)", ("x", 1.5, b"\x00\x01"))]
            + [
                ("INSERT INTO t(a, b, c) VALUES (:a, :b, NULL)", {"a": f"r{i}", "b": i})
                for i in range(50)
            ],
            "UPDATE t SET a = upper(a) WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0;",
            "INSERT INTO t(a, b, c) VALUES ('1', 1, 1), (1, '1', 1.0), (1.0, 1.0, '1');",
        ],
        ["SELECT * FROM v ORDER BY id", "SELECT typeof(a), typeof(b), typeof(c) FROM t"],
    ),
    Case(
        "alter-add-column-cut-in-one-job",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a);",
            "INSERT INTO t(a) VALUES (1), (2); ALTER TABLE t ADD COLUMN b DEFAULT 7;"
            "INSERT INTO t(a, b) VALUES (3, 30); UPDATE t SET b = b + a;"
            "ALTER TABLE t ADD COLUMN c TEXT; UPDATE t SET c = 'c' || id;",
        ],
    ),
    Case(
        "alter-rename-column",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, old); CREATE INDEX t_old ON t(old);"
            "CREATE VIEW v AS SELECT old FROM t; INSERT INTO t(old) VALUES ('a'), ('b');",
            "ALTER TABLE t RENAME COLUMN old TO new; INSERT INTO t(new) VALUES ('c');"
            "UPDATE t SET new = new || '!' WHERE id = 1;",
        ],
        ["SELECT * FROM v"],
    ),
    Case(
        "alter-drop-column",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c);"
            "INSERT INTO t(a, b, c) VALUES (1, 2, 3), (4, 5, 6);",
            "UPDATE t SET b = b * 10; ALTER TABLE t DROP COLUMN b;"
            "INSERT INTO t(a, c) VALUES (7, 9);",
        ],
    ),
    Case(
        "alter-rename-table-with-trigger",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a); CREATE TABLE log(x);"
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END;"
            "INSERT INTO t(a) VALUES (1);",
            "ALTER TABLE t RENAME TO u; INSERT INTO u(a) VALUES (2);",
        ],
        ["SELECT * FROM log"],
    ),
    Case(
        "triggers-replicate-once",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a);"
            "CREATE TABLE audit(id INTEGER PRIMARY KEY, op, val, at);"
            "CREATE TRIGGER ti AFTER INSERT ON t BEGIN "
            "  INSERT INTO audit(op, val, at) VALUES ('i', new.a, random()); END;"
            "CREATE TRIGGER tu AFTER UPDATE ON t BEGIN "
            "  INSERT INTO audit(op, val) VALUES ('u', new.a); END;"
            "CREATE TRIGGER td BEFORE DELETE ON t BEGIN "
            "  INSERT INTO audit(op, val) VALUES ('d', old.a); END;",
            "INSERT INTO t(a) VALUES (1), (2), (3); UPDATE t SET a = a + 1;"
            "DELETE FROM t WHERE a = 2;",
        ],
        ["SELECT count(*) FROM audit"],
    ),
    Case(
        "fts5",
        [
            "CREATE VIRTUAL TABLE docs USING fts5(title, body);",
            [
                (
                    "INSERT INTO docs(title, body) VALUES (?, ?)",
                    (f"t{i}", f"hello world {i} sqlite"),
                )
                for i in range(200)
            ],
            "UPDATE docs SET body = 'goodbye moon' WHERE rowid % 10 = 0;"
            "DELETE FROM docs WHERE rowid % 17 = 0;",
            "INSERT INTO docs(docs) VALUES ('optimize');",
        ],
        [
            "SELECT rowid, title FROM docs WHERE docs MATCH 'hello AND sqlite' ORDER BY rank",
            "SELECT rowid FROM docs WHERE docs MATCH 'moon' ORDER BY rowid",
        ],
    ),
    Case(
        "fts5-external-content-triggers",
        [
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, body);"
            "CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes', content_rowid='id');"
            "CREATE TRIGGER n_ai AFTER INSERT ON notes BEGIN "
            "  INSERT INTO notes_fts(rowid, body) VALUES (new.id, new.body); END;"
            "CREATE TRIGGER n_ad AFTER DELETE ON notes BEGIN "
            "  INSERT INTO notes_fts(notes_fts, rowid, body)"
            "  VALUES ('delete', old.id, old.body); END;",
            "INSERT INTO notes(body) VALUES ('alpha beta'), ('beta gamma'), ('gamma delta');"
            "DELETE FROM notes WHERE id = 2;",
        ],
        ["SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'gamma'"],
    ),
    Case(
        "rtree",
        [
            "CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx, miny, maxy);",
            [
                ("INSERT INTO boxes VALUES (?, ?, ?, ?, ?)", (i, i, i + 5, -i, -i + 3))
                for i in range(1, 300)
            ],
            "DELETE FROM boxes WHERE id % 5 = 0;"
            "UPDATE boxes SET maxx = maxx + 100 WHERE id % 7 = 0;",
        ],
        ["SELECT id FROM boxes WHERE minx >= 10 AND maxx <= 120 AND miny >= -50 ORDER BY id"],
    ),
    Case(
        "autoincrement",
        [
            "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v);"
            "CREATE TABLE b(id INTEGER PRIMARY KEY AUTOINCREMENT, v);",
            "INSERT INTO a(v) VALUES (1), (2), (3); INSERT INTO b(v) VALUES ('x');",
            "DELETE FROM a;",
            "INSERT INTO a(v) VALUES (4);",
            # Net nothing in the table, but the counter moved: only sqlite_sequence changes.
            "INSERT INTO b(v) VALUES ('y'); DELETE FROM b WHERE v = 'y';",
            "INSERT INTO a(id, v) VALUES (100, 'big'); DELETE FROM a WHERE id = 100;",
        ],
        ["SELECT name, seq FROM sqlite_sequence ORDER BY name"],
    ),
    Case(
        "without-rowid",
        [
            "CREATE TABLE kv(a TEXT, b INTEGER, v, PRIMARY KEY (a, b)) WITHOUT ROWID;",
            "INSERT INTO kv VALUES ('x', 1, 'one'), ('x', 2, 'two'), ('y', 1, x'ff');",
            "UPDATE kv SET v = 'ONE' WHERE a = 'x' AND b = 1; DELETE FROM kv WHERE a = 'y';"
            "UPDATE kv SET b = 3 WHERE b = 2;",
        ],
    ),
    Case(
        "rowid-table-without-pk-duplicates",
        [
            "CREATE TABLE dup(a, b);",
            "INSERT INTO dup VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, 'y');",
            "UPDATE dup SET b = 'changed' WHERE rowid = 2;",
            "DELETE FROM dup WHERE rowid = 1; INSERT INTO dup VALUES (1, 'x');",
            "DELETE FROM dup WHERE a = 1 AND b = 'x';",
        ],
    ),
    Case(
        "generated-columns",
        [
            "CREATE TABLE g(id INTEGER PRIMARY KEY, x,"
            " v AS (x * 2) VIRTUAL, s AS (x || '!') STORED);"
            "CREATE INDEX g_s ON g(s);",
            "INSERT INTO g(x) VALUES (1), (2), ('a');",
            "UPDATE g SET x = x + 10 WHERE id < 3;",
        ],
        ["SELECT id, v, s FROM g WHERE s = '11!'"],
    ),
    Case(
        "big-blob",
        [
            "CREATE TABLE files(id INTEGER PRIMARY KEY, data BLOB);",
            [("INSERT INTO files(data) VALUES (?)", (BIG,))],
            "INSERT INTO files(data) SELECT randomblob(10 * 1024 * 1024);",
        ],
        ["SELECT id, length(data), hex(substr(data, 5000000, 16)) FROM files"],
    ),
    Case(
        "random-values",
        [
            "CREATE TABLE r(id INTEGER PRIMARY KEY, n, b);",
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) "
            "INSERT INTO r(n, b) SELECT random(), randomblob(16) FROM s;",
            "UPDATE r SET n = random() WHERE id % 2 = 0;",
        ],
    ),
    Case(
        "datetime-now",
        [
            "CREATE TABLE ev(id INTEGER PRIMARY KEY, at TEXT DEFAULT (datetime('now')), ms, jd);",
            "INSERT INTO ev(ms, jd) VALUES (strftime('%f', 'now'), julianday('now'));"
            "INSERT INTO ev(at) VALUES (CURRENT_TIMESTAMP);",
        ],
    ),
    Case(
        "pragma-user-version",
        [
            "PRAGMA user_version = 42;",
            [("CREATE TABLE t(x)", None), ("PRAGMA application_id = 1234", None)],
            "PRAGMA user_version = 43; INSERT INTO t VALUES (1);",
        ],
    ),
    Case(
        "drop-table-index-view-trigger",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, a); CREATE INDEX t_a ON t(a);"
            "CREATE TABLE keep(x); CREATE VIEW v AS SELECT a FROM t;"
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO keep VALUES (new.a); END;"
            "INSERT INTO t(a) VALUES (1), (2);",
            "DROP TRIGGER tr; DROP VIEW v; DROP INDEX t_a; INSERT INTO t(a) VALUES (3);",
            "DROP TABLE t; DROP TABLE IF EXISTS nothing_here;"
            "CREATE TABLE t(z); INSERT INTO t VALUES (9);",
        ],
    ),
    Case(
        "ctas-with-random",
        [
            "CREATE TABLE src(id INTEGER PRIMARY KEY, v); INSERT INTO src(v) VALUES (1), (2), (3);",
            "CREATE TABLE c AS SELECT id, v, random() AS r, randomblob(8) AS b FROM src;"
            "INSERT INTO c(id, v) VALUES (10, 10);",
            "CREATE TABLE IF NOT EXISTS c AS SELECT random();",
            "CREATE TABLE empty_copy AS SELECT * FROM src WHERE 0;",
        ],
    ),
    Case(
        "foreign-key-cascades",
        [
            "CREATE TABLE p(id INTEGER PRIMARY KEY);"
            "CREATE TABLE ch(id INTEGER PRIMARY KEY, pid REFERENCES p(id) ON DELETE CASCADE);"
            "INSERT INTO p VALUES (1), (2), (3); INSERT INTO ch(pid) VALUES (1), (1), (2), (3);",
            "DELETE FROM p WHERE id = 1;",
            # With foreign keys on, DROP TABLE deletes the rows first, cascading to ch.
            "DROP TABLE p;",
        ],
    ),
    Case(
        "analyze",
        [
            "CREATE TABLE t(a, b); CREATE INDEX t_a ON t(a);"
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500) "
            "INSERT INTO t SELECT i % 10, i FROM s;",
            "ANALYZE;",
            "INSERT INTO t VALUES (1, 1); ANALYZE t;",
        ],
    ),
    Case(
        "upsert-and-replace",
        [
            "CREATE TABLE u(k TEXT UNIQUE, n INTEGER); INSERT INTO u VALUES ('a', 1), ('b', 1);",
            "INSERT INTO u VALUES ('a', 5) ON CONFLICT(k) DO UPDATE SET n = n + excluded.n;"
            "INSERT OR REPLACE INTO u VALUES ('b', 9); REPLACE INTO u VALUES ('c', 3);",
        ],
    ),
    Case(
        "temp-objects-not-replicated",
        [
            "CREATE TABLE main_t(x);",
            "CREATE TEMP TABLE scratch(x); INSERT INTO scratch VALUES (1), (2);"
            "INSERT INTO main_t SELECT x * 10 FROM scratch; DROP TABLE scratch;",
        ],
    ),
    Case(
        "several-jobs-one-group",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a);",
            "INSERT INTO t(a) VALUES (1);",
            "ALTER TABLE t ADD COLUMN b; UPDATE t SET b = 2;",
            "INSERT INTO t(a, b) VALUES (3, 4);",
        ],
        group=True,
    ),
]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Primary, apsw.Connection, Path]]:
    primary = Primary(tmp_path / "a.db")
    b_path = tmp_path / "b.db"
    copy = open_apply_connection(str(b_path))
    yield primary, copy, b_path
    primary.capture.close()
    primary.conn.close()
    copy.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_feature_replicates_identically(
    case: Case, pair: tuple[Primary, apsw.Connection, Path]
) -> None:
    primary, copy, b_path = pair
    groups = [case.jobs] if case.group else [[job] for job in case.jobs]
    for jobs in groups:
        record = primary.run_group(jobs)
        if record is None:  # the job changed nothing (e.g. IF NOT EXISTS)
            continue
        lsn, payload = record
        decode_ops(payload)  # decodes on its own
        assert apply_record(copy, lsn, payload) is True
        assert read_lsn(copy) == lsn

    assert table_checksums(copy) == table_checksums(primary.conn)
    assert dump(copy) == dump(primary.conn)
    for query in case.queries:
        assert list(copy.execute(query)) == list(primary.conn.execute(query)), query

    # The copy is a plain SQLite file any SQLite reads.
    with sqlite3.connect(b_path) as plain:
        assert plain.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for (name,) in plain.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
        ).fetchall():
            plain.execute(f'SELECT count(*) FROM "{name}"').fetchone()


def test_text_primary_key_rowids_are_not_replicated(
    pair: tuple[Primary, apsw.Connection, Path],
) -> None:
    """Known limit: changesets key such rows by PRIMARY KEY, not rowid.

    The logical content (and the checksum, which orders by key) is identical;
    the hidden rowids are not: the copy assigns them in changeset order, and
    a row deleted and re-inserted in one job keeps its old rowid there.
    SQLite itself does not keep these rowids stable (VACUUM renumbers them).
    """
    primary, copy, _ = pair
    for jobs in (
        ["CREATE TABLE k(name TEXT PRIMARY KEY, v); INSERT INTO k VALUES ('a', 1), ('b', 2);"],
        ["DELETE FROM k WHERE name = 'a'; INSERT INTO k VALUES ('a', 3);"],
    ):
        record = primary.run_group(jobs)
        assert record is not None
        apply_record(copy, *record)
    assert table_checksums(copy) == table_checksums(primary.conn)
    query = "SELECT rowid, name, v FROM k ORDER BY name"
    assert list(primary.conn.execute(query)) == [(3, "a", 3), (2, "b", 2)]
    on_copy = list(copy.execute(query))
    assert [row[1:] for row in on_copy] == [("a", 3), ("b", 2)]
    assert {row[0] for row in on_copy} == {1, 2}  # 'a' kept its old rowid on the copy
