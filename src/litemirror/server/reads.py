"""Read-only statements on reader connections (WAL snapshots, never block the writer).

A statement outside a transaction is tried here first when it looks like a
query. SQLite tells us, after preparing and before running, whether the
statement is read-only (``is_readonly`` in the exec tracer); a writing
statement is stopped there, untouched, and sent to the writer instead.
"""

from __future__ import annotations

from typing import Any

import apsw

from litemirror.engine.capture import ExecResult
from litemirror.engine.sqlerrors import translate
from litemirror.errors import ProgrammingError

_QUERY_WORDS = ("select", "with", "values", "explain", "pragma")


class NeedsWriter(Exception):
    """The statement writes; run it on the writer."""


def looks_like_query(sql: str) -> bool:
    head = sql.lstrip(" \t\r\n(").split(None, 1)
    if not head:
        return False
    word = head[0].lower()
    if word == "pragma":
        # "PRAGMA x = v" changes something; "PRAGMA x" and "PRAGMA x(arg)" read.
        return "=" not in sql
    return word in _QUERY_WORDS


def open_reader(path: str) -> apsw.Connection:
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(5000)
    conn.execute("PRAGMA query_only=1")
    return conn


def run_read(conn: apsw.Connection, sql: str, params: Any) -> ExecResult:
    """Run one read-only statement; raise NeedsWriter if it would write."""
    cur = conn.cursor()
    seen = 0
    columns: list[tuple[str, str | None]] | None = None

    def trace(c: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
        nonlocal seen, columns
        seen += 1
        if seen > 1:
            raise ProgrammingError("You can only execute one statement at a time.")
        if not c.is_readonly:
            raise NeedsWriter()
        desc = c.description
        columns = [(d[0], d[1]) for d in desc] if desc else None
        return True

    cur.exec_trace = trace
    try:
        rows = [tuple(r) for r in cur.execute(sql, params)]
    except (NeedsWriter, ProgrammingError):
        raise
    except (apsw.Error, KeyError, TypeError, OverflowError) as exc:
        raise translate(exc) from exc
    finally:
        cur.close()
    return ExecResult(columns=columns, rows=rows, rowcount=-1, lastrowid=conn.last_insert_rowid())
