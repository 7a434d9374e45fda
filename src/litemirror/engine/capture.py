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
statement is first prepared; apsw's statement cache does the rest. What a
client may do at all is decided in :mod:`litemirror.engine.policy`.

Savepoints. A client's ``SAVEPOINT``/``RELEASE``/``ROLLBACK TO`` is read by
SQLite itself (the authorizer reports the verb and the name while a
``CLASSIFY`` prepare is denied) and carried out on a savepoint of the
member's own naming, so a client can only ever reach its own savepoints. A
savepoint is a *mark*: the capture is cut there, so the ops recorded after
it can be dropped again — ``ROLLBACK TO`` truncates the job's ops to the
mark and restarts the session, and the database, DDL and AUTOINCREMENT
counters go back with SQLite's own rollback. ``executescript`` follows
sqlite3: statements outside BEGIN...COMMIT stand on their own, a statement
that fails stops the script and what ran before it stays (see
``ScriptStopped``). With foreign keys enforced, each such statement gets a
mark without a cut (a deferred violation undoes only that statement): the
session's net difference already forgets rolled-back rows, and the first
cut after the mark — the DDL path's, before the statement changes
anything — turns it into an ordinary mark.

Two things sessions do not see are handled here:

- ``sqlite_sequence`` (AUTOINCREMENT counters) is not recorded, so it is read
  when a session starts and at each cut; a difference becomes a ``SqlOp``
  that sets the counters on the copy (after the changeset, whose inserts move
  the copy's counters first).
- ``CREATE TABLE ... AS SELECT`` inserts bypass the session, and re-running
  it on a copy would re-evaluate ``random()``. So the table's schema SQL is
  recorded instead, and its rows are moved out and back in under a session.

TEMP objects a client makes inside a transaction or script are dropped by
``end_job``, so nothing of a client outlives its job on the shared
connection. Statements that can create something (CREATE, DROP, ALTER) and
PRAGMAs are never taken from apsw's statement cache, because a cached
statement skips the authorizer; transaction verbs, VACUUM, ATTACH and
DETACH are decided before anything is prepared.
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
from litemirror.engine.policy import Rules, Where
from litemirror.engine.refusals import refuse
from litemirror.engine.sqlerrors import translate
from litemirror.errors import (
    DatabaseError,
    IntegrityError,
    InternalError,
    OperationalError,
    ProgrammingError,
)

Params = Sequence[Any] | Mapping[str, Any] | None

#: What apsw raises while preparing, binding or stepping a client statement.
_STATEMENT_ERRORS = (apsw.Error, KeyError, TypeError, OverflowError, ValueError)

_CTAS_TEMP = "_litemirror_ctas"
_P = ParamSpec("_P")
#: First keywords of statements that may create something: never cached.
_UNCACHED_KEYWORDS = frozenset({"CREATE", "DROP", "ALTER", "PRAGMA"})
#: SQLite's primary result code of a constraint failure.
_SQLITE_CONSTRAINT = 19
#: SQLite's result code of an interrupted statement.
_SQLITE_INTERRUPT = 9
#: The verb of a SQLITE_SAVEPOINT authorizer action, as the client wrote it.
_SAVEPOINT_VERBS = {"BEGIN": "SAVEPOINT", "RELEASE": "RELEASE", "ROLLBACK": "ROLLBACK TO"}


class _Mode(enum.IntEnum):
    IDLE = 0  # the member's own statements: everything is allowed
    CLIENT = 1  # a client statement: DDL is denied here and re-run by the DDL path
    DDL = 2  # a client DDL statement being re-run: allowed, actions recorded
    CLASSIFY = 3  # a transaction statement: SQLite parses it, the first action is kept


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
        except ScriptStopped as stopped:
            # What ran before the failing statement stays, and counts.
            stopped.error.changes = self._changes - start
            raise
        return replace(result, changes=self._changes - start)

    return counted


class ScriptStopped(Exception):
    """A script stopped at a failing statement; what ran before it stays, as in sqlite3.

    The job is consistent (the failed part is rolled back, its ops dropped):
    the member commits the job and then answers ``error``.
    """

    def __init__(self, error: DatabaseError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class _Mark:
    """A savepoint of the job and where the capture stood when it was taken."""

    name: str | None  # the client's savepoint name; None for BEGIN or one statement
    savepoint: str  # the member's name for it on the connection
    ops: int  # number of ops recorded before it
    seq: dict[str, Any]  # AUTOINCREMENT counters then
    cut: bool  # False: taken without a cut, see the module docstring
    opens_transaction: bool = False  # a script's SAVEPOINT that began its transaction


def _fold(name: str) -> bytes:
    """A savepoint name compared as SQLite does (ASCII case-insensitive)."""
    return name.encode("utf-8", "surrogatepass").lower()


class Capture:
    """Executes client SQL on the writer connection and returns each job's ops."""

    def __init__(self, conn: apsw.Connection, stop: Callable[[], bool] | None = None) -> None:
        self._conn = conn
        #: Asked between the statements of executemany() and of a script: true
        #: when the job must stop (its time limit passed, its client interrupted
        #: it). Within one statement SQLite's progress handler asks the same.
        self._stop = stop
        #: Set on the connection before it got here, outside any transaction
        #: (the only place SQLite honours it); clients cannot change it.
        self._foreign_keys = bool(_scalar(conn, "PRAGMA foreign_keys"))
        self._all_rules = {w: Rules(w, self._foreign_keys) for w in Where}
        self._rules = self._all_rules[Where.STATEMENT]
        self._mode = _Mode.IDLE
        self._wants_ddl = False
        self._wants_optimize: str | None = None
        self._refusal: DatabaseError | None = None
        self._classified: tuple[int, str | None, str | None] | None = None
        self._ddl_actions: list[tuple[int, str | None, str | None]] = []
        self._ddl_targets: set[str] = set()
        self._session: apsw.Session | None = None
        self._ops: list[Op] | None = None
        self._marks: list[_Mark] = []
        self._temp_created = False
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

    def begin_job(self, where: Where = Where.STATEMENT) -> None:
        """Start capturing a job; call right after the job's SAVEPOINT."""
        if self._ops is not None:
            raise InternalError("begin_job() called while a job is already being captured")
        self._rules = self._all_rules[where]
        self._ops = []
        self._marks = []
        self._temp_created = False
        self._start_session()

    def check_deferred(self) -> None:
        """Raise IntegrityError if the job leaves a deferred foreign-key violation.

        SQLite checks deferred constraints only when the whole transaction
        commits — the group, here — so each job is checked before its RELEASE:
        one client's violation must fail that client alone. Earlier jobs of the
        group were checked the same way, so the connection's counter is this
        job's.
        """
        if self._foreign_keys and self._conn.status(apsw.SQLITE_DBSTATUS_DEFERRED_FKS)[0]:
            raise IntegrityError("FOREIGN KEY constraint failed", sqlite_code=_SQLITE_CONSTRAINT)

    def end_job(self) -> list[Op]:
        """Finish the job (before its RELEASE) and return its ops in order.

        Raises IntegrityError for a deferred foreign-key violation; the job is
        then still being captured (abort it, or let the client fix it).
        """
        ops = self._job_ops()
        self.check_deferred()
        self._drop_temp_objects()
        self._cut()
        self._ops = None
        self._marks = []
        return ops

    def abort_job(self) -> None:
        """Discard the job; the member rolls its savepoint back (TEMP objects too)."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self._ops = None
        self._marks = []
        self._temp_created = False
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
            return self._empty()
        statement = statements[0]
        keyword = policy.first_keyword(statement)
        if keyword in policy.TRANSACTION_KEYWORDS:
            return self._savepoint_statement(statement)
        return self._run(statement, params, keyword)

    @_counted
    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> ExecResult:
        """Run one DML statement once per parameter set; rowcount is the total."""
        self._job_ops()
        statements = policy.split_statements(sql)
        if len(statements) > 1:
            raise ProgrammingError("You can only execute one statement at a time.")
        if statements and policy.first_keyword(statements[0]) in policy.TRANSACTION_KEYWORDS:
            raise ProgrammingError("executemany() can only execute DML statements.")
        total = 0
        counted = False
        for params in seq_of_params if statements else ():
            self._check_stop()
            result = self._run(statements[0], params)
            if self._readonly:
                raise ProgrammingError("executemany() can only execute DML statements.")
            if result.rowcount >= 0:
                total += result.rowcount
                counted = True
        return ExecResult(None, [], total if counted else -1, self._conn.last_insert_rowid())

    @_counted
    def executescript(self, sql: str) -> ExecResult:
        """Run every statement of a script, without parameters, as sqlite3 does.

        Raises a refusal with nothing run when the script cannot run at all,
        or :class:`ScriptStopped` when a statement failed after others ran.
        """
        self._job_ops()
        steps = [(s, self._script_verb(s)) for s in policy.split_statements(sql)]
        if policy.script_ends_open([verb for _, verb in steps]):
            raise refuse("script-leaves-transaction-open", "the script")
        in_txn = False
        for statement, verb in steps:
            try:
                self._check_stop()
                if verb is not None:
                    in_txn = self._script_control(verb, in_txn)
                elif in_txn or not self._foreign_keys:
                    self._run(statement, None)
                else:
                    self._run_alone(statement)
            except InternalError:
                raise
            except DatabaseError as exc:
                if in_txn:
                    # sqlite3 leaves the transaction open here for the program to
                    # commit or roll back; a script is one job, so it is rolled back.
                    self._rollback_to(0)
                    self._release(0)
                raise ScriptStopped(exc) from exc
        return self._empty()

    def _empty(self) -> ExecResult:
        return ExecResult(None, [], -1, self._conn.last_insert_rowid())

    def _check_stop(self) -> None:
        """Stop between two statements of a job, as SQLite stops one within a statement."""
        if self._stop is not None and self._stop():
            raise OperationalError("interrupted", sqlite_code=_SQLITE_INTERRUPT)

    def _run(self, statement: str, params: Params, keyword: str | None = None) -> ExecResult:
        if keyword is None:
            keyword = policy.first_keyword(statement)
        if keyword == "ANALYZE":
            # Its writes to sqlite_stat1 would be refused as direct writes.
            return self._run_ddl(statement, params)
        if keyword == "VACUUM":
            policy.maintenance(statement)  # VACUUM INTO is refused as such
            raise policy.maintenance_refusal(self._rules.where, "VACUUM")
        if keyword in policy.TRANSACTION_KEYWORDS:
            raise refuse("transaction-sql", keyword)
        if keyword in ("ATTACH", "DETACH"):
            raise refuse("attach", keyword)
        self._mode = _Mode.CLIENT
        self._wants_ddl = False
        self._wants_optimize = None
        self._refusal = None
        self._columns = None
        self._readonly = False
        before = self._conn.total_changes()
        try:
            cache = keyword not in _UNCACHED_KEYWORDS
            self._cursor.execute(statement, params, can_cache=cache)
            rows = self._cursor.fetchall()
        except _STATEMENT_ERRORS as exc:
            if self._refusal is not None:
                raise self._refusal from None
            if not self._wants_ddl and self._wants_optimize is None:
                raise translate(exc) from exc
            rows = None
        finally:
            self._mode = _Mode.IDLE
            self._changes += self._conn.total_changes() - before
        if self._wants_optimize is not None:
            return self._run_optimize(self._wants_optimize)
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
        if mode == _Mode.CLASSIFY:
            if self._classified is None:
                self._classified = (code, arg1, arg2)
            return apsw.SQLITE_DENY
        if mode == _Mode.DDL:
            self._ddl_actions.append((code, arg1, arg2))
            target = arg2 if code in (apsw.SQLITE_ALTER_TABLE, apsw.SQLITE_CREATE_INDEX) else arg1
            if code in policy.DDL_CODES and target:
                self._ddl_targets.add(target)
            verdict = policy.ddl_action(code, arg1, arg2, db, trigger, self._rules)
        else:
            verdict = policy.client_action(code, arg1, arg2, db, self._rules)
        if isinstance(verdict, DatabaseError):
            self._refusal = verdict
            return apsw.SQLITE_DENY
        if verdict is policy.RUN_AS_DDL:
            self._wants_ddl = True
            return apsw.SQLITE_DENY
        if verdict is policy.RUN_OPTIMIZE:
            self._wants_optimize = arg2 or ""
            return apsw.SQLITE_DENY
        if db == "temp" and code == apsw.SQLITE_INSERT:
            self._temp_created = True  # a TEMP object is being made: drop it at the end
        return apsw.SQLITE_OK

    # ------------------------------------------------------- savepoints and scripts

    def _classify(self, statement: str) -> tuple[str, str | None]:
        """(verb, savepoint name) of a transaction statement, as SQLite parses it."""
        self._mode = _Mode.CLASSIFY
        self._classified = None
        try:
            self._conn.execute(statement, can_cache=False)
        except apsw.AuthError:
            pass
        except _STATEMENT_ERRORS as exc:
            raise translate(exc) from exc
        finally:
            self._mode = _Mode.IDLE
        found, self._classified = self._classified, None
        if found is None:
            raise refuse("transaction-sql", policy.first_keyword(statement))
        code, arg1, arg2 = found
        if code == apsw.SQLITE_SAVEPOINT and arg1 in _SAVEPOINT_VERBS and arg2 is not None:
            return _SAVEPOINT_VERBS[arg1], arg2
        if code == apsw.SQLITE_TRANSACTION and arg1 in ("BEGIN", "COMMIT", "ROLLBACK"):
            return arg1, None
        raise refuse("transaction-sql", policy.first_keyword(statement))

    def _savepoint_statement(self, statement: str) -> ExecResult:
        verb, name = self._classify(statement)
        if name is None:
            raise refuse("transaction-sql", verb)
        if self._rules.where is not Where.TRANSACTION:
            raise refuse("savepoint-outside-transaction", verb)
        if verb == "SAVEPOINT":
            self._push(name)
        elif verb == "RELEASE":
            self._release(self._find(name))
        else:
            self._rollback_to(self._find(name))
        return self._empty()

    def _script_verb(self, statement: str) -> tuple[str, str | None] | None:
        """Transaction control of a script step; refuses what cannot run in a script."""
        keyword = policy.first_keyword(statement)
        if policy.maintenance(statement) is not None:
            raise policy.maintenance_refusal(Where.SCRIPT, keyword)
        if keyword in policy.TRANSACTION_KEYWORDS:
            return self._classify(statement)
        return None

    def _script_control(self, step: tuple[str, str | None], in_txn: bool) -> bool:
        """Carry out one transaction statement of a script; whether a transaction is open."""
        verb, name = step
        if verb == "BEGIN":
            if in_txn:
                raise OperationalError("cannot start a transaction within a transaction")
            self._push(None)
            return True
        if verb == "COMMIT" or verb == "ROLLBACK":
            if not in_txn:
                action = "commit" if verb == "COMMIT" else "rollback"
                raise OperationalError(f"cannot {action} - no transaction is active")
            if verb == "COMMIT":
                self.check_deferred()
            else:
                self._rollback_to(0)
            self._release(0)
            return False
        assert name is not None
        if verb == "SAVEPOINT":
            self._push(name, opens_transaction=not in_txn)
            return True
        index = self._find(name)
        if verb == "ROLLBACK TO":
            self._rollback_to(index)
            return True
        if index == 0 and self._marks[0].opens_transaction:
            self.check_deferred()  # releasing it commits the transaction it began
            self._release(0)
            return False
        self._release(index)
        return True

    def _run_alone(self, statement: str) -> None:
        """One statement outside a transaction, with foreign keys enforced.

        It commits on its own in sqlite3, where a deferred violation fails
        that statement alone; here it is undone back to a mark of its own.
        """
        index = self._mark(None, cut=False)
        try:
            self._run(statement, None)
            self.check_deferred()
        except DatabaseError:
            self._rollback_to(index)
            self._release(index)
            raise
        self._release(index)

    def _push(self, name: str | None, *, opens_transaction: bool = False) -> int:
        """A savepoint where the capture is cut: what follows can be dropped again."""
        self._cut()
        index = self._mark(name, cut=True, opens_transaction=opens_transaction)
        self._session = self._new_session(_not_meta)
        return index

    def _mark(self, name: str | None, *, cut: bool, opens_transaction: bool = False) -> int:
        savepoint = f"lm_s{len(self._marks)}"
        self._conn.execute(f"SAVEPOINT {savepoint}")
        ops = len(self._job_ops())
        self._marks.append(
            _Mark(name, savepoint, ops, dict(self._seq_before), cut, opens_transaction)
        )
        return len(self._marks) - 1

    def _find(self, name: str) -> int:
        want = _fold(name)
        for index in range(len(self._marks) - 1, -1, -1):
            mark = self._marks[index]
            if mark.name is not None and _fold(mark.name) == want:
                return index
        raise OperationalError(f"no such savepoint: {name}")

    def _release(self, index: int) -> None:
        self._conn.execute(f"RELEASE {self._marks[index].savepoint}")
        del self._marks[index:]

    def _rollback_to(self, index: int) -> None:
        mark = self._marks[index]
        self._conn.execute(f"ROLLBACK TO {mark.savepoint}")
        del self._marks[index + 1 :]
        if not mark.cut:
            return  # nothing was cut since: the session's net difference forgets it all
        if self._session is not None:
            self._session.close()
        del self._job_ops()[mark.ops :]
        self._seq_before = dict(mark.seq)
        self._has_seq = None  # a rolled-back DDL may have created sqlite_sequence
        self._session = self._new_session(_not_meta)

    def _drop_temp_objects(self) -> None:
        """Drop the TEMP objects the job made: they must not outlive it."""
        if not self._temp_created:
            return
        self._temp_created = False
        conn = self._conn
        found = list(
            conn.execute(
                "SELECT type, name FROM temp.sqlite_schema WHERE type IN ('trigger', 'view', "
                "'table') ORDER BY type = 'table', sql NOT LIKE 'CREATE VIRTUAL%'",
                can_cache=False,
            )
        )
        for kind, name in found:
            conn.execute(f"DROP {kind.upper()} IF EXISTS temp.{policy.quote_ident(name)}")

    # ----------------------------------------------------------------- the DDL path

    def _run_ddl(self, statement: str, params: Params) -> ExecResult:
        """Run a DDL statement under a mark of its own, so a failure undoes it whole.

        The statement runs before its op is recorded and its side changes are
        captured; should any of that fail, the mark takes the statement and
        what was recorded of it back, and the job stays consistent.
        """
        self._cut()
        index = self._mark(None, cut=True)
        conn = self._conn
        self._ddl_actions = []
        self._ddl_targets = set()
        self._refusal = None
        targets = self._ddl_targets
        side = self._new_session(
            lambda name: (
                name not in targets and name != META_TABLE and not name.startswith("sqlite_")
            )
        )
        try:
            version = self._schema_version()
            self._mode = _Mode.DDL
            before = conn.total_changes()
            try:
                conn.execute(statement, params, can_cache=False).fetchall()
            finally:
                self._mode = _Mode.IDLE
                self._changes += conn.total_changes() - before
            op = self._ddl_op(statement, self._schema_version() != version)
            if op is not None:
                self._job_ops().append(op)
            self._append_changeset(side)
            created = self._created_table()
            if op is not None and created is not None:
                self._capture_ctas_rows(created)
        except BaseException as exc:
            side.close()
            self._rollback_to(index)
            self._release(index)
            if self._refusal is not None:
                raise self._refusal from None
            if isinstance(exc, _STATEMENT_ERRORS):
                raise translate(exc) from exc
            raise
        self._release(index)
        self._has_seq = None
        self._start_session()
        return self._empty()

    def _run_optimize(self, argument: str) -> ExecResult:
        """``PRAGMA optimize`` as the ANALYZE statements it suggests, each replicated.

        Left to itself, optimize decides from this connection's query history
        and analyses with a row limit, so a copy replaying the pragma would
        compute other statistics. Asked in its debug mode, it lists the
        ANALYZE statements it would run; those run here in full and are
        recorded like any ANALYZE, so every member holds the same sqlite_stat1.
        """
        mask = policy.optimize_mask(argument)
        if not mask & 0x02:
            return self._empty()
        conn = self._conn
        cursor = conn.execute(f"PRAGMA main.optimize({(mask | 0x01) & ~0x10})", can_cache=False)
        suggested = [str(row[0]) for row in cursor]
        if mask & 0x01:  # the client asked for the list only
            return ExecResult(None, [(s,) for s in suggested], -1, conn.last_insert_rowid())
        for statement in suggested:
            if statement.startswith('ANALYZE "main".'):
                self._run_ddl(statement, None)
        return self._empty()

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
        # The new table has no key another table's foreign key could name (a
        # reference to it is a "foreign key mismatch"), so the move cascades nowhere.
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
        self._session = self._new_session(_not_meta)
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
        if self._marks and not self._marks[-1].cut:
            # A mark taken without a cut, right before the one statement now
            # running, which has changed nothing yet: it starts here.
            mark = self._marks[-1]
            mark.cut = True
            mark.ops = len(self._job_ops())
            mark.seq = dict(after)

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


def _not_meta(name: str) -> bool:
    return name != META_TABLE


def _scalar(conn: apsw.Connection, sql: str) -> Any:
    row = conn.execute(sql, can_cache=False).fetchone()
    if row is None:
        raise InternalError(f"{sql!r} returned no row")
    return row[0]
