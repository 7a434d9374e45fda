"""Rows changed per request on the member's writer, against sqlite3's ``total_changes``.

The member reports, for each request, the rows its client statements changed
(``ExecResult.changes``, or ``Error.changes`` when it failed), measured around
the client's statements only. Summed by the driver, that must be exactly what
``sqlite3.Connection.total_changes`` says after the same statements: triggers
counted, a failed statement's trigger work counted as SQLite counts it, the
member's own bookkeeping (CREATE TABLE AS moves its rows through a session,
the meta table) not counted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import apsw
import pytest

from litemirror.engine import Capture, ensure_meta, write_lsn
from litemirror.errors import DatabaseError

#: (kind, sql, params): kind is "exec", "many" or "script".
STEPS: list[tuple[str, str, Any]] = [
    ("script", "CREATE TABLE t (x UNIQUE); CREATE TABLE log (y)", None),
    ("exec", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.x); END", None),
    ("exec", "INSERT INTO t VALUES (1), (2)", None),
    ("exec", "INSERT INTO t VALUES (3), (1)", None),  # fails; the trigger ran once
    ("exec", "UPDATE t SET x = x + 10", None),
    ("exec", "INSERT OR REPLACE INTO t VALUES (11)", None),
    ("exec", "CREATE TABLE copy AS SELECT * FROM t", None),
    ("exec", "SELECT count(*) FROM copy", None),
    ("many", "INSERT INTO t VALUES (?)", [(20,), (21,), (20,), (22,)]),  # fails at the third
    ("exec", "DELETE FROM log", None),  # no WHERE: SQLite's truncate still counts the rows
    ("exec", "DELETE FROM copy WHERE x > 11", None),
    (
        "script",
        "INSERT INTO copy VALUES (5); UPDATE copy SET x = 6; INSERT INTO t VALUES (1)",
        None,
    ),
    ("exec", "DROP TABLE copy", None),
    ("exec", "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v)", None),
    ("many", "INSERT INTO a (v) VALUES (?)", [("p",), ("q",)]),
    ("exec", "PRAGMA user_version = 3", None),
]


def _sqlite3_counts(path: Path) -> list[int]:
    """total_changes after each step, in sqlite3 autocommit mode."""
    conn = sqlite3.connect(path, isolation_level=None)
    out = []
    for kind, sql, params in STEPS:
        try:
            if kind == "exec":
                conn.execute(sql)
            elif kind == "many":
                conn.executemany(sql, params)
            else:
                conn.executescript(sql)
        except sqlite3.Error:
            pass
        out.append(conn.total_changes)
    conn.close()
    return out


def _member_counts(path: Path) -> list[int]:
    """The running sum of the changes the member reports, one job per step."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    ensure_meta(conn)
    cap = Capture(conn)
    total, out = 0, []
    for lsn, (kind, sql, params) in enumerate(STEPS, 1):
        conn.execute("BEGIN IMMEDIATE; SAVEPOINT job")
        cap.begin_job()
        try:
            if kind == "exec":
                res = cap.execute(sql, params)
            elif kind == "many":
                res = cap.executemany(sql, params)
            else:
                res = cap.executescript(sql)
        except DatabaseError as exc:
            total += exc.changes
            # Keep what ran before the failure, as sqlite3's autocommit does.
            cap.end_job()
        else:
            total += res.changes
            cap.end_job()
        conn.execute("RELEASE job")
        write_lsn(conn, lsn)  # the member's own write: never counted
        conn.execute("COMMIT")
        out.append(total)
    cap.close()
    conn.close()
    return out


def test_changes_add_up_to_sqlite3_total_changes(tmp_path: Path) -> None:
    expected = _sqlite3_counts(tmp_path / "local.db")
    got = _member_counts(tmp_path / "member.db")
    for (kind, sql, _), want, have in zip(STEPS, expected, got, strict=True):
        assert have == want, f"after {kind} {sql!r}: member {have}, sqlite3 {want}"


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "CREATE TABLE y (x)", "PRAGMA table_info(z)", "CREATE INDEX zi ON z (x)"]
)
def test_statements_that_change_no_rows_report_none(tmp_path: Path, sql: str) -> None:
    conn = apsw.Connection(str(tmp_path / "m.db"))
    ensure_meta(conn)
    cap = Capture(conn)
    conn.execute("BEGIN IMMEDIATE; SAVEPOINT job")
    cap.begin_job()
    cap.execute("CREATE TABLE IF NOT EXISTS z (x)")
    assert cap.execute(sql).changes == 0
    cap.end_job()
    conn.execute("RELEASE job; COMMIT")
    cap.close()
    conn.close()
