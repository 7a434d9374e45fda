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

The rest of :mod:`sqlite3`'s connection is kept where it can mean the same
thing: ``row_factory`` (``sqlite3.Row`` gives :class:`~.row.Row` rows),
``text_factory``, ``total_changes`` (the member reports the rows each
statement changed, as SQLite counts them), ``backup()``, ``iterdump()`` and
``serialize()`` (from a consistent copy the member sends, see
:mod:`.copies`). What would need Python code inside the member's SQLite
(``create_function``, authorizers, progress handlers, extensions, ...)
raises :class:`~litemirror.errors.NotSupportedError` saying why. Connection
and cursor have fixed attributes (``__slots__``), so a misspelt or
unsupported attribute assignment fails as it does in :mod:`sqlite3` instead
of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from litemirror import errors
from litemirror.protocol import messages as m

from . import copies
from .row import Row
from .statements import adapt_params, is_dml, transaction_verb
from .transport import Transport, dial, wire_error
from .unsupported import NotOffered
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
    if isinstance(request, (m.Ping, m.StatusRequest, m.Begin, m.Rollback, m.Snapshot)):
        return True
    if isinstance(request, m.Execute):
        if request.begin:
            return True
        words = request.sql.lstrip(" \t\r\n(").split(None, 1)
        first = words[0].lower() if words else ""
        return first in _QUERY_WORDS or (first == "pragma" and "=" not in request.sql)
    return False


#: Called as ``row_factory(cursor, values)``; loosely typed so that ``sqlite3.Row`` fits.
RowFactory = Callable[..., Any]
TextFactory = Callable[[bytes], Any]
#: sqlite3.connect() arguments: which values mean what litemirror does anyway, and
#: why the others cannot be honoured.
_SQLITE3_ARGUMENTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "detect_types": (
        lambda v: v == 0,
        "converters are not applied to litemirror results; convert the values after fetching",
    ),
    "check_same_thread": (
        lambda v: v is False,
        "a litemirror connection may be used from any thread, one request at a time "
        "(as with check_same_thread=False)",
    ),
    "cached_statements": (
        lambda v: isinstance(v, int) and v >= 0,
        "it must be a number of statements (the member keeps its own statement cache)",
    ),
    "uri": (
        lambda v: v is False,
        "the database is always named by a litemirror:// URL",
    ),
}


def connect(url: str, **kwargs: Any) -> Connection:
    """Open a connection. Keyword arguments override options in the URL.

    Besides the URL options (read_only, target, connect_timeout, timeout, ack,
    retry, user, password) it takes ``isolation_level`` (default ``""``, like
    sqlite3; None means autocommit) and ``factory`` (a Connection subclass,
    like sqlite3's). sqlite3's other arguments are accepted with the values
    that mean what litemirror does anyway (``check_same_thread=False``,
    ``detect_types=0``, ``uri=False``, any ``cached_statements``) and refused
    with a reason otherwise.
    """
    isolation_level = kwargs.pop("isolation_level", "")
    factory = kwargs.pop("factory", Connection)
    for name, (harmless, why) in _SQLITE3_ARGUMENTS.items():
        if name in kwargs:
            value = kwargs.pop(name)
            if not harmless(value):
                raise errors.InterfaceError(f"connect({name}={value!r}) is not supported: {why}")
    info = parse_url(url)
    if kwargs:
        fields = {f.name for f in dataclasses.fields(info)} - {"hosts", "database"}
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise errors.InterfaceError(
                f"unknown connect() argument {unknown[0]!r}; known: "
                f"factory, isolation_level, {', '.join(sorted(fields))}"
            )
        info = dataclasses.replace(info, **kwargs)
    if not (isinstance(factory, type) and issubclass(factory, Connection)):
        raise TypeError(f"factory must be a subclass of litemirror.Connection, not {factory!r}")
    connection: Connection = factory(info, isolation_level=isolation_level)
    return connection


class Connection(NotOffered):
    """A DB-API connection to the mirror's primary (or any member when read-only)."""

    __slots__ = (
        "__weakref__",
        "_closed",
        "_features",
        "_in_transaction",
        "_info",
        "_isolation_level",
        "_last_lsn",
        "_lock",
        "_member",
        "_next_id",
        "_pending",
        "_role",
        "_total_changes",
        "_transport",
        "min_lsn",
        "row_factory",
        "text_factory",
    )

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
        self._info = info
        self._isolation_level = self._check_level(isolation_level)
        self._lock = threading.RLock()
        self._transport: Transport | None = None
        self._closed = False
        self._in_transaction = False
        self._next_id = 1
        self._member: str | None = None
        self._role: str | None = None
        self._last_lsn = 0
        self._total_changes = 0
        #: What the member accepts beyond protocol version 1 (Welcome.features).
        self._features: frozenset[str] = frozenset()
        #: The transport and id of the request waiting for its answer, for interrupt().
        self._pending: tuple[Transport, int] | None = None
        #: Reads wait until the member has applied this LSN (read-your-writes on a backup).
        self.min_lsn = 0
        #: Called as ``row_factory(cursor, values)`` for each row; ``sqlite3.Row`` works.
        self.row_factory: RowFactory | None = None
        #: Called with the UTF-8 bytes of each TEXT value (``str`` by default, as in sqlite3).
        self.text_factory: TextFactory | type[str] = str
        self._open()

    # ------------------------------------------------------------ properties

    @property
    def info(self) -> ConnectInfo:
        """What the connection was opened with (hosts, database, options)."""
        return self._info

    @property
    def member(self) -> str | None:
        """Name of the member this connection talks to."""
        return self._member

    @property
    def role(self) -> str | None:
        """That member's role when the connection was opened (primary, backup, ...)."""
        return self._role

    @property
    def last_lsn(self) -> int:
        """Highest LSN this connection committed (0 before its first write)."""
        return self._last_lsn

    @property
    def in_transaction(self) -> bool:
        self._check_open()
        return self._in_transaction

    @property
    def total_changes(self) -> int:
        """Rows inserted, changed or deleted through this connection, as sqlite3 counts them."""
        self._check_open()
        return self._total_changes

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

    def cursor(self, factory: Callable[[Connection], Cursor] | None = None) -> Cursor:
        self._check_open()
        cursor = Cursor(self) if factory is None else factory(self)
        if not isinstance(cursor, Cursor):
            raise TypeError(f"factory must return a cursor, not {type(cursor).__name__}")
        return cursor

    def execute(self, sql: str, parameters: object = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[object]) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str) -> Cursor:
        return self.cursor().executescript(sql_script)

    def commit(self) -> None:
        self._check_open()
        if self._in_transaction:
            self._request(lambda rid: m.Commit(rid, ack=self._info.ack))

    def rollback(self) -> None:
        self._check_open()
        if self._in_transaction:
            self._request(lambda rid: m.Rollback(rid))

    def close(self) -> None:
        # Like sqlite3: an open transaction is not committed; the member rolls
        # it back when the connection goes away.
        self._closed = True
        self._drop()

    def interrupt(self) -> None:
        """Stop the statement this connection is running on the member, as sqlite3's does.

        Meant to be called from another thread while one waits in
        ``execute()`` (or ``executemany()``, ``executescript()``): the member
        stops that statement (its changes are rolled back), and the waiting
        call raises ``OperationalError("interrupted")``. Nothing else is
        affected: no other connection's statement, and no later statement of
        this one. Without a statement running it does nothing. A member of a
        release before interrupt() makes it raise NotSupportedError.
        """
        self._check_open()
        if "interrupt" not in self._features:
            raise errors.NotSupportedError(
                f"interrupt() is not supported by member {self._member}: it runs an older "
                "litemirror release; bound statements with statement_timeout= in the URL"
            )
        pending = self._pending
        if pending is not None:
            transport, rid = pending
            transport.send_quietly(m.Interrupt(id=rid))

    def backup(
        self,
        target: object,
        *,
        pages: int = -1,
        progress: copies.Progress | None = None,
        name: str = "main",
        sleep: float = 0.250,
    ) -> None:
        """Copy the database, as of one instant, into a local sqlite3 or apsw connection.

        The member takes a consistent copy from a read snapshot (committed
        transactions only, so not inside a transaction of this connection)
        and sends it; ``pages``, ``progress`` and ``sleep`` then apply to the
        local copy into ``target`` as in :meth:`sqlite3.Connection.backup`.
        The member's bookkeeping table is not part of the copy.
        """
        self._check_open()
        if target is self:
            raise ValueError("target cannot be the same connection instance")
        copies.check_target(target)
        if not isinstance(pages, int) or not isinstance(sleep, int | float):
            raise TypeError("backup() pages must be an int and sleep a number of seconds")
        if progress is not None and not callable(progress):
            raise TypeError("progress argument must be a callable")
        copy = self._fetch_copy(name)
        try:
            copies.copy_into(copy.path, target, pages=pages, progress=progress, sleep=sleep)
        finally:
            copy.discard()

    def iterdump(self) -> Iterator[str]:
        """The database as SQL text, like :meth:`sqlite3.Connection.iterdump`, from one copy."""
        return copies.dump_lines(self._fetch_copy("main").path)

    def serialize(self, *, name: str = "main") -> bytes:
        """The bytes of a consistent copy of the database (without litemirror's own table)."""
        return copies.read_bytes(self._fetch_copy(name).path)

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
        session = dial(self._info, hint=hint)
        self._transport = session.transport
        self._member = session.welcome.member
        self._role = session.welcome.role
        self._features = frozenset(session.welcome.features)
        self._in_transaction = False
        return session.transport

    def _drop(self) -> None:
        transport, self._transport = self._transport, None
        self._in_transaction = False
        if transport is not None:
            transport.close()

    def _fetch_copy(self, name: str) -> copies.CopyFile:
        """Ask the member for a consistent copy of the database; a complete CopyFile."""
        self._check_open()
        if name != "main":
            raise copies.unknown_schema(name)
        if self._in_transaction:
            raise errors.ProgrammingError(
                "cannot copy the database inside an open transaction: the member copies "
                "committed data only, so the copy would miss this transaction's changes; "
                "commit or roll back first"
            )
        copy = copies.CopyFile()
        try:
            self._request(lambda rid: m.Snapshot(rid, min_lsn=self.min_lsn), sink=copy.write)
        except errors.ProtocolError as exc:
            copy.discard()
            # A member that does not know the request refuses it as a malformed
            # frame naming the message's tag.
            if "'snapshot'" in exc.message:
                raise errors.NotSupportedError(
                    f"member {self._member} cannot send a copy of the database (it runs an "
                    f"older litemirror release): {exc.message}"
                ) from exc
            raise
        except BaseException:
            copy.discard()
            raise
        if not copy.complete:
            copy.discard()
            raise errors.ProtocolError("the member ended the database copy before its last chunk")
        return copy

    def _request(
        self,
        build: Callable[[int], m.ClientMessage],
        sink: Callable[[m.FileChunk], None] | None = None,
    ) -> m.Result | m.Ok | m.FileChunk:
        """Send one request and return its final answer; see the module docstring.

        ``sink`` receives the chunks of a ``Snapshot`` answer; the last one is returned.
        """
        self._check_open()
        with self._lock:
            retries = self._info.retry
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
                    self._pending = (transport, self._next_id - 1)
                    try:
                        answer = self._exchange(transport, request, sink)
                    finally:
                        self._pending = None
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
                    self._total_changes += answer.changes
                    error = wire_error(answer)
                    if isinstance(error, errors.NotPrimaryError):
                        # This member was demoted under us: find the new primary next time.
                        self._drop()
                        hint = answer.primary
                    if retries > 0 and error.retryable and not was_in_transaction:
                        retries -= 1
                        time.sleep(_PAUSE)
                        continue
                    raise error
                if isinstance(answer, m.FileChunk):
                    return answer  # a copy: refused inside a transaction, changes nothing
                self._in_transaction = answer.in_transaction
                if isinstance(answer, m.Result):
                    self._total_changes += answer.changes
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
                if answer.lsn > self._last_lsn and not answer.in_transaction:
                    self._last_lsn = answer.lsn
                return answer

    def _exchange(
        self,
        transport: Transport,
        request: m.ClientMessage,
        sink: Callable[[m.FileChunk], None] | None,
    ) -> m.Result | m.Ok | m.Error | m.FileChunk:
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
            if isinstance(answer, m.FileChunk):
                if sink is None:
                    transport.close()
                    raise errors.ProtocolError(
                        f"member {transport.address} answered request {rid} with a chunk "
                        "of a database copy; connection closed"
                    )
                sink(answer)
                if answer.last:
                    return answer
                continue
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
    """A DB-API cursor. Rows are tuples unless a ``row_factory`` is set.

    ``description`` gives each column's declared type as its type code (None
    for an expression or an untyped column); it compares equal to the PEP 249 type objects
    (``litemirror.STRING``, ``NUMBER``, ...), see :mod:`.types`.
    """

    __slots__ = (
        "__weakref__",
        "_arraysize",
        "_closed",
        "_connection",
        "_description",
        "_lastrowid",
        "_pos",
        "_rowcount",
        "_rows",
        "row_factory",
    )

    def __init__(self, connection: Connection) -> None:
        if not isinstance(connection, Connection):
            raise TypeError(
                f"Cursor() argument must be a litemirror Connection, not "
                f"{type(connection).__name__}"
            )
        self._connection = connection
        self._arraysize = 1
        self.row_factory: RowFactory | None = connection.row_factory
        self._description: tuple[tuple[Any, ...], ...] | None = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._rows: list[list[m.Value]] = []
        self._pos = 0
        self._closed = False

    # ------------------------------------------------------------ attributes

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def description(self) -> tuple[tuple[Any, ...], ...] | None:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        if not isinstance(value, int):
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
        self._arraysize = value

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

    def _run(self, build: Callable[[int], m.ClientMessage]) -> m.Result | m.Ok | m.FileChunk:
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
        self._description = None
        self._rowcount = -1
        self._rows = []
        self._pos = 0

    def _take(self, result: m.Result | m.Ok | m.FileChunk, *, many: bool) -> None:
        if not isinstance(result, m.Result):
            return
        if result.columns:
            self._description = tuple(
                (c.name, c.decltype, None, None, None, None, None) for c in result.columns
            )
        self._rowcount = result.rowcount
        if result.lastrowid is not None and not many:
            self._lastrowid = result.lastrowid
        self._rows = result.rows

    def _make(self, row: list[m.Value]) -> Any:
        text_factory = self._connection.text_factory
        if text_factory is str:
            values = tuple(row)
        else:
            # sqlite3 hands a text_factory the UTF-8 bytes of each TEXT value.
            values = tuple(text_factory(v.encode()) if isinstance(v, str) else v for v in row)
        factory = self.row_factory
        if factory is None:
            return values
        if factory is sqlite3.Row:
            # sqlite3.Row only takes a sqlite3.Cursor; litemirror.Row behaves the same.
            return Row(self, values)
        return factory(self, values)
