"""Time limits and interrupts of client statements, and the events they raise.

Theory of operation
-------------------
Every request that runs SQL for a client (a statement, an executemany()
call, a script) carries a :class:`StatementGuard`: its time limit and a
cancel flag. Whatever runs the request's SQL consults the guard through
SQLite's *progress handler*, which SQLite calls every :data:`PROGRESS_STEPS`
virtual-machine steps of the statement running on that connection; a true
answer makes SQLite stop that statement, and only that one, with
``SQLITE_INTERRUPT``. The guard answers true once its deadline has passed,
or once it was cancelled: by the client (``Connection.interrupt()``, an
``Interrupt`` frame), because the client went away, or because the member
is shutting down. Between the statements of an executemany() call or a
script the runner asks :meth:`StatementGuard.stop` itself, so a long series
of short statements stops too.

Nothing here uses ``sqlite3_interrupt``: it would hit whatever runs on the
connection, and the writer connection is shared by every session of a
database, one worker hop running several clients' jobs in turn. The guard
is the running job's own, so only the job that overran is stopped (what
happens to the rest of its group is :mod:`.database`'s business).

The limit of a session comes from ``[statements]``: the user's own
(``user_timeout_s``), else the role's (``role_timeout_s``), else
``timeout_s``; a connection may ask for a lower one (``statement_timeout``
in its URL), never a higher one.

:class:`StatementReports` turns finished guards into events: a statement
stopped by its time limit (``statement_interrupted``) or because its client
went away, and a statement that ran longer than ``statements.slow_s``
(``slow_statement``). Each names the user, the database and the first
characters of the SQL text, never parameter values, and each kind is said
at most once a minute per user and database, with the count of those not
said.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from typing import Any

from litemirror.errors import OperationalError

#: SQLite virtual-machine steps between two calls of the progress handler:
#: a few tens of microseconds of work, so a stop takes effect at once, while a
#: short statement (an INSERT runs a few dozen steps) never calls it at all.
PROGRESS_STEPS = 4000
#: SQLite's result code for an interrupted statement.
SQLITE_INTERRUPT = 9
#: Characters of the SQL text an event shows.
SQL_SHOWN = 120
#: One event per kind, user and database in this window; the rest are counted.
EVENT_EVERY_S = 60.0
_KEYS_KEPT = 1000


class Stop(enum.Enum):
    """Why a statement was stopped before its end."""

    CLIENT = "interrupted by the client"
    TIMEOUT = "time limit"
    GONE = "client went away"
    SHUTDOWN = "member shutting down"


class ShutdownFlag:
    """Set once when the member starts to shut down; every guard then stops."""

    __slots__ = ("set",)

    def __init__(self) -> None:
        self.set = False


class StatementGuard:
    """One request's time limit and cancel flag; its ``stop`` is the progress handler."""

    __slots__ = (
        "_clock",
        "_shutdown",
        "database",
        "deadline",
        "limit",
        "reason",
        "seconds",
        "sql",
        "started",
        "user",
    )

    def __init__(
        self,
        limit: float,
        *,
        shutdown: ShutdownFlag | None = None,
        user: str | None = None,
        database: str = "",
        sql: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Seconds the request may run (0: no limit).
        self.limit = limit
        self.user = user
        self.database = database
        #: The request's SQL text (shown shortened in events).
        self.sql = sql
        #: Why the request was stopped; None while it may run.
        self.reason: Stop | None = None
        self.started = 0.0
        self.deadline = math.inf
        #: How long the request's SQL ran (set by finish()).
        self.seconds = 0.0
        self._clock = clock
        self._shutdown = shutdown

    def start(self) -> None:
        """The request's SQL starts (again, when its group is run again): the clock starts."""
        self.started = self._clock()
        self.deadline = self.started + self.limit if self.limit > 0 else math.inf

    def finish(self) -> None:
        self.seconds = self._clock() - self.started

    def cancel(self, reason: Stop) -> None:
        """Stop the request at SQLite's next progress call (safe from the event loop)."""
        if self.reason is None:
            self.reason = reason

    def stop(self) -> bool:
        """True when the request must stop now (SQLite's progress handler)."""
        if self.reason is not None:
            return True
        if self._shutdown is not None and self._shutdown.set:
            self.reason = Stop.SHUTDOWN
            return True
        if self._clock() > self.deadline:
            self.reason = Stop.TIMEOUT
            return True
        return False

    def error(self) -> OperationalError:
        """The error the request's client gets for a stop (sqlite3 says "interrupted")."""
        reason = self.reason
        if reason is Stop.TIMEOUT:
            message = (
                f"interrupted: the statement ran longer than its time limit of {self.limit:g} s "
                "and was rolled back; nothing of it was kept (the limit comes from "
                "[statements] in the member's configuration, or statement_timeout in the URL)"
            )
        elif reason is Stop.SHUTDOWN:
            message = (
                "interrupted: the member is shutting down; the statement was rolled back, "
                "nothing of it was kept; retry (the driver reconnects)"
            )
        else:
            message = "interrupted"  # as sqlite3 says after Connection.interrupt()
        return OperationalError(
            message,
            sqlite_code=SQLITE_INTERRUPT,
            sqlite_errorname="SQLITE_INTERRUPT",
            retryable=reason is Stop.SHUTDOWN,
        )


def session_limit(configured: float, requested: float | None) -> float:
    """A session's limit: the configured one, or a lower one the connection asked for."""
    if requested is None or requested <= 0:
        return configured
    if configured <= 0:
        return requested
    return min(configured, requested)


class StatementReports:
    """Events for slow and stopped statements, at most one a minute per kind, user, database."""

    def __init__(
        self,
        emit: Callable[..., None],
        slow_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._slow_s = slow_s
        self._clock = clock
        #: (kind, user, database) -> (when said last, how many not said since).
        self._said: dict[tuple[str, str, str], tuple[float, int]] = {}

    def finished(self, guard: StatementGuard) -> None:
        """Report ``guard``'s request if it was stopped by its limit, orphaned, or slow."""
        if guard.reason is Stop.TIMEOUT:
            self._report(
                "statement_interrupted",
                guard,
                f"stopped after {guard.seconds:.1f} s by its time limit of {guard.limit:g} s",
                "warning",
            )
        elif guard.reason is Stop.GONE:
            self._report(
                "statement_interrupted",
                guard,
                f"stopped after {guard.seconds:.1f} s: its client went away",
                "info",
            )
        elif guard.reason is None and 0 < self._slow_s <= guard.seconds:
            self._report(
                "slow_statement",
                guard,
                f"ran {guard.seconds:.1f} s (statements.slow_s = {self._slow_s:g})",
                "info",
            )

    def _report(self, kind: str, guard: StatementGuard, what: str, severity: str) -> None:
        key = (kind, guard.user or "", guard.database)
        now = self._clock()
        last, unsaid = self._said.get(key, (-math.inf, 0))
        if now - last < EVENT_EVERY_S:
            self._said[key] = (last, unsaid + 1)
            return
        if len(self._said) >= _KEYS_KEPT:
            self._said.pop(next(iter(self._said)))
        self._said[key] = (now, 0)
        who = f"user {guard.user!r}" if guard.user else "a client"
        more = f" ({unsaid} more like it in the last minute)" if unsaid else ""
        data: dict[str, Any] = {
            "user": guard.user,
            "database": guard.database,
            "sql": shorten(guard.sql),
            "seconds": round(guard.seconds, 3),
            "more": unsaid,
        }
        if guard.limit > 0:
            data["limit_s"] = guard.limit
        self._emit(
            kind,
            f"statement of {who} on {guard.database!r} {what}: {shorten(guard.sql)}{more}",
            severity,
            **data,
        )


def shorten(sql: str) -> str:
    """The first characters of a statement, on one line (never its parameters)."""
    text = " ".join(sql[: SQL_SHOWN * 2].split())
    return text if len(text) <= SQL_SHOWN else text[: SQL_SHOWN - 3] + "..."
