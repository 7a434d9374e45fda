"""The arbiter process: a third party that stores who holds the newest epoch.

Theory of operation
-------------------
All decisions are made by the pure :class:`~litemirror.failover.Arbiter`;
this module only feeds it. Each failover member keeps one session
(``ArbHello``, then one ``ArbBeat`` per heartbeat, see
:mod:`litemirror.protocol.arbiter`). Every beat is handled by
``Arbiter.handle(member, request)``; when the stored record changed, it is
written to ``DIR/arbiter.json`` durably (temp file, fsync, rename, fsync of
the directory) *before* the answer leaves. The write is done synchronously on
the event loop on purpose: the compare-and-set, the write and the answer are
then one atomic step, and no other session can be answered with a record
that is not yet on disk. Records change only at failovers, so this costs
nothing in the steady state.

Contact is what the failover rules call "the arbiter still sees the
primary": a member is in contact from its first beat until it is silent for
the QoS timeout or its session closes (``Arbiter.lost``); it is back with its
next beat. Nothing but the record and the mirror name is stored: after a
restart (``Arbiter.restarted``) no member is in contact until it beats again.

A session is refused (``Error``, then closed; the process stays up) for a
wrong protocol version, another mirror's name (the name is given with
``--mirror`` or learned from the first member, and remembered), a member
that already has a live session (a silent one is replaced), a request made
in another member's name, a malformed or oversized frame, or no hello within
the handshake timeout. A member resends a pending request with every beat;
an outcome is logged once, repeats of the same outcome only at debug level.

A control connection (``Hello`` with an empty database, then
``StatusRequest``) is answered like a member's, so ``litemirror status`` and
:func:`litemirror.client.control.call` work against the arbiter too.

Connections are admitted as on a member (:mod:`litemirror.security.admission`,
the ``[limits]`` of the config given with ``--config``, else the defaults):
control connections are anonymous — few, and closed
``limits.anonymous_timeout_s`` after their hello — while a failover member's
session (its certificate, or its authorised hello) is never refused by a cap,
so a flood of strangers cannot keep a member from the arbiter. Refusals are
events in ``DIR/events.jsonl`` (one per peer host and reason a minute, with
the count held back) and counted in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from litemirror.config import Config, parse_address
from litemirror.config import load as load_config
from litemirror.durable import write_atomic
from litemirror.errors import ConfigError, Error, ProtocolError, UnavailableError
from litemirror.failover import Arbiter, ArbiterRecord
from litemirror.protocol import arbiter as wire
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode, read_message
from litemirror.protocol.handshake import check_opening
from litemirror.security.admission import Kind
from litemirror.security.descriptors import ARBITER_BACKLOG
from litemirror.security.tls import member_authorisation
from litemirror.security.tls import reload as reload_tls
from litemirror.security.tls import setup as tls_setup
from litemirror.server.net.limits import LimitGuard
from litemirror.server.net.listener import Listener, error_frame, stream_factory
from litemirror.server.ops.event_log import EventLog

log = logging.getLogger("litemirror.arbiter")

STATE_FILE = "arbiter.json"
HANDSHAKE_TIMEOUT = 5.0
#: How long a new session waits for the previous session of the same member
#: to finish closing: a member that reconnects closes the old socket first,
#: but the two events may reach us in either order.
REPLACE_GRACE = 0.3


class Stored(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The content of ``arbiter.json``."""

    version: int = 1
    mirror: str | None = None
    epoch: int = 0
    holder: str | None = None
    backup_active: bool = False
    handover_to: str | None = None


def load_state(data_dir: Path) -> tuple[ArbiterRecord, str | None]:
    """The stored record and mirror name (a fresh record when there is no file yet)."""
    path = data_dir / STATE_FILE
    try:
        s = msgspec.json.decode(path.read_bytes(), type=Stored)
    except FileNotFoundError:
        return ArbiterRecord(), None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(
            f"the arbiter state {path} cannot be read ({exc}); the arbiter will not start "
            "without it, since it would forget which member holds the newest epoch. "
            "Restore the file from a backup"
        ) from exc
    return ArbiterRecord(s.epoch, s.holder, s.backup_active, s.handover_to), s.mirror


def save_state(data_dir: Path, record: ArbiterRecord, mirror: str | None) -> None:
    """Replace ``arbiter.json`` atomically and durably (raises OSError)."""
    body = msgspec.json.encode(
        Stored(
            mirror=mirror,
            epoch=record.epoch,
            holder=record.holder,
            backup_active=record.backup_active,
            handover_to=record.handover_to,
        )
    )
    write_atomic(data_dir / STATE_FILE, body + b"\n")


def describe_record(rec: ArbiterRecord) -> str:
    if rec.holder is None:
        return f"epoch {rec.epoch}, no holder yet"
    backup = "backup active" if rec.backup_active else "backup inactive"
    hand = f", handing over to {rec.handover_to}" if rec.handover_to else ""
    return f"epoch {rec.epoch} held by {rec.holder} ({backup}{hand})"


class _LimitReached(Exception):
    """A connection refused by a limit (already reported); answer it with ``error``."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(eq=False)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    decoder: FrameDecoder[Any] = field(
        default_factory=lambda: FrameDecoder(wire.ArbOpening, max_frame=wire.MAX_FRAME)
    )

    @property
    def peer(self) -> str:
        p = self.writer.get_extra_info("peername")
        return f"{p[0]}:{p[1]}" if isinstance(p, tuple) else str(p)

    async def next(self) -> Any:
        return await read_message(self.decoder, self.reader.read, 64 * 1024)

    def send(self, msg: msgspec.Struct) -> None:
        self.writer.write(encode(msg))

    def send_error(self, req_id: int, exc: Error) -> None:
        self.send(
            m.Error(
                id=req_id, kind=type(exc).__name__, message=exc.message, retryable=exc.retryable
            )
        )


@dataclass(eq=False)
class _Session:
    member: str
    conn: _Conn
    last_seen: float
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    #: The last outcome logged, so a resent request is not logged at every beat.
    last_said: str = ""


class ArbiterServer:
    def __init__(
        self,
        data_dir: Path,
        host: str,
        port: int,
        *,
        mirror: str | None = None,
        qos_timeout: float = 2.0,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        config: Config | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.host, self.port = host, port
        self.mirror = mirror
        self.qos_timeout = qos_timeout
        self.handshake_timeout = handshake_timeout
        #: The mirror config when started with --config: its [tls] section makes
        #: every connection TLS, and only its failover members' certificates may
        #: open member sessions.
        self.config = config
        self.tls = tls_setup(config, config.tls.arbiter_name) if config and config.tls else None
        self.state = Arbiter()
        self.sessions: dict[str, _Session] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock_fd: int | None = None
        self._stop = asyncio.Event()
        self.events = EventLog(data_dir / "events.jsonl", "arbiter")
        self.limits = LimitGuard(config, self.events, "the arbiter", databases=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Held for the life of the process: two arbiters on one data dir
        # would each grant epochs.
        self._lock_fd = os.open(self.data_dir / "arbiter.lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another arbiter is running with data dir {self.data_dir}; stop it first"
            ) from None
        record, stored_mirror = load_state(self.data_dir)
        if self.mirror is not None and stored_mirror not in (None, self.mirror):
            raise ConfigError(
                f"--mirror {self.mirror!r} does not match mirror {stored_mirror!r} stored in "
                f"{self.data_dir / STATE_FILE}; one arbiter data dir serves one mirror"
            )
        if self.mirror is None:
            self.mirror = stored_mirror
        elif stored_mirror is None:
            save_state(self.data_dir, record, self.mirror)
        # Only the record survives a restart; contact has to be re-established.
        self.state = Arbiter(record=record).restarted()
        self.limits.install(asyncio.get_running_loop())
        refusal = b""
        if self.tls is not None and self.tls.require:
            refusal = error_frame("the arbiter accepts only TLS connections (tls.require)")
        self._server = await Listener(
            stream_factory(self._on_connect, 64 * 1024),
            self.tls.server if self.tls is not None else None,
            self.tls is not None and self.tls.require,
            self.handshake_timeout,
            plaintext_refusal=refusal,
            silence_refusal=error_frame(
                f"no hello within the handshake timeout of {self.handshake_timeout:g} s",
                "ProtocolError",
            ),
            on_refused=self._tls_refused,
            what="arbiter",
            admission=self.limits.admission,
            on_limit=self.limits.refused,
        ).start(self.host, self.port, backlog=ARBITER_BACKLOG)
        self._spawn(self._watch())
        log.info(
            "arbiter of mirror %s listening on %s: %s; QoS timeout %d ms",
            self.mirror or "(not yet known)",
            self.address,
            describe_record(record),
            round(self.qos_timeout * 1000),
        )

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_tls)
        await self._stop.wait()
        log.info("arbiter shutting down: %s", describe_record(self.state.record))
        await self.close()

    def reload_tls(self) -> None:
        """SIGHUP: load the certificate, key and CA files again (certificate rotation)."""
        if self.tls is None or self.config is None or self.config.path is None:
            return
        try:
            new = load_config(self.config.path)
            reload_tls(self.tls, new, self.tls.tls.arbiter_name)
        except Error as exc:
            log.error("TLS reload refused, the old certificate stays in use: %s", exc.message)
            return
        log.info("TLS certificate, key and CA reloaded: new connections present the new one")

    async def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions.values()):
            s.conn.writer.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.events.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -------------------------------------------------------------- contact

    async def _watch(self) -> None:
        """Drop members silent for the QoS timeout from ``in_contact``."""
        loop = asyncio.get_running_loop()
        interval = min(max(self.qos_timeout / 10, 0.02), 0.25)
        flushed = loop.time()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            if now - flushed >= 1.0:
                flushed = now
                self.events.flush()
            for member in sorted(self.state.in_contact):
                s = self.sessions.get(member)
                if s is None:
                    self._lose(member, "it has no session")
                elif now - s.last_seen > self.qos_timeout:
                    self._lose(
                        member,
                        f"no beat for {(now - s.last_seen) * 1000:.0f} ms "
                        f"(QoS timeout {self.qos_timeout * 1000:.0f} ms)",
                    )

    def _lose(self, member: str, why: str) -> None:
        if member not in self.state.in_contact:
            return
        self.state = self.state.lost(member)
        log.warning("lost contact with %s: %s; %s", member, why, self._contact_sentence())

    def _contact_sentence(self) -> str:
        names = sorted(self.state.in_contact)
        return f"in contact with {', '.join(names)}" if names else "in contact with no member"

    # ---------------------------------------------------------- connections

    def _tls_refused(self, peer: str, reason: str) -> None:
        self.events.emit_limited(
            "tls_refused",
            ("tls", peer.rpartition(":")[0], reason),
            f"arbiter: connection with {peer} refused: {reason}",
            "warning",
            peer=peer,
        )

    def _admit(self, conn: _Conn, kind: Kind) -> None:
        """Count the connection as ``kind``; raises the refusal when a limit says no."""
        refused = self.limits.admit(conn.writer, None, kind)
        if refused is not None:
            raise _LimitReached(refused)  # already an event: connection_refused

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        try:
            try:
                first = await asyncio.wait_for(conn.next(), self.handshake_timeout)
            except TimeoutError:
                raise ProtocolError(
                    f"no hello within the handshake timeout of {self.handshake_timeout:g} s"
                ) from None
            if first is not None and (why := check_opening(first)) is not None:
                raise ProtocolError(why)
            if isinstance(first, m.Hello):
                self._admit(conn, Kind.ANONYMOUS)
                await self._control(conn, first)
            elif isinstance(first, wire.ArbHello):
                await self._member(conn, first)
        except _LimitReached as exc:
            conn.send_error(0, exc.error)
        except Error as exc:
            host = conn.peer.rpartition(":")[0]
            self.events.emit_limited(
                "arbiter_refused",
                ("refused", host, type(exc).__name__),
                f"arbiter: connection from {conn.peer} refused: {exc.message}",
                "warning",
                peer=conn.peer,
            )
            conn.send_error(0, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    async def _member(self, conn: _Conn, hello: wire.ArbHello) -> None:
        if hello.version != wire.ARB_VERSION:
            raise ProtocolError(
                f"member {hello.member} speaks arbiter protocol version {hello.version}, "
                f"this arbiter speaks version {wire.ARB_VERSION}; upgrade the older side"
            )
        if not hello.member or not hello.mirror:
            raise ProtocolError("the hello must name the mirror and the member")
        if self.config is not None:
            names = [x.name for x in self.config.failover_members]
            if hello.member not in names or hello.mirror != self.config.mirror.name:
                raise ProtocolError(
                    f"member {hello.member} of mirror {hello.mirror} is not a failover member "
                    f"of mirror {self.config.mirror.name} ({', '.join(names)})"
                )
            why = member_authorisation(
                conn.writer.get_extra_info("ssl_object"), hello.member, self.config
            )
            if why is not None:
                raise ProtocolError(f"refused as member {hello.member}: {why}")
        if self.mirror is None:
            try:
                save_state(self.data_dir, self.state.record, hello.mirror)
            except OSError as exc:
                raise UnavailableError(
                    f"the arbiter cannot store its state in {self.data_dir} ({exc}); "
                    "fix the disk and retry"
                ) from exc
            self.mirror = hello.mirror
            log.info("serving mirror %s, named by its member %s", self.mirror, hello.member)
        elif hello.mirror != self.mirror:
            raise ConfigError(
                f"member {hello.member} belongs to mirror {hello.mirror!r}, but this arbiter "
                f"serves mirror {self.mirror!r}; point the member at its own arbiter"
            )
        self._admit(conn, Kind.MEMBER)
        await self._replace_old_session(hello.member)
        loop = asyncio.get_running_loop()
        session = _Session(hello.member, conn, loop.time())
        self.sessions[hello.member] = session
        log.info("session of %s opened from %s", hello.member, conn.peer)
        conn.decoder.set_kind(wire.FromMember)
        try:
            while True:
                beat = await conn.next()
                if beat is None:
                    return
                session.last_seen = loop.time()
                self._beat(session, beat)
                await conn.writer.drain()
        finally:
            session.closed.set()
            if self.sessions.get(hello.member) is session:
                del self.sessions[hello.member]
                self._lose(hello.member, "its session closed")

    async def _replace_old_session(self, member: str) -> None:
        old = self.sessions.get(member)
        if old is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(old.closed.wait(), REPLACE_GRACE)
        if self.sessions.get(member) is not old:
            return
        silent = asyncio.get_running_loop().time() - old.last_seen
        if silent <= self.qos_timeout:
            raise UnavailableError(
                f"member {member} already has a live session from {old.conn.peer} "
                f"(last beat {silent * 1000:.0f} ms ago); is a second process using the "
                "same member name? Retry once the old session is silent"
            )
        log.warning(
            "replacing the session of %s from %s, silent for %.0f ms",
            member,
            old.conn.peer,
            silent * 1000,
        )
        del self.sessions[member]
        old.conn.writer.close()

    def _beat(self, session: _Session, beat: wire.ArbBeat) -> None:
        member = session.member
        req = wire.from_wire(beat.request) if beat.request is not None else None
        if req is not None and req.member != member:
            raise ProtocolError(
                f"the session of {member} sent a request in the name of {req.member}"
            )
        was_in = member in self.state.in_contact
        new, report = self.state.handle(member, req)
        if new.record != self.state.record:
            try:
                save_state(self.data_dir, new.record, self.mirror)
            except OSError as exc:
                raise UnavailableError(
                    f"the arbiter could not store its record in {self.data_dir} ({exc}), "
                    f"so {wire.describe(req) if req else 'the request'} was not granted; "
                    "fix the disk"
                ) from exc
        self.state = new
        if not was_in:
            log.info("%s is in contact; %s", member, self._contact_sentence())
        if req is not None:
            said = (
                f"refused {wire.describe(req)}: {report.refused}"
                if report.refused is not None
                else f"granted {wire.describe(req)}; now {describe_record(new.record)}"
            )
            if said != session.last_said:
                session.last_said = said
                log.log(logging.WARNING if report.refused else logging.INFO, "%s", said)
            else:
                log.debug("%s (again)", said)
        session.conn.send(wire.answer_of(beat.seq, report))

    # -------------------------------------------------------------- control

    async def _control(self, conn: _Conn, hello: m.Hello) -> None:
        if hello.version != m.PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {hello.version} is not supported by this arbiter "
                f"(it speaks version {m.PROTOCOL_VERSION}); upgrade the client"
            )
        if hello.database:
            raise UnavailableError(
                f"{self.address} is the arbiter of mirror {self.mirror}; it holds no "
                f"databases (asked for {hello.database!r}): connect to a member instead"
            )
        conn.send(
            m.Welcome(
                version=m.PROTOCOL_VERSION,
                mirror=self.mirror or "",
                member="arbiter",
                role="arbiter",
                epoch=self.state.record.epoch,
                lsn=0,
            )
        )
        conn.decoder.set_kind(m.ClientMessage)
        while True:
            await conn.writer.drain()
            msg = await conn.next()
            if msg is None:
                return
            if isinstance(msg, m.StatusRequest):
                conn.send(m.Ok(id=msg.id, info=self.status()))
            elif isinstance(msg, m.Ping):
                conn.send(m.Ok(id=msg.id))
            else:
                conn.send_error(
                    getattr(msg, "id", 0),
                    ProtocolError(
                        f"the arbiter answers only status and ping, not {type(msg).__name__}"
                    ),
                )

    def status(self) -> dict[str, Any]:
        rec = self.state.record
        now = asyncio.get_running_loop().time()
        return {
            "member": "arbiter",
            "role": "arbiter",
            "address": self.address,
            "mirror": self.mirror,
            "record": {
                "epoch": rec.epoch,
                "holder": rec.holder,
                "backup_active": rec.backup_active,
                "handover_to": rec.handover_to,
            },
            "in_contact": sorted(self.state.in_contact),
            "sessions": {
                name: {"peer": s.conn.peer, "last_beat_ms": round((now - s.last_seen) * 1000)}
                for name, s in sorted(self.sessions.items())
            },
            "qos_timeout_ms": round(self.qos_timeout * 1000),
            "state": describe_record(rec),
            "admission": self.limits.status(),
        }


async def run_arbiter(
    listen: str | None,
    data_dir: Path,
    mirror: str | None = None,
    qos_timeout_ms: int | None = None,
    config: Config | None = None,
) -> int:
    """Run the arbiter until SIGTERM/SIGINT. Returns the process exit code.

    With ``config`` (the mirror's config file), the listen address, mirror
    name and QoS timeout default to the config's, and its [tls] applies.
    """
    try:
        if listen is None:
            if config is None or config.mirror.arbiter is None:
                raise ConfigError("--listen: give HOST:PORT, or a --config with mirror.arbiter")
            listen = config.mirror.arbiter
        host, port = parse_address("--listen", listen)
        if config is not None:
            if mirror is not None and mirror != config.mirror.name:
                raise ConfigError(
                    f"--mirror {mirror!r} is not the config's mirror {config.mirror.name!r}"
                )
            mirror = config.mirror.name
            if qos_timeout_ms is None:
                qos_timeout_ms = config.mirror.qos_timeout_ms
        if qos_timeout_ms is None:
            qos_timeout_ms = 2000
        if qos_timeout_ms < 100:
            raise ConfigError(f"--qos-timeout-ms: {qos_timeout_ms} is below the minimum 100")
        server = ArbiterServer(
            data_dir, host, port, mirror=mirror, qos_timeout=qos_timeout_ms / 1000, config=config
        )
        await server.start()
    except Error as exc:
        log.error("cannot start the arbiter: %s", exc.message)
        return 2
    except OSError as exc:
        log.error("cannot start the arbiter on %s with data dir %s: %s", listen, data_dir, exc)
        return 2
    await server.serve_forever()
    return 0
