"""Read-only statements on reader connections (WAL snapshots, never block the writer).

A statement outside a transaction is tried here first when it looks like a
query. SQLite tells us, after preparing and before running, whether the
statement is read-only (``is_readonly`` in the exec tracer); a writing
statement is stopped there, untouched, and sent to the writer instead.

Short reads run on the event loop itself (:func:`run_read_inline`): a point
query costs less than the round trip to a worker thread. The loop must never
wait long, so the inline attempt has a budget: a progress handler interrupts
the statement once it has run longer than ``INLINE_BUDGET_S``, and a busy
database is not waited for; either way :class:`Deferred` tells the caller to
run the read again on a worker thread. Interrupting a read-only statement
leaves nothing behind (SQLite rolls nothing back for it), and the partial
rows are thrown away, so the retry answers exactly as if it had run there
first.

Reader connections also carry an *authorizer* (SQLite's own statement
checker, consulted while a statement is prepared): it allows reading tables,
calling functions and a list of introspection pragmas, nothing else. So a
statement that SQLite would call read-only but that changes state behind the
journal's back (``PRAGMA query_only=0`` followed by ``REINDEX``, ``ATTACH``
of another file, ``PRAGMA wal_checkpoint``) never runs on a reader: it is
refused at prepare and handed to the writer path, where the session's role
checks and the journal apply.

A read on a worker runs under its request's guard (:mod:`.statements`): the
reader's progress handler stops it at its time limit, or when its client
interrupts it or goes away. Reads run on their own thread pool, so readers
never hold back the writer's work.

Readers enforce foreign keys when the database does (``[sqlite]
foreign_keys``), so ``PRAGMA foreign_keys`` reads the truth on them too, and
setting it to the value in force is accepted as the no-op it is.
"""

from __future__ import annotations

import time
from typing import Any

import apsw

from litemirror.engine.capture import ExecResult
from litemirror.engine.policy import pragma_bool
from litemirror.engine.sqlerrors import translate
from litemirror.errors import DatabaseError, ProgrammingError
from litemirror.server.storage.statements import PROGRESS_STEPS, StatementGuard

BUSY_TIMEOUT_MS = 5000
_QUERY_WORDS = ("select", "with", "values", "explain", "pragma")


#: How long a read may run on the event loop before it is moved to a worker.
INLINE_BUDGET_S = 0.0002
#: Longer statements are never tried on the event loop: SQLite does not call
#: the progress handler while it parses, and parsing a long text (a huge IN
#: list) would hold the loop however small the budget.
INLINE_SQL_MAX = 2048
#: SQLite virtual-machine steps between two looks at the clock.
_CHECK_STEPS = 200


class NeedsWriter(Exception):
    """The statement writes; run it on the writer."""


class Deferred(Exception):
    """The inline attempt ran out of budget (or met a lock); run it on a worker."""


def looks_like_query(sql: str) -> bool:
    head = sql.lstrip(" \t\r\n(").split(None, 1)
    if not head:
        return False
    word = head[0].lower()
    if word == "pragma":
        # "PRAGMA x = v" changes something; "PRAGMA x" and "PRAGMA x(arg)" read.
        return "=" not in sql
    return word in _QUERY_WORDS


#: Pragmas a reader may run, with an argument or without (they only report).
_READ_PRAGMAS = frozenset(
    {
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
        "function_list", "pragma_list", "collation_list", "database_list",
        "compile_options", "module_list",
    }
)  # fmt: skip
#: Pragmas a reader may run only without an argument (with one they would set).
_GET_PRAGMAS = frozenset(
    {
        "user_version", "application_id", "schema_version", "data_version", "page_count",
        "page_size", "freelist_count", "encoding", "journal_mode", "auto_vacuum",
        "foreign_keys", "query_only", "busy_timeout", "cache_size", "synchronous",
    }
)  # fmt: skip
_READ_ACTIONS = frozenset({apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_FUNCTION})
_RECURSIVE = getattr(apsw, "SQLITE_RECURSIVE", 33)


class _ReadOnlyAuthorizer:
    """SQLite authorizer for reader connections; remembers whether it refused a write."""

    def __init__(self, foreign_keys: bool = False) -> None:
        self.refused = False
        self._foreign_keys = foreign_keys

    def __call__(
        self, action: int, p1: str | None, p2: str | None, _db: str | None, _trigger: str | None
    ) -> int:
        if action in _READ_ACTIONS or action == _RECURSIVE:
            return apsw.SQLITE_OK
        if action == apsw.SQLITE_PRAGMA:
            name = (p1 or "").lower()
            if name in _READ_PRAGMAS or (name in _GET_PRAGMAS and p2 is None):
                return apsw.SQLITE_OK
            # Setting the value in force is the no-op it is on the writer.
            setting = name == "foreign_keys" and p2 is not None and _db in (None, "main")
            if setting and pragma_bool(p2 or "") == self._foreign_keys:
                return apsw.SQLITE_OK
        self.refused = True
        return apsw.SQLITE_DENY


def open_reader(path: str, foreign_keys: bool = False) -> apsw.Connection:
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA query_only=1")
    conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    conn.authorizer = _ReadOnlyAuthorizer(foreign_keys)
    return conn


def run_read_inline(conn: apsw.Connection, sql: str, params: Any) -> ExecResult:
    """Like :func:`run_read`, within a time budget, for the event loop; raises Deferred."""
    deadline = time.perf_counter() + INLINE_BUDGET_S
    stopped = False

    def over_budget() -> bool:
        nonlocal stopped
        stopped = time.perf_counter() > deadline
        return stopped

    conn.set_progress_handler(over_budget, _CHECK_STEPS)
    conn.set_busy_timeout(0)
    try:
        return _read(conn, sql, params)
    except Exception as exc:
        if stopped or getattr(exc, "sqlite_code", None) in (apsw.SQLITE_BUSY, apsw.SQLITE_LOCKED):
            raise Deferred() from exc
        raise
    finally:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        conn.set_progress_handler(None)


def run_read(
    conn: apsw.Connection, sql: str, params: Any, guard: StatementGuard | None = None
) -> ExecResult:
    """Run one read-only statement; raise NeedsWriter if it would write.

    With a ``guard``, the statement stops when the guard says so (its time
    limit passed, its client interrupted it or went away): the reader's
    progress handler asks it, and the client gets the guard's error.
    """
    if guard is None:
        return _read(conn, sql, params)
    guard.start()
    if guard.stop():
        raise guard.error()  # stopped while it waited for a reader: it never starts
    conn.set_progress_handler(guard.stop, PROGRESS_STEPS)
    try:
        return _read(conn, sql, params)
    except DatabaseError:
        if guard.reason is not None:
            raise guard.error() from None
        raise
    finally:
        conn.set_progress_handler(None)
        guard.finish()


def _read(conn: apsw.Connection, sql: str, params: Any) -> ExecResult:
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
    guard = conn.authorizer
    if isinstance(guard, _ReadOnlyAuthorizer):
        guard.refused = False
    try:
        rows = [tuple(r) for r in cur.execute(sql, params)]
    except (NeedsWriter, ProgrammingError):
        raise
    except apsw.AuthError as exc:
        if isinstance(guard, _ReadOnlyAuthorizer) and guard.refused:
            raise NeedsWriter() from exc
        raise translate(exc) from exc
    except (apsw.Error, KeyError, TypeError, OverflowError) as exc:
        raise translate(exc) from exc
    finally:
        cur.close()
    return ExecResult(columns=columns, rows=rows, rowcount=-1, lastrowid=conn.last_insert_rowid())
