"""One client connection: handshake, then requests answered in order.

Theory of operation
-------------------
The connection opens with ``Hello``; the member answers ``Welcome`` or an
``Error`` and closes (wrong protocol version, unknown database, a write
connection to a member that is not primary). After that each request is
answered completely before the next one is read, so a client may pipeline
but answers never interleave.

Outside a transaction, a statement that SQLite says is read-only runs on a
reader connection; anything else is a one-shot write committed through the
group commit. ``Begin`` (or ``Execute`` with ``begin=True``) queues an
interactive transaction on the database's writer; the session then feeds it
commands until ``Commit``/``Rollback``. A client that disconnects in the
middle of a transaction has it rolled back.

``Snapshot`` answers with a consistent copy of the database in chunks
(:mod:`.snapshot`). Answers carry the newer optional fields (rows changed,
extended error codes) only for a driver that announced it understands them
in ``Hello.client`` (see :mod:`litemirror.protocol.messages`).

Reading and answering
---------------------
After the handshake a reader task reads frames all the time, also while a
request runs, so the session sees an ``Interrupt`` for the running request
(which stops its statement: :mod:`.statements`) and notices at once when the
client goes away (its running statement stops too). Other requests are
queued for the main loop in their order, which answers them one by one:
the one-answer-per-request order never changes, and ``Interrupt`` is never
answered itself.

What a frame may cost is checked before it is read: its length and its
kind (from its first bytes, :func:`litemirror.protocol.large.peek_tag`)
against the limit for that kind and for the session's role — a read-only
session may not send a large statement or parameter list at all. A frame
larger than :data:`INLINE_DECODE_BYTES` is decoded on a worker thread, an
``Execute`` piece by piece (:mod:`litemirror.protocol.large`), so no request
holds the event loop, which carries the heartbeats, for more than a moment.
Every statement runs under the session's time limit (``[statements]``,
lowered by the connection's ``statement_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apsw

from litemirror.engine import policy
from litemirror.engine.capture import ExecResult
from litemirror.errors import (
    Error,
    FrameTooLargeError,
    NotPrimaryError,
    OperationalError,
    PermissionDeniedError,
    ProgrammingError,
    ProtocolError,
    TransactionAbortedError,
    UnavailableError,
)
from litemirror.protocol import large
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode, read_body, read_message
from litemirror.protocol.handshake import MAX_OPENING_FRAME, check_opening
from litemirror.protocol.peer import PeerHello
from litemirror.protocol.replication import ReplHello
from litemirror.security.certs import PeerIdentity
from litemirror.security.tls import member_authorisation
from litemirror.server.front.ports import SessionContext
from litemirror.server.front.users import OPEN, Principal, allows
from litemirror.server.net.listener import identity_of
from litemirror.server.role import Role
from litemirror.server.storage import snapshot
from litemirror.server.storage.database import ACK_LEVELS, Database
from litemirror.server.storage.jobs import TxnCommand, TxnJob
from litemirror.server.storage.reads import looks_like_query
from litemirror.server.storage.statements import StatementGuard, Stop, session_limit
from litemirror.server.stream.seeding import chunks

log = logging.getLogger("litemirror.session")

#: Frames up to this size are decoded on the event loop (a few milliseconds
#: at worst); larger ones on a worker thread.
INLINE_DECODE_BYTES = 16 * 1024
#: Largest admin request and largest other control request (ping, begin,
#: commit, snapshot, interrupt): they carry a few names and numbers.
ADMIN_REQUEST_MAX = 16 * 1024
CONTROL_REQUEST_MAX = 4 * 1024
#: Requests read ahead of the one being answered (a pipelining client);
#: beyond this the reader waits, so a client cannot make us buffer more.
MAX_READ_AHEAD = 8
#: What the reader hands the main loop: a request (with the parameter sets
#: of a large executemany), an error that ends the session, or None at EOF.
_Item = tuple[m.ClientMessage, large.ParamSets | None] | Error | None


def _gone() -> ConnectionError:
    """The reader's word for the end of the client's stream (see ``_read_requests``)."""
    return ConnectionError("the client closed the connection")


class ClientSession:
    """One connection; ``ctx`` is what every session of the member shares (see .ports)."""

    def __init__(
        self, ctx: SessionContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        # Until the peer has said who it is, a frame holds one small opening
        # message: a stranger cannot make us buffer max_frame_bytes.
        self.decoder: FrameDecoder[Any] = FrameDecoder(
            m.OpeningMessage, max_frame=min(MAX_OPENING_FRAME, ctx.config().limits.max_frame_bytes)
        )
        #: The verified certificate's (CN, OU) when the connection is TLS and the
        #: peer presented one; None otherwise.
        self.identity: PeerIdentity | None = identity_of(writer)
        self.db: Database | None = None
        self.read_only = False
        self.txn: TxnJob | None = None
        #: Who the client logged in as (everything allowed while auth.require is off).
        self.principal: Principal = OPEN
        #: Optional answer fields the driver understands (from its Hello).
        self.features: frozenset[str] = frozenset()
        #: Time limit of this session's statements in seconds (0: none).
        self.limit = 0.0
        #: Requests read and not yet answered, oldest first (see the docstring).
        self._items: deque[_Item] = deque()
        self._item_ready: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        #: When the request being waited for times out (inf: no limit now).
        self._idle_deadline = math.inf
        self._idle_timer: asyncio.TimerHandle | None = None
        #: The request being answered and its guard (None between requests).
        self._running: tuple[int, StatementGuard] | None = None

    # ------------------------------------------------------------- framing

    async def _next(self) -> Any:
        return await read_message(self.decoder, self.reader.read, 256 * 1024)

    def _send(self, msg: m.Message) -> None:
        self.writer.write(encode(msg))

    def _send_error(self, req_id: int, exc: Error) -> None:
        codes = "errorcodes" in self.features
        self._send(
            m.Error(
                id=req_id,
                kind=type(exc).__name__,
                message=exc.message,
                sqlite_code=exc.sqlite_code,
                retryable=exc.retryable,
                primary=exc.primary,
                in_transaction=self.txn is not None,
                changes=exc.changes if "changes" in self.features else 0,
                # Set, as in sqlite3, only on errors that came from SQLite.
                sqlite_errorcode=getattr(exc, "sqlite_errorcode", None) if codes else None,
                sqlite_errorname=getattr(exc, "sqlite_errorname", None) if codes else None,
            )
        )

    # ----------------------------------------------------------------- run

    async def run(self) -> None:
        try:
            try:
                hello = await asyncio.wait_for(
                    self._next(), self.ctx.config().limits.handshake_timeout_s
                )
            except TimeoutError:
                log.info("client %s: no Hello within the handshake timeout; closed", self.peer)
                return
            if hello is None:
                return
            self.ctx.limits.hello(self.writer)  # a slowed-down login is not cut
            why = check_opening(hello)
            if why is not None:
                log.warning("client %s refused: %s", self.peer, why)
                self._send_error(0, ProtocolError(why))
                return
            if isinstance(hello, PeerHello | ReplHello) and not self._member_authorised(
                hello.member
            ):
                return
            if isinstance(hello, PeerHello | ReplHello):
                self.ctx.limits.admit(self.writer, None)  # a member's link: never refused
            if isinstance(hello, PeerHello):
                if self.ctx.peer_inbound is not None:
                    await self.ctx.peer_inbound(self.reader, self.decoder, hello)
                return
            if isinstance(hello, ReplHello):
                try:
                    await self.ctx.serve_replica(
                        self.reader, self.writer, self.decoder, hello, self.peer
                    )
                except Error as exc:
                    self._send_error(0, exc)
                return
            self.decoder.set_kind(m.ClientMessage)
            if not await self._handshake(hello):
                return
            self.decoder.set_kind(m.ClientMessage, self.ctx.config().limits.max_frame_bytes)
            self.decoder.set_admission(self._admit, large.PEEK_BYTES)
            reading = asyncio.get_running_loop().create_task(self._read_requests())
            try:
                await self._answer_requests()
            finally:
                reading.cancel()
                if self._idle_timer is not None:
                    self._idle_timer.cancel()
        except ProtocolError as exc:
            log.warning("client %s: %s", self.peer, exc.message)
            self._send_error(0, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self._abandon_txn()
            if self.db is not None:
                self.db.sessions -= 1
            try:
                await self.writer.drain()
            except ConnectionError:
                pass
            self.writer.close()

    async def _answer_requests(self) -> None:
        """Answer the requests the reader queued, one at a time, in order."""
        idle = self.ctx.config().limits.idle_timeout_s or None
        while True:
            try:
                item = await self._take(None if self.txn else idle)
            except TimeoutError:
                # Closed without a word: an unasked-for frame would be read as
                # the answer to the client's next request. The driver sees the
                # close before it sends and reconnects.
                log.info("client %s: idle for %g s; closed", self.peer, idle)
                return
            if item is None:
                return
            if isinstance(item, Error):
                raise item
            msg, sets = item
            await self._dispatch(msg, sets)
            await self.writer.drain()

    async def _take(self, timeout: float | None) -> _Item:
        if not self._items:
            loop = asyncio.get_running_loop()
            self._item_ready = loop.create_future()
            if timeout is not None:
                # One timer per session, re-armed only when it fires early (a
                # timer per request costs a heap push and a cancel each time).
                self._idle_deadline = loop.time() + timeout
                if self._idle_timer is None:
                    self._idle_timer = loop.call_at(self._idle_deadline, self._idle_check)
            try:
                await self._item_ready
            finally:
                self._item_ready = None
                self._idle_deadline = math.inf
        item = self._items.popleft()
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        return item

    def _idle_check(self) -> None:
        """The idle timer: time the waiting request out, or wait on to its deadline."""
        self._idle_timer = None
        waiting = self._item_ready
        if waiting is None or waiting.done() or self._idle_deadline == math.inf:
            return  # not waiting now: the next wait arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._idle_deadline:
            waiting.set_exception(TimeoutError())
        else:
            self._idle_timer = loop.call_at(self._idle_deadline, self._idle_check)

    async def _put(self, item: _Item) -> None:
        self._items.append(item)
        if self._item_ready is not None and not self._item_ready.done():
            self._item_ready.set_result(None)
        if len(self._items) >= MAX_READ_AHEAD:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    async def _read_requests(self) -> None:
        """The reader task: frames in, requests queued; Interrupt and EOF acted on at once."""
        try:
            while True:
                # Any end of the stream is the client gone (handled below, where a
                # torn last frame is told apart): the same exit as a broken connection.
                body = await read_body(self.decoder, self.reader.read, 256 * 1024, closed=_gone)
                if len(body) <= INLINE_DECODE_BYTES:
                    msg: Any = self.decoder.decode(body)
                    sets = None
                else:
                    msg, sets = await self._decode_large(body)
                if isinstance(msg, m.Interrupt):
                    self._interrupt(msg.id)
                    continue
                await self._put((msg, sets))
        except Error as exc:
            await self._put(exc)  # answered after the requests before it; then closed
            return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        # The client went away: a statement still running for it stops.
        if self._running is not None:
            self._running[1].cancel(Stop.GONE)
        torn = self.decoder.buffered
        await self._put(
            ProtocolError("connection closed in the middle of a frame") if torn else None
        )

    async def _decode_large(self, body: bytes) -> tuple[Any, large.ParamSets | None]:
        """Decode a large frame on a worker thread (an Execute in pieces, see .large)."""
        loop = asyncio.get_running_loop()
        pool = self.ctx.decode_executor
        if large.peek_tag(body[: large.PEEK_BYTES]) == "exec":
            return await loop.run_in_executor(pool, large.decode_execute, body)
        return await loop.run_in_executor(pool, self.decoder.decode, body), None

    def _admit(self, length: int, prefix: bytes) -> None:
        """Refuse a frame larger than its kind and the session's role allow, before reading it."""
        tag = large.peek_tag(prefix)
        if tag in ("exec", "script"):
            if self.read_only or not allows(self.principal.role, "write"):
                limit = self.ctx.config().statements.read_request_max_bytes
                why = "a read-only session (statements.read_request_max_bytes)"
            else:
                limit = self.ctx.config().limits.max_frame_bytes
                why = "a request (limits.max_frame_bytes)"
        elif tag == "admin":
            limit, why = ADMIN_REQUEST_MAX, "an admin request"
        else:
            limit, why = CONTROL_REQUEST_MAX, f"a {tag or 'request of an unknown kind'}"
        if length > limit:
            raise FrameTooLargeError(
                f"request of {length} bytes is larger than the {limit} bytes allowed for {why}; "
                "nothing of it was read or run, and the connection is closed"
            )

    def _interrupt(self, req: int) -> None:
        """An Interrupt frame: stop request ``req``'s statement if it is the one running."""
        running = self._running
        if running is not None and running[0] == req:
            running[1].cancel(Stop.CLIENT)

    def _member_authorised(self, claimed: str) -> bool:
        """With [tls], only the certificate authorised for ``claimed`` may act as that member."""
        why = member_authorisation(
            self.writer.get_extra_info("ssl_object"), claimed, self.ctx.config()
        )
        if why is None:
            return True
        self.ctx.tls_refused(self.peer, why)
        self._send_error(0, ProtocolError(f"refused as member {claimed}: {why}"))
        return False

    async def _handshake(self, hello: m.ClientMessage) -> bool:
        if not isinstance(hello, m.Hello):
            self._send_error(
                0, ProtocolError(f"expected Hello as the first message, got {type(hello).__name__}")
            )
            return False
        if hello.version != m.PROTOCOL_VERSION:
            self._send_error(
                0,
                ProtocolError(
                    f"protocol version {hello.version} is not supported by this member "
                    f"(it speaks version {m.PROTOCOL_VERSION}); upgrade the driver"
                ),
            )
            return False
        ctx = self.ctx
        try:
            self.principal = await ctx.users.login(
                hello.user,
                hello.password,
                self.identity,
                self.peer,
                hello.database,
                self.writer.get_extra_info("ssl_object"),
            )
        except Error as exc:
            self._send_error(0, exc)
            return False
        self.features = m.client_features(hello.client)
        refused = ctx.limits.admit(self.writer, self.principal)
        if refused is not None:
            self._send_error(0, refused)
            return False
        configured = ctx.config().statements.timeout_for(self.principal.user, self.principal.role)
        asked = hello.statement_timeout_ms / 1000 if hello.statement_timeout_ms else None
        self.limit = session_limit(configured, asked)
        if not hello.database:
            # A control connection (status, admin): no database attached.
            self.read_only = True
            self._welcome()
            return True
        now = ctx.role()
        if not hello.read_only and now.role is not Role.PRIMARY:
            self._send_error(
                0,
                NotPrimaryError(
                    f"member {ctx.me.name} is {now.role}, not the primary; connect to the primary "
                    "or use read_only=true",
                    primary=ctx.primary_address(),
                ),
            )
            return False
        if not (now.primary and now.writable) and not ctx.databases.exists(hello.database):
            # A member still catching up may not have a new database yet.
            self._send_error(
                0,
                UnavailableError(
                    f"member {ctx.me.name} ({now.role}, {now.state}) does not hold database "
                    f"{hello.database!r} yet; it may still be catching up",
                    primary=ctx.primary_address(),
                ),
            )
            return False
        try:
            self.db = await ctx.databases.get(hello.database)
        except Error as exc:
            self._send_error(0, exc)
            return False
        self.db.sessions += 1
        ctx.session_opened(self.peer.rpartition(":")[0].strip("[]"))
        self.read_only = hello.read_only
        self._welcome()
        return True

    def _welcome(self) -> None:
        ctx = self.ctx
        now = ctx.role()
        self._send(
            m.Welcome(
                version=m.PROTOCOL_VERSION,
                mirror=ctx.config().mirror.name,
                member=ctx.me.name,
                role=now.role,
                epoch=now.epoch,
                lsn=ctx.last_lsn(),
                primary=ctx.primary_address(),
                features=list(m.MEMBER_FEATURES) if "interrupt" in self.features else [],
            )
        )

    async def _dispatch(self, msg: m.ClientMessage, sets: large.ParamSets | None = None) -> None:
        req = getattr(msg, "id", 0)
        try:
            if isinstance(msg, m.Execute):
                if sets is None:
                    try:
                        m.check_params(msg.params, msg.many)
                    except ValueError as exc:
                        raise ProtocolError(f"malformed request: {exc}") from None
                with self._guarded(req, msg.sql) as guard:
                    await self._execute(msg, msg.many if sets is None else sets, guard)
            elif isinstance(msg, m.Begin):
                await self._begin()
                self._send(m.Ok(id=req, in_transaction=True))
            elif isinstance(msg, m.Commit):
                t0 = time.monotonic()
                lsn = await self._end("commit", msg.ack)
                if lsn:
                    self.ctx.observe_commit(time.monotonic() - t0)
                self._send(m.Ok(id=req, lsn=lsn))
            elif isinstance(msg, m.Rollback):
                await self._end("rollback")
                self._send(m.Ok(id=req))
            elif isinstance(msg, m.Script):
                if self.txn is not None:
                    raise ProgrammingError(
                        "executescript() inside an open transaction; commit or roll back first"
                    )
                self._may_write("a script")
                self._check_writable()
                if self.db is None:
                    raise ProgrammingError("this connection has no database; name one in the URL")
                with self._guarded(req, msg.sql) as guard:
                    res, lsn = await self.db.write("script", msg.sql, guard=guard)
                self._send_result(req, res, lsn)
            elif isinstance(msg, m.Snapshot):
                await self._snapshot(msg)
            elif isinstance(msg, m.Ping):
                self._send(m.Ok(id=req, in_transaction=self.txn is not None))
            elif isinstance(msg, m.StatusRequest):
                self._send(m.Ok(id=req, info=self.ctx.status.status(self.principal)))
            elif isinstance(msg, m.AdminRequest):
                before = self.principal
                self.principal = await self.ctx.users.authorize_action(
                    self.principal, msg.action, msg.args, self.peer
                )
                if self.principal != before:  # logged in for the action: not anonymous now
                    refused = self.ctx.limits.admit(self.writer, self.principal)
                    if refused is not None:
                        raise refused
                info = await self.ctx.admin.run(msg.action, msg.args, actor=self.principal)
                self._send(m.Ok(id=req, info=info))
            else:
                raise ProtocolError(f"unexpected message {type(msg).__name__} after the handshake")
        except Error as exc:
            self._send_error(req, exc)

    @contextlib.contextmanager
    def _guarded(self, req: int, sql: str) -> Iterator[StatementGuard]:
        """Request ``req`` runs ``sql`` under a guard of its own (the session's time limit).

        While it runs, an Interrupt naming ``req``, or the client going away,
        stops it; afterwards a slow or stopped statement may make an event.
        """
        guard = StatementGuard(
            self.limit,
            shutdown=self.ctx.stopping,
            user=self.principal.user,
            database=self.db.name if self.db is not None else "",
            sql=sql,
        )
        self._running = (req, guard)
        try:
            yield guard
        finally:
            self._running = None
            self.ctx.statement_finished(guard)

    def _check_writable(self) -> None:
        me, now = self.ctx.me, self.ctx.role()
        if now.role is Role.PRIMARY and not now.writable:
            raise UnavailableError(
                f"primary {me.name} is {now.state} and does not commit now ({now.reason}); retry",
                primary=me.address,
            )
        if now.role is not Role.PRIMARY or not now.writable:
            raise NotPrimaryError(
                f"member {me.name} is {now.role} and read-only; send writes to the primary",
                primary=self.ctx.primary_address(),
            )

    def _may_write(self, what: str) -> None:
        """Refuse a change the logged-in user's role (or the system database) does not allow."""
        if self.read_only:
            if self.ctx.role().role is not Role.PRIMARY:
                self._check_writable()  # "not the primary; it is at ...", as before
            # sqlite3 says the same for a database opened with mode=ro.
            raise OperationalError(
                f"attempt to write a readonly database: this connection was opened with "
                f"read_only=true, so {what} is refused; open a connection without it to write",
                sqlite_code=8,  # SQLITE_READONLY
            )
        db = self.db.name if self.db is not None else None
        self.ctx.users.may_write(self.principal, db, self.peer, what)

    async def _wait_applied(self, min_lsn: int) -> None:
        """Read-your-writes: wait until this member has applied ``min_lsn``, or raise."""
        if min_lsn and self.txn is None:
            timeout = self.ctx.config().limits.read_wait_s
            if not await self.ctx.wait_applied(min_lsn, timeout):
                raise OperationalError(
                    f"member {self.ctx.me.name} has not applied LSN {min_lsn} within "
                    f"{timeout:g}s (it is at {self.ctx.applied_lsn()}); read from the primary "
                    "or retry",
                    retryable=True,
                    primary=self.ctx.primary_address(),
                )

    async def _snapshot(self, msg: m.Snapshot) -> None:
        """Send a consistent copy of the database in chunks (see :mod:`.snapshot`)."""
        if self.db is None:
            raise ProgrammingError("this connection has no database; name one in the URL")
        if self.txn is not None:
            raise ProgrammingError(
                "a copy of the database (backup(), iterdump(), serialize()) inside an open "
                "transaction would not hold its changes; commit or roll back first"
            )
        if not allows(self.principal.role, "read"):
            raise PermissionDeniedError(
                f"{self.principal.describe()} may not read database {self.db.name!r}; "
                "a copy needs the read role"
            )
        await self._wait_applied(msg.min_lsn)
        me, db = self.ctx.me, self.db
        try:
            path = snapshot.claim(me.data_dir / snapshot.FOLDER, db.path)
            try:
                await self._send_copy(msg.id, db.name, db.path, path)
            finally:
                # An unfinished chunk reader closes its file when it is dropped.
                snapshot.release(path)
        except ConnectionError:
            raise  # the client is gone (or stopped reading): end the session
        except (OSError, apsw.Error) as exc:
            raise OperationalError(
                f"could not copy database {db.name!r} on member {me.name}: {exc}; "
                "the copy was abandoned, nothing changed"
            ) from exc

    async def _send_copy(self, req: int, name: str, source: Path, path: Path) -> None:
        loop = asyncio.get_running_loop()
        executor = self.ctx.read_executor  # a copy is a long read
        lsn = await loop.run_in_executor(executor, snapshot.make_snapshot, source, path)
        parts = chunks(path)
        while (part := await loop.run_in_executor(executor, next, parts, None)) is not None:
            offset, data, last, size, digest = part
            if last:
                # Gone before the client has the end: nothing of it outlives the request.
                snapshot.release(path)
            self._send(
                m.FileChunk(
                    id=req, offset=offset, data=data, last=last, size=size, digest=digest, lsn=lsn
                )
            )
            try:
                await asyncio.wait_for(self.writer.drain(), snapshot.STALL_S)
            except TimeoutError:
                log.info(
                    "client %s: copy of %s not read for %g s; closed",
                    self.peer,
                    name,
                    snapshot.STALL_S,
                )
                raise ConnectionAbortedError("the client stopped reading its copy") from None

    async def _execute(
        self, msg: m.Execute, many: Iterable[Any] | None, guard: StatementGuard
    ) -> None:
        if self.db is None:
            raise ProgrammingError("this connection has no database; name one in the URL")
        await self._wait_applied(msg.min_lsn)
        if self.txn is None and not msg.begin:
            # Refused on the writer too; refused here before a reader could run them
            # (ATTACH would read any file the member can, BEGIN would pin a reader).
            refusal = policy.keyword_refusal(policy.first_keyword(msg.sql))
            if refusal is not None:
                raise refusal
            query = many is None and looks_like_query(msg.sql)
            if not query and not allows(self.principal.role, "write"):
                self._may_write("executemany()" if many is not None else "a statement that writes")
            if self.read_only or query:
                res = await self.db.read(msg.sql, msg.params, guard)
                if res is not None:
                    self._send_result(msg.id, res, 0)
                    return
            self._may_write("a statement that writes")
            self._check_writable()
            t0 = time.monotonic()
            if many is not None:
                res, lsn = await self.db.write("many", msg.sql, many=many, guard=guard)
            else:
                res, lsn = await self.db.write("exec", msg.sql, msg.params, guard=guard)
            if lsn:
                self.ctx.observe_commit(time.monotonic() - t0)
            self._send_result(msg.id, res, lsn)
            return
        if self.txn is None:
            # begin=True: the driver opens a transaction before a DML statement.
            self._may_write("a statement that writes")
            await self._begin()
        txn = self.txn
        assert txn is not None and self.db is not None
        kind = "many" if many is not None else "exec"
        try:
            res = await self.db.txn_execute(txn, kind, msg.sql, msg.params, many, guard)
        finally:
            if txn.finished:
                self.txn = None
        if txn.finished:
            # Rolled back while this statement ran (the member stopped writing):
            # its result must not reach the client as if the transaction went on.
            raise TransactionAbortedError(txn.abort_reason or "the transaction was rolled back")
        self._send_result(msg.id, res, 0)

    async def _begin(self) -> None:
        if self.txn is not None:
            raise ProgrammingError("cannot start a transaction within a transaction")
        self._may_write("a transaction (BEGIN)")
        self._check_writable()
        if self.db is None:
            raise ProgrammingError("this connection has no database; name one in the URL")
        self.txn = await self.db.begin()

    async def _txn_call(self, cmd: TxnCommand) -> Any:
        txn = self.txn
        assert txn is not None
        if txn.finished:
            self.txn = None
            raise TransactionAbortedError(txn.abort_reason or "the transaction was rolled back")
        cmd.future = asyncio.get_running_loop().create_future()
        txn.commands.put_nowait(cmd)
        try:
            return await cmd.future
        finally:
            if txn.finished:
                self.txn = None

    async def _end(self, kind: str, ack: str | None = None) -> int:
        if self.txn is None:
            return 0  # like sqlite3: commit/rollback without a transaction does nothing
        if ack is not None and ack not in ACK_LEVELS:
            raise ProgrammingError(f"ack level {ack!r} is not one of {', '.join(ACK_LEVELS)}")
        result = await self._txn_call(TxnCommand(kind=kind, ack=ack))
        self.txn = None
        return int(result or 0)

    async def _abandon_txn(self) -> None:
        if self.txn is not None and not self.txn.finished:
            try:
                await self._txn_call(TxnCommand(kind="rollback"))
            except Error:
                pass
        self.txn = None

    def _send_result(self, req: int, res: ExecResult, lsn: int) -> None:
        cols = [m.Column(name=n, decltype=t) for n, t in res.columns] if res.columns else None
        rows = [list(r) for r in res.rows]
        chunk = self.ctx.config().limits.result_chunk_rows
        in_txn = self.txn is not None
        changes = res.changes if "changes" in self.features else 0
        if len(rows) <= chunk:
            self._send(
                m.Result(
                    id=req,
                    columns=cols,
                    rows=rows,
                    rowcount=res.rowcount,
                    lastrowid=res.lastrowid,
                    lsn=lsn,
                    in_transaction=in_txn,
                    changes=changes,
                )
            )
            return
        for start in range(0, len(rows), chunk):
            last = start + chunk >= len(rows)
            self._send(
                m.Result(
                    id=req,
                    columns=cols if start == 0 else None,
                    rows=rows[start : start + chunk],
                    rowcount=res.rowcount,
                    lastrowid=res.lastrowid,
                    lsn=lsn,
                    in_transaction=in_txn,
                    done=last,
                    changes=changes if last else 0,
                )
            )
