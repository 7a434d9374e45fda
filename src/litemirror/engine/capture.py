"""Run client statements on the writer connection and capture what they change.

Theory of operation
-------------------
The member runs each client job as a savepoint inside one group transaction
and calls ``begin_job`` / ``execute``... / ``end_job`` (or ``abort_job``).
Row changes are recorded by a SQLite **session** attached to ``main`` (rowid
mode, so tables without a PRIMARY KEY are keyed by rowid; the meta table is
filtered out). A session's changeset is the net difference between a row's
first-seen value and its value now, so statements that failed, and rows
that were changed back, leave nothing behind.

DDL cannot go through a session: a changeset only applies against the
schema it was recorded under. Every client statement is prepared with an
authorizer in ``CLIENT`` mode. When it reports a main-schema DDL action (or a
write to ``sqlite_schema``, or ``PRAGMA user_version = n``) it *denies* the
prepare, so nothing has run; the DDL path then cuts the changeset so far,
re-runs the statement in ``DDL`` mode (allowed, uncached, with a side session
that records only changes to *other* tables, e.g. foreign-key cascades of a
DROP TABLE), records the statement as a ``SqlOp`` if the schema version moved,
and starts a fresh session. Plain DML only pays the authorizer when a
statement is first prepared; apsw's statement cache does the rest.

Two things sessions do not see are handled here:

- ``sqlite_sequence`` (AUTOINCREMENT counters) is not recorded, so it is read
  when a session starts and at each cut; a difference becomes a ``SqlOp``
  that sets the counters on the copy (after the changeset, whose inserts move
  the copy's counters first).
- ``CREATE TABLE ... AS SELECT`` inserts bypass the session, and re-running
  it on a copy would re-evaluate ``random()``. So the table's schema SQL is
  recorded instead, and its rows are moved out and back in under a session.

Statements whose first keyword is a transaction verb, VACUUM, ATTACH or DETACH
are refused before they are prepared (a cached statement would skip the
authorizer); PRAGMAs are never cached for the same reason.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Concatenate, ParamSpec

import apsw

from litemirror.engine import policy
from litemirror.engine.meta import META_TABLE
from litemirror.engine.ops import ChangesetOp, Op, SqlOp
from litemirror.engine.sqlerrors import translate
from litemirror.errors import DatabaseError, InternalError, ProgrammingError

Params = Sequence[Any] | Mapping[str, Any] | None

#: What apsw raises while preparing, binding or stepping a client statement.
_STATEMENT_ERRORS = (apsw.Error, KeyError, TypeError, OverflowError, ValueError)

_CTAS_TEMP = "_litemirror_ctas"
_P = ParamSpec("_P")


class _Mode(enum.IntEnum):
    IDLE = 0  # the member's own statements: everything is allowed
    CLIENT = 1  # a client statement: DDL is denied here and re-run by the DDL path
    DDL = 2  # a client DDL statement being re-run: allowed, actions recorded


@dataclass(frozen=True, slots=True)
class ExecResult:
    """Outcome of one statement, shaped like a :mod:`sqlite3` cursor's."""

    columns: list[tuple[str, str | None]] | None
    rows: list[tuple[Any, ...]]
    rowcount: int
    lastrowid: int
    #: Rows the client's statements changed, counted as SQLite's total_changes()
    #: counts them (triggers included); the member's own statements are not.
    changes: int = 0


def _counted(
    run: Callable[Concatenate[Capture, _P], ExecResult],
) -> Callable[Concatenate[Capture, _P], ExecResult]:
    """Give a request's result (or error) the rows its client statements changed."""

    def counted(self: Capture, /, *args: _P.args, **kwargs: _P.kwargs) -> ExecResult:
        start = self._changes
        try:
            result = run(self, *args, **kwargs)
        except DatabaseError as exc:
            exc.changes = self._changes - start
            raise
        return replace(result, changes=self._changes - start)

    return counted


class Capture:
    """Executes client SQL on the writer connection and returns each job's ops."""

    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn
        self._mode = _Mode.IDLE
        self._wants_ddl = False
        self._refusal: DatabaseError | None = None
        self._ddl_actions: list[tuple[int, str | None, str | None]] = []
        self._ddl_targets: set[str] = set()
        self._session: apsw.Session | None = None
        self._ops: list[Op] | None = None
        self._has_seq: bool | None = None
        self._seq_before: dict[str, Any] = {}
        self._columns: list[tuple[str, str | None]] | None = None
        self._readonly = False
        #: Rows changed by client statements on this connection (see ExecResult.changes).
        self._changes = 0
        self._cursor = conn.cursor()
        self._cursor.exec_trace = self._trace
        # Setting an authorizer expires prepared statements, so it is set once
        # and switched by mode rather than installed per statement.
        conn.authorizer = self._authorize

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._ops = None
        self._conn.authorizer = None

    # ------------------------------------------------------------ job lifecycle

    def begin_job(self) -> None:
        """Start capturing a job; call right after the job's SAVEPOINT."""
        if self._ops is not None:
            raise InternalError("begin_job() called while a job is already being captured")
        self._ops = []
        self._start_session()

    def end_job(self) -> list[Op]:
        """Finish the job (before its RELEASE) and return its ops in order."""
        ops = self._job_ops()
        self._cut()
        self._ops = None
        return ops

    def abort_job(self) -> None:
        """Discard the job; the member rolls its savepoint back."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self._ops = None
        self._has_seq = None  # a rolled-back DDL may have created or dropped it

    # --------------------------------------------------------------- execution

    @_counted
    def execute(self, sql: str, params: Params = None) -> ExecResult:
        """Run exactly one statement (:mod:`sqlite3` rules) and capture it."""
        self._job_ops()
        statements = policy.split_statements(sql)
        if len(statements) > 1:
            raise ProgrammingError("You can only execute one statement at a time.")
        if not statements:
            return ExecResult(None, [], -1, self._conn.last_insert_rowid())
        return self._run(statements[0], params)

    @_counted
    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> ExecResult:
        """Run one DML statement once per parameter set; rowcount is the total."""
        self._job_ops()
        statements = policy.split_statements(sql)
        if len(statements) > 1:
            raise ProgrammingError("You can only execute one statement at a time.")
        total = 0
        counted = False
        for params in seq_of_params if statements else ():
            result = self._run(statements[0], params)
            if self._readonly:
                raise ProgrammingError("executemany() can only execute DML statements.")
            if result.rowcount >= 0:
                total += result.rowcount
                counted = True
        return ExecResult(None, [], total if counted else -1, self._conn.last_insert_rowid())

    @_counted
    def executescript(self, sql: str) -> ExecResult:
        """Run every statement of a script, without parameters."""
        self._job_ops()
        for statement in policy.split_statements(sql):
            self._run(statement, None)
        return ExecResult(None, [], -1, self._conn.last_insert_rowid())

    def _run(self, statement: str, params: Params) -> ExecResult:
        keyword = policy.first_keyword(statement)
        refusal = policy.keyword_refusal(keyword)
        if refusal is not None:
            raise refusal
        if keyword == "ANALYZE":
            # Its writes to sqlite_stat1 would be refused as direct writes.
            return self._run_ddl(statement, params)
        self._mode = _Mode.CLIENT
        self._wants_ddl = False
        self._refusal = None
        self._columns = None
        self._readonly = False
        before = self._conn.total_changes()
        try:
            self._cursor.execute(statement, params, can_cache=keyword != "PRAGMA")
            rows = self._cursor.fetchall()
        except _STATEMENT_ERRORS as exc:
            if self._refusal is not None:
                raise self._refusal from None
            if not self._wants_ddl:
                raise translate(exc) from exc
            rows = None
        finally:
            self._mode = _Mode.IDLE
            self._changes += self._conn.total_changes() - before
        if rows is None:
            return self._run_ddl(statement, params)
        rowcount = self._conn.changes() if keyword in policy.DML_KEYWORDS else -1
        return ExecResult(self._columns, rows, rowcount, self._conn.last_insert_rowid())

    def _trace(self, cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        # Called once the statement is prepared and before it runs: the only
        # moment apsw gives result columns for a SELECT that returns no rows.
        self._columns = list(cursor.get_description()) or None
        self._readonly = cursor.is_readonly
        return True

    # --------------------------------------------------------------- authorizer

    def _authorize(
        self, code: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        mode = self._mode
        if mode == _Mode.IDLE:
            return apsw.SQLITE_OK
        if mode == _Mode.DDL:
            self._ddl_actions.append((code, arg1, arg2))
            target = arg2 if code in (apsw.SQLITE_ALTER_TABLE, apsw.SQLITE_CREATE_INDEX) else arg1
            if code in policy.DDL_CODES and target:
                self._ddl_targets.add(target)
            return apsw.SQLITE_OK
        verdict = policy.client_action(code, arg1, arg2, db)
        if isinstance(verdict, DatabaseError):
            self._refusal = verdict
            return apsw.SQLITE_DENY
        if verdict is policy.RUN_AS_DDL:
            self._wants_ddl = True
            return apsw.SQLITE_DENY
        return apsw.SQLITE_OK

    # ----------------------------------------------------------------- the DDL path

    def _run_ddl(self, statement: str, params: Params) -> ExecResult:
        self._cut()
        conn = self._conn
        version = self._schema_version()
        self._ddl_actions = []
        self._ddl_targets = set()
        targets = self._ddl_targets
        side = self._new_session(
            lambda name: (
                name not in targets and name != META_TABLE and not name.startswith("sqlite_")
            )
        )
        self._mode = _Mode.DDL
        before = conn.total_changes()
        try:
            conn.execute(statement, params, can_cache=False).fetchall()
        except _STATEMENT_ERRORS as exc:
            side.close()
            self._start_session()
            raise translate(exc) from exc
        finally:
            self._mode = _Mode.IDLE
            self._changes += conn.total_changes() - before
        try:
            op = self._ddl_op(statement, self._schema_version() != version)
            if op is not None:
                self._job_ops().append(op)
            self._append_changeset(side)
            created = self._created_table()
            if op is not None and created is not None:
                self._capture_ctas_rows(created)
        finally:
            self._has_seq = None
            self._start_session()
        return ExecResult(None, [], -1, conn.last_insert_rowid())

    def _ddl_op(self, statement: str, schema_changed: bool) -> SqlOp | None:
        if self._is_analyze():
            # ANALYZE rewrites sqlite_stat1 from the data, which the copy has too;
            # it may create sqlite_stat1 first, so it is looked for before all else.
            return SqlOp(statement)
        for code, arg1, _arg2 in self._ddl_actions:
            if code == apsw.SQLITE_PRAGMA and (arg1 or "").lower() in policy.REPLICATED_PRAGMAS:
                name = (arg1 or "").lower()
                value = _scalar(self._conn, f"PRAGMA main.{name}")
                return SqlOp(f"PRAGMA {name} = {int(value)}")
            if code not in policy.DDL_CODES:
                continue
            if not schema_changed:
                return None  # IF [NOT] EXISTS that did nothing, or EXPLAIN
            created = policy.CREATED_TYPE.get(code)
            if created is not None and arg1 is not None:
                # The stored SQL, not the client's text: CREATE TABLE ... AS SELECT
                # must not be re-evaluated on the copy, and parameters are gone.
                row = self._conn.execute(
                    "SELECT sql FROM main.sqlite_schema WHERE type = ? AND name = ?",
                    (created, arg1),
                    can_cache=False,
                ).fetchone()
                if row is not None and row[0]:
                    return SqlOp(str(row[0]))
            return SqlOp(statement)
        if schema_changed:
            raise InternalError(f"statement changed the schema without a DDL action: {statement!r}")
        return None

    def _is_analyze(self) -> bool:
        return any(code == apsw.SQLITE_ANALYZE for code, _, _ in self._ddl_actions)

    def _created_table(self) -> str | None:
        """Name of the table a CREATE TABLE statement made (None for other DDL)."""
        if self._is_analyze():
            return None
        for code, arg1, _ in self._ddl_actions:
            if code in policy.DDL_CODES:
                return arg1 if code == apsw.SQLITE_CREATE_TABLE else None
        return None

    def _capture_ctas_rows(self, name: str) -> None:
        """Re-insert the rows of a table made by CREATE TABLE ... AS SELECT under a session."""
        conn = self._conn
        table = f"main.{policy.quote_ident(name)}"
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1", can_cache=False).fetchone() is None:
            return
        columns = [
            r[1] for r in conn.execute(f"PRAGMA main.table_info({policy.quote_ident(name)})")
        ]
        lowered = {c.lower() for c in columns}
        rowid = next((r for r in ("rowid", "_rowid_", "oid") if r not in lowered), None)
        keys = ([rowid] if rowid else []) + [policy.quote_ident(c) for c in columns]
        conn.execute(f"DROP TABLE IF EXISTS temp.{_CTAS_TEMP}", can_cache=False)
        conn.execute(
            f"CREATE TEMP TABLE {_CTAS_TEMP} AS SELECT {', '.join(keys)} FROM {table}",
            can_cache=False,
        )
        conn.execute(f"DELETE FROM {table}", can_cache=False)
        session = self._new_session(lambda t: t == name)
        try:
            conn.execute(
                f"INSERT INTO {table}({', '.join(keys)}) SELECT * FROM temp.{_CTAS_TEMP}",
                can_cache=False,
            )
            self._append_changeset(session)
        finally:
            conn.execute(f"DROP TABLE temp.{_CTAS_TEMP}", can_cache=False)

    # ------------------------------------------------------------------ sessions

    def _job_ops(self) -> list[Op]:
        if self._ops is None:
            raise InternalError("no job is being captured: call begin_job() after the SAVEPOINT")
        return self._ops

    def _new_session(self, keep: Callable[[str], bool]) -> apsw.Session:
        session = apsw.Session(self._conn, "main")
        session.config(apsw.SQLITE_SESSION_OBJCONFIG_ROWID, 1)
        session.table_filter(keep)
        session.attach()
        return session

    def _start_session(self) -> None:
        self._session = self._new_session(lambda name: name != META_TABLE)
        self._seq_before = self._read_sequences()

    def _append_changeset(self, session: apsw.Session) -> None:
        try:
            data = b"" if session.is_empty else session.changeset()
        except apsw.Error as exc:
            raise InternalError(
                f"could not take the changeset of the job: {exc}. The job was not "
                "committed; please report this."
            ) from exc
        finally:
            session.close()
        if data:
            self._job_ops().append(ChangesetOp(data))

    def _cut(self) -> None:
        """Close the current session: its changeset, then any counter changes."""
        session, self._session = self._session, None
        if session is not None:
            self._append_changeset(session)
        after = self._read_sequences()
        if after != self._seq_before:
            self._job_ops().append(SqlOp(policy.sequence_sql(self._seq_before, after)))
        self._seq_before = after

    def _read_sequences(self) -> dict[str, Any]:
        conn = self._conn
        if self._has_seq is None:
            self._has_seq = (
                conn.execute(
                    "SELECT 1 FROM main.sqlite_schema WHERE name = 'sqlite_sequence'"
                ).fetchone()
                is not None
            )
        if not self._has_seq:
            return {}
        try:
            return dict(conn.execute("SELECT name, seq FROM main.sqlite_sequence"))
        except apsw.SQLError:  # dropped by a group rollback since we looked
            self._has_seq = None
            return self._read_sequences()

    def _schema_version(self) -> int:
        return int(_scalar(self._conn, "PRAGMA main.schema_version"))


def _scalar(conn: apsw.Connection, sql: str) -> Any:
    row = conn.execute(sql, can_cache=False).fetchone()
    if row is None:
        raise InternalError(f"{sql!r} returned no row")
    return row[0]
