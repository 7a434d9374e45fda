"""DB-API 2.0 driver: ``litemirror.connect(url)`` in place of ``sqlite3.connect(path)``.

Theory of operation
-------------------
A :class:`Connection` owns at most one :class:`~.transport.Transport` to a
member and sends one request at a time, each with the next integer id. The
member reports the transaction state after every answer (``in_transaction``)
and the driver copies it, so the two never disagree.

Transactions follow :mod:`sqlite3`'s legacy mode (Python 3.11): with
``isolation_level`` not None, INSERT/UPDATE/DELETE/REPLACE outside a
transaction go out with ``begin=True``; ``isolation_level=None`` is
autocommit. The member refuses transaction SQL inside ``Execute``, so a
statement that is exactly BEGIN / COMMIT / END / ROLLBACK becomes a
``Begin`` / ``Commit`` / ``Rollback`` message.

When the member goes away the transport is dropped and the next call dials
again (this is how a client survives failover). What the caller sees depends
on what was in flight: inside a transaction, :class:`TransactionAbortedError`
(the transaction is gone; run it again); for a request sent outside a
transaction (an autocommit statement, a script, or the statement that opens a
transaction, none of which can have left anything half done),
:class:`ConnectionLostError`, or with ``retry=N`` in the URL a quiet reconnect
and resend, up to N times. A COMMIT whose answer was lost is reported with
``retryable=False``: it may have been applied.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from litemirror import errors
from litemirror.protocol import messages as m

from .statements import adapt_params, is_dml, transaction_verb
from .transport import Transport, dial
from .url import ConnectInfo, parse_url

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

_ISOLATION_LEVELS = ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_CLOSED = "Cannot operate on a closed database."
_PAUSE = 0.1
_QUERY_WORDS = ("select", "values", "explain")


def _safe_to_resend(request: m.ClientMessage) -> bool:
    """Whether running ``request`` twice is harmless (it changes nothing)."""
    if isinstance(request, (m.Ping, m.StatusRequest, m.Begin, m.Rollback)):
        return True
    if isinstance(request, m.Execute):
        if request.begin:
            return True
        words = request.sql.lstrip(" \t\r\n(").split(None, 1)
        first = words[0].lower() if words else ""
        return first in _QUERY_WORDS or (first == "pragma" and "=" not in request.sql)
    return False


Row = tuple[Any, ...]
RowFactory = Callable[["Cursor", Row], Any]


def connect(url: str, **kwargs: Any) -> Connection:
    """Open a connection. Keyword arguments override options in the URL.

    Besides the URL options (read_only, target, connect_timeout, timeout, ack,
    retry, user, password) it takes ``isolation_level`` (default ``""``, like
    sqlite3; None means autocommit).
    """
    isolation_level = kwargs.pop("isolation_level", "")
    info = parse_url(url)
    if kwargs:
        fields = {f.name for f in dataclasses.fields(info)} - {"hosts", "database"}
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise errors.InterfaceError(
                f"unknown connect() argument {unknown[0]!r}; known: "
                f"isolation_level, {', '.join(sorted(fields))}"
            )
        info = dataclasses.replace(info, **kwargs)
    return Connection(info, isolation_level=isolation_level)


class Connection:
    """A DB-API connection to the mirror's primary (or any member when read-only)."""

    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(self, info: ConnectInfo, *, isolation_level: str | None = "") -> None:
        self.info = info
        self._isolation_level = self._check_level(isolation_level)
        self._lock = threading.RLock()
        self._transport: Transport | None = None
        self._closed = False
        self._in_transaction = False
        self._next_id = 1
        self.member: str | None = None
        self.role: str | None = None
        #: Highest LSN this connection committed (0 before its first write).
        self.last_lsn = 0
        #: Reads wait until the member has applied this LSN (read-your-writes on a backup).
        self.min_lsn = 0
        self.row_factory: RowFactory | None = None
        self._open()

    # ------------------------------------------------------------ properties

    @property
    def in_transaction(self) -> bool:
        self._check_open()
        return self._in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        level = self._check_level(value)
        if level is None and self._in_transaction:
            self.commit()  # as sqlite3 3.11 does when switching to autocommit
        self._isolation_level = level

    @property
    def closed(self) -> bool:
        return self._closed

    @staticmethod
    def _check_level(value: str | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or value.upper() not in _ISOLATION_LEVELS:
            raise ValueError(
                "isolation_level string must be '', 'DEFERRED', 'IMMEDIATE', or 'EXCLUSIVE'"
            )
        return value

    # ------------------------------------------------------------ public API

    def cursor(self) -> Cursor:
        self._check_open()
        return Cursor(self)

    def execute(self, sql: str, parameters: object = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[object]) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str) -> Cursor:
        return self.cursor().executescript(sql_script)

    def commit(self) -> None:
        self._check_open()
        if self._in_transaction:
            self._request(lambda rid: m.Commit(rid, ack=self.info.ack))

    def rollback(self) -> None:
        self._check_open()
        if self._in_transaction:
            self._request(lambda rid: m.Rollback(rid))

    def close(self) -> None:
        # Like sqlite3: an open transaction is not committed; the member rolls
        # it back when the connection goes away.
        self._closed = True
        self._drop()

    def __enter__(self) -> Connection:
        self._check_open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                if self._in_transaction and not self._closed:
                    self.rollback()
                raise
        elif not self._closed and self._in_transaction:
            self.rollback()

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None:
            transport.close()

    # ------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ProgrammingError(_CLOSED)

    def _open(self, hint: str | None = None) -> Transport:
        session = dial(self.info, hint=hint)
        self._transport = session.transport
        self.member = session.welcome.member
        self.role = session.welcome.role
        self._in_transaction = False
        return session.transport

    def _drop(self) -> None:
        transport, self._transport = self._transport, None
        self._in_transaction = False
        if transport is not None:
            transport.close()

    def _request(self, build: Callable[[int], m.ClientMessage]) -> m.Result | m.Ok:
        """Send one request and return its final answer; see the module docstring."""
        self._check_open()
        with self._lock:
            retries = self.info.retry
            hint: str | None = None
            while True:
                was_in_transaction = self._in_transaction
                if self._transport is not None and self._transport.peer_closed():
                    # The member went away while we were idle; nothing was sent yet.
                    self._drop()
                    if was_in_transaction:
                        raise self._aborted(
                            m.Ping(id=0),
                            errors.ConnectionLostError(
                                "the member closed the connection during the transaction"
                            ),
                        )
                transport = self._transport or self._open(hint)
                request = build(self._next_id)
                self._next_id += 1
                sent = False
                try:
                    transport.send(request)
                    sent = True
                    answer = self._exchange(transport, request)
                except (errors.ConnectionLostError, errors.ProtocolError) as exc:
                    self._drop()
                    if was_in_transaction:
                        raise self._aborted(request, exc) from exc
                    # Resend only what cannot have changed anything: a request that never
                    # left, a read, or the statement that opens a transaction (which died
                    # with the connection). A write sent without an answer may be committed.
                    safe = not sent or _safe_to_resend(request)
                    if retries > 0 and safe and isinstance(exc, errors.ConnectionLostError):
                        retries -= 1
                        continue
                    if not safe and isinstance(exc, errors.ConnectionLostError):
                        raise errors.ConnectionLostError(
                            f"{exc.message}; the statement had been sent, so it may have been "
                            "committed: check before running it again",
                            retryable=False,
                        ) from exc
                    raise
                if isinstance(answer, m.Error):
                    self._in_transaction = answer.in_transaction
                    error = errors.BY_NAME.get(answer.kind, errors.DatabaseError)(
                        answer.message,
                        sqlite_code=answer.sqlite_code,
                        primary=answer.primary,
                        retryable=answer.retryable,
                    )
                    if isinstance(error, errors.NotPrimaryError):
                        # This member was demoted under us: find the new primary next time.
                        self._drop()
                        hint = answer.primary
                    if retries > 0 and error.retryable and not was_in_transaction:
                        retries -= 1
                        time.sleep(_PAUSE)
                        continue
                    raise error
                self._in_transaction = answer.in_transaction
                if (
                    was_in_transaction
                    and not answer.in_transaction
                    and not isinstance(request, m.Commit | m.Rollback)
                ):
                    # The member ended our transaction under a statement: never go
                    # on as if it were still open (the next write would start a new
                    # one and the transaction would be split in two).
                    raise errors.TransactionAbortedError(
                        "the member rolled the transaction back; run it again from the start"
                    )
                if answer.lsn > self.last_lsn and not answer.in_transaction:
                    self.last_lsn = answer.lsn
                return answer

    def _exchange(
        self, transport: Transport, request: m.ClientMessage
    ) -> m.Result | m.Ok | m.Error:
        """Read the answer to ``request`` (already sent)."""
        rid = request.id  # type: ignore[union-attr]
        parts: list[m.Result] = []
        while True:
            answer = transport.recv()
            if isinstance(answer, m.Error) and answer.id == 0:
                # The member refused the stream itself (bad frame) and will close.
                transport.close()
                return answer
            if isinstance(answer, m.Welcome) or answer.id != rid:
                transport.close()
                raise errors.ProtocolError(
                    f"member {transport.address} answered request {rid} with "
                    f"{type(answer).__name__} {getattr(answer, 'id', '')}; connection closed"
                )
            if not isinstance(answer, m.Result) or (answer.done and not parts):
                return answer
            parts.append(answer)
            if answer.done:
                columns = next((p.columns for p in parts if p.columns is not None), None)
                rows = [row for p in parts for row in p.rows]
                return msgspec.structs.replace(answer, columns=columns, rows=rows)

    @staticmethod
    def _aborted(request: m.ClientMessage, exc: errors.Error) -> errors.Error:
        if isinstance(request, m.Commit):
            # The commit may have reached the backup before the member died.
            return errors.TransactionAbortedError(
                f"{exc}; the outcome of COMMIT is unknown: check whether the "
                "transaction's changes are present before running it again",
                retryable=False,
            )
        return errors.TransactionAbortedError(
            f"{exc}; the open transaction was lost and rolled back. "
            "Run the whole transaction again (the next call reconnects)"
        )


class Cursor:
    """A DB-API cursor. Rows are tuples unless a ``row_factory`` is set."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self.row_factory: RowFactory | None = connection.row_factory
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[list[m.Value]] = []
        self._pos = 0
        self._closed = False

    # ------------------------------------------------------------ execute

    def execute(self, sql: str, parameters: object = ()) -> Cursor:
        self._check()
        params = adapt_params(parameters)
        verb = transaction_verb(sql)
        if verb is not None:
            self._transaction(verb)
            return self
        begin = self._implicit_begin(sql)
        result = self._run(
            lambda rid: m.Execute(rid, sql, params, begin=begin, min_lsn=self._min_lsn())
        )
        self._take(result, many=False)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[object]) -> Cursor:
        self._check()
        many: list[list[m.Value] | dict[str, m.Value]] = []
        for params in seq_of_parameters:
            converted = adapt_params(params)
            many.append([] if converted is None else converted)
        if transaction_verb(sql) is not None:
            raise errors.ProgrammingError("executemany() cannot run BEGIN, COMMIT or ROLLBACK")
        begin = self._implicit_begin(sql)
        result = self._run(
            lambda rid: m.Execute(rid, sql, None, many=many, begin=begin, min_lsn=self._min_lsn())
        )
        self._take(result, many=True)
        return self

    def executescript(self, sql_script: str) -> Cursor:
        self._check()
        if not isinstance(sql_script, str):
            raise ValueError("script argument must be unicode.")
        self.connection.commit()  # sqlite3 commits a pending transaction first
        result = self._run(lambda rid: m.Script(rid, sql_script))
        self._reset()
        if isinstance(result, m.Result):
            self._take(result, many=False)
        return self

    # ------------------------------------------------------------ fetch

    def fetchone(self) -> Any:
        self._check()
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return self._make(row)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        self._check()
        count = self.arraysize if size is None else size
        chunk = self._rows[self._pos : self._pos + max(count, 0)]
        self._pos += len(chunk)
        return [self._make(row) for row in chunk]

    def fetchall(self) -> list[Any]:
        self._check()
        chunk = self._rows[self._pos :]
        self._pos = len(self._rows)
        return [self._make(row) for row in chunk]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes: object) -> None:
        """Does nothing (DB-API allows it)."""

    def setoutputsize(self, size: object, column: object = None) -> None:
        """Does nothing (DB-API allows it)."""

    # ------------------------------------------------------------ internals

    def _check(self) -> None:
        self.connection._check_open()
        if self._closed:
            raise errors.ProgrammingError("Cannot operate on a closed cursor.")

    def _min_lsn(self) -> int:
        return self.connection.min_lsn

    def _implicit_begin(self, sql: str) -> bool:
        conn = self.connection
        return conn.isolation_level is not None and not conn.in_transaction and is_dml(sql)

    def _run(self, build: Callable[[int], m.ClientMessage]) -> m.Result | m.Ok:
        self._reset()
        return self.connection._request(build)

    def _transaction(self, verb: str) -> None:
        conn = self.connection
        self._reset()
        if verb == "begin":
            if conn.in_transaction:
                raise errors.OperationalError("cannot start a transaction within a transaction")
            conn._request(lambda rid: m.Begin(rid))
        elif not conn.in_transaction:
            action = "commit" if verb == "commit" else "rollback"
            raise errors.OperationalError(f"cannot {action} - no transaction is active")
        elif verb == "commit":
            conn.commit()
        else:
            conn.rollback()

    def _reset(self) -> None:
        self.description = None
        self.rowcount = -1
        self._rows = []
        self._pos = 0

    def _take(self, result: m.Result | m.Ok, *, many: bool) -> None:
        if not isinstance(result, m.Result):
            return
        if result.columns:
            self.description = tuple(
                (c.name, None, None, None, None, None, None) for c in result.columns
            )
        self.rowcount = result.rowcount
        if result.lastrowid is not None and not many:
            self.lastrowid = result.lastrowid
        self._rows = result.rows

    def _make(self, row: list[m.Value]) -> Any:
        values = tuple(row)
        return values if self.row_factory is None else self.row_factory(self, values)
