"""Listening sockets that speak TLS and plaintext on one port, told apart by the first byte.

Theory of operation
-------------------
Every port of a member (client/replication, HTTP) and of the arbiter is a
:class:`Listener`. A new connection is paused before asyncio reads a single
byte from it; the listener waits (at most the handshake timeout) until the
peer has sent something and *peeks* at it without consuming it:

- ``0x16`` is a TLS handshake record (a ClientHello). When the process has a
  ``[tls]`` section the connection is upgraded with ``loop.start_tls`` and
  handed to the real protocol only after the handshake succeeded: the peer's
  certificate, if it sent one, is verified against the mirror's CA. A failed
  handshake (another CA, an expired certificate, a timeout) is logged and
  reported with the peer's address and the reason.
- Anything else is plaintext. With ``tls.require`` it is refused *cleanly*:
  the peer gets one message in its own protocol saying that this port needs
  TLS (a litemirror ``Error`` frame, or an HTTP 400) before the connection is
  closed, so an operator sees why instead of a reset. Without ``require`` it
  is served as before.

Peeking works on a duplicate of the socket's descriptor while asyncio's own
reader is paused, so the bytes are still there for TLS or the protocol.

A refused plaintext peer must be able to *read* the refusal: closing a
socket whose peer's bytes were never read makes the kernel answer with a
reset, and a reset can overtake the message. So the listener sends the
message, half-closes (FIN), and reads and discards what the peer still
sends — at most ``DRAIN_BYTES`` for at most ``DRAIN_S`` — until the peer
closes, and only then closes.

Admission (:mod:`litemirror.security.admission`): with an ``Admission``,
every accepted connection takes a ticket before a byte is read (or is
closed at once when its class is full), keeps it while it lives, and gives
it back when it closes; a connection that presents a member certificate in
its TLS handshake becomes a member's link there and then. Every
``SWEEP_S`` the listener closes the connections whose time in their class
is up (no Hello within the handshake timeout; a connection without a login
past its time).

Authorisation by certificate (which member a certificate may act as) is not
decided here: the listener only makes the verified identity available
(:func:`identity_of`); the session that reads the first message knows which
member the peer claims to be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from litemirror.errors import ProtocolError
from litemirror.protocol import messages as m
from litemirror.protocol.framing import encode
from litemirror.protocol.handshake import classify_first_bytes
from litemirror.security.admission import Admission, Kind, Refused
from litemirror.security.certs import PeerIdentity, peer_identity
from litemirror.security.descriptors import LISTEN_BACKLOG

log = logging.getLogger("litemirror.tls")

#: Called with (peer address, reason) when a connection is refused at the TLS layer.
RefusalHook = Callable[[str, str], None]
#: Called with (peer address, refusal) when a connection is refused or closed by a limit.
LimitHook = Callable[[str, Refused], None]
#: What a refused plaintext peer may still send before we close, and for how long.
DRAIN_BYTES = 64 * 1024
DRAIN_S = 2.0
#: How often connections past their time are looked for.
SWEEP_S = 0.25


def identity_of(writer: asyncio.StreamWriter) -> PeerIdentity | None:
    """The peer certificate's (CN, OU), or None on plaintext or without a certificate."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    try:
        return peer_identity(ssl_object)
    except ProtocolError:
        return None


def error_frame(message: str, kind: str = "OperationalError") -> bytes:
    """One litemirror ``Error`` frame: what a refused peer of the member or arbiter port reads."""
    return encode(m.Error(id=0, kind=kind, message=message))


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)


def _host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def ticket_of(writer: asyncio.StreamWriter) -> int | None:
    """The admission ticket of a connection served by a :class:`Listener` with admission."""
    proto = writer.transport.get_protocol()
    return proto.ticket if isinstance(proto, _Tracked) else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "TLS handshake not finished within the handshake timeout"
    return f"TLS handshake failed: {exc}"


async def _peek(transport: asyncio.BaseTransport, size: int) -> bytes:
    """Wait until the peer sent something; return up to ``size`` bytes without consuming them."""
    loop = asyncio.get_running_loop()
    raw = transport.get_extra_info("socket")
    fd = os.dup(raw.fileno())
    sock = socket.socket(fileno=fd)
    try:
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            return sock.recv(size, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return await _peek(transport, size)
        except OSError:
            return b""
    finally:
        sock.close()


@dataclass
class Listener:
    """Accepts connections for ``factory`` (an asyncio protocol factory) with optional TLS."""

    factory: Callable[[], asyncio.BaseProtocol]
    context: ssl.SSLContext | None
    require: bool
    handshake_timeout: float
    #: Bytes sent to a plaintext peer refused because TLS is required.
    plaintext_refusal: bytes = b""
    #: Bytes sent to a peer that sent nothing within the handshake timeout.
    silence_refusal: bytes = b""
    on_refused: RefusalHook | None = None
    what: str = "port"
    #: Connection caps and deadlines; None: every connection is accepted.
    admission: Admission | None = None
    #: The HTTP port: every connection is in the HTTP class.
    http: bool = False
    on_limit: LimitHook | None = None
    #: Open connections by ticket (the accepted transport), to close on eviction or expiry.
    _open: dict[int, asyncio.Transport] = field(default_factory=dict)

    def protocol(self) -> asyncio.BaseProtocol:
        return _Sniffer(self)

    def refuse(self, peer: str, reason: str) -> None:
        log.warning("%s: connection from %s refused: %s", self.what, peer, reason)
        if self.on_refused is not None:
            try:
                self.on_refused(peer, reason)
            except Exception:
                log.exception("refusal hook failed")

    def limited(self, peer: str, refusal: Refused) -> None:
        """Report a connection refused or closed by a limit (the hook rate-limits events)."""
        if self.on_limit is None:
            log.warning("%s: connection from %s refused: %s", self.what, peer, refusal.message)
            return
        try:
            self.on_limit(peer, refusal)
        except Exception:
            log.exception("limit hook failed")

    # ---------------------------------------------------------- admission

    def enter(self, transport: asyncio.Transport) -> tuple[bool, int | None]:
        """Take a ticket for a new connection: (admitted, its ticket; None without admission).

        A connection refused by a limit is closed here, before a byte is read.
        """
        if self.admission is None:
            return True, None
        now = asyncio.get_running_loop().time()
        verdict = self.admission.arrive(_host(transport), now, http=self.http)
        if isinstance(verdict, Refused):
            self.limited(_peer(transport), verdict)
            transport.abort()
            return False, None
        for old in verdict.evicted:
            victim = self._open.pop(old, None)
            if victim is not None:
                self.limited(
                    _peer(victim),
                    Refused(
                        "limits.max_handshakes",
                        "closed while still in its handshake: all "
                        f"{self.admission.caps.max_handshakes} places for connections in their "
                        "handshake were taken and it was the oldest (limits.max_handshakes)",
                    ),
                )
                victim.abort()
        self._open[verdict.ticket] = transport
        return True, verdict.ticket

    def release(self, ticket: int | None) -> None:
        if ticket is None or self.admission is None:
            return
        self._open.pop(ticket, None)
        self.admission.leave(ticket)

    def _member_certificate(self, ticket: int | None, ssl_object: ssl.SSLObject | None) -> None:
        """A connection whose certificate says "member" is a member's link from now on."""
        if ticket is None or self.admission is None or self.http or ssl_object is None:
            return
        try:
            ident = peer_identity(ssl_object)
        except ProtocolError:
            return
        if ident.ou == "member":
            self.admission.become(ticket, Kind.MEMBER, asyncio.get_running_loop().time())

    async def _sweep(self, server: asyncio.AbstractServer) -> None:
        assert self.admission is not None
        loop = asyncio.get_running_loop()
        caps = self.admission.caps
        why = {
            Kind.HANDSHAKE: Refused(
                "limits.handshake_timeout_s",
                f"closed: no Hello within {caps.handshake_timeout:g} s of connecting "
                "(limits.handshake_timeout_s)",
            ),
            Kind.ANONYMOUS: Refused(
                "limits.anonymous_timeout_s",
                f"closed: a connection without a login is kept {caps.anonymous_timeout:g} s "
                "(limits.anonymous_timeout_s)",
            ),
        }
        while server.is_serving():
            await asyncio.sleep(SWEEP_S)
            for ticket, kind in self.admission.expired(loop.time()):
                transport = self._open.pop(ticket, None)
                if transport is None or transport.is_closing():
                    continue
                self.limited(_peer(transport), why[kind])
                transport.abort()

    # ------------------------------------------------------------ admitting

    async def admit(self, transport: asyncio.Transport, ticket: int | None) -> None:
        """Decide what a new connection is and hand it on; the ticket is given back if not."""
        handed = False
        try:
            handed = await self._admit(transport, ticket)
        finally:
            if not handed:
                self.release(ticket)

    async def _admit(self, transport: asyncio.Transport, ticket: int | None) -> bool:
        loop = asyncio.get_running_loop()
        peer = _peer(transport)
        try:
            first = await asyncio.wait_for(_peek(transport, 8), self.handshake_timeout)
        except TimeoutError:
            log.info("%s: %s sent nothing within the handshake timeout; closed", self.what, peer)
            if self.silence_refusal:
                transport.write(self.silence_refusal)
            transport.close()
            return False
        if not first:
            transport.abort()
            return False
        if classify_first_bytes(first) == "tls":
            if self.context is None:
                self.refuse(peer, "the peer started TLS but this process has no [tls] section")
                transport.abort()
                return False
            proto = _Tracked(self.factory(), self, ticket)
            try:
                tls_transport = await loop.start_tls(
                    transport,
                    proto,
                    self.context,
                    server_side=True,
                    ssl_handshake_timeout=self.handshake_timeout,
                )
            except (OSError, TimeoutError, EOFError) as exc:
                self.refuse(peer, _reason(exc))
                transport.abort()
                return False
            if tls_transport is None:  # the peer went away during the handshake
                transport.abort()
                return False
            self._member_certificate(ticket, tls_transport.get_extra_info("ssl_object"))
            proto.connection_made(tls_transport)
            return True
        if self.context is not None and self.require:
            self.refuse(peer, "plaintext connection on a port that requires TLS (tls.require)")
            transport.set_protocol(_Drain(transport, self, ticket))
            if self.plaintext_refusal:
                transport.write(self.plaintext_refusal)
            if transport.can_write_eof():
                transport.write_eof()
            transport.resume_reading()
            return True  # the drain gives the ticket back
        tracked = _Tracked(self.factory(), self, ticket)
        transport.set_protocol(tracked)
        tracked.connection_made(transport)
        transport.resume_reading()
        return True

    async def start(
        self, host: str, port: int, backlog: int = LISTEN_BACKLOG
    ) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self.protocol, host, port, backlog=backlog)
        if self.admission is not None:
            task = loop.create_task(self._sweep(server))
            _sweepers.add(task)
            task.add_done_callback(_sweepers.discard)
        return server


#: Running sweeper tasks (a reference keeps them from being collected).
_sweepers: set[asyncio.Task[None]] = set()


class _Sniffer(asyncio.Protocol):
    """Holds a new connection, paused, until :meth:`Listener.admit` decides what it is."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.task: asyncio.Task[None] | None = None
        self.ticket: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Paused before asyncio's first read: nothing is consumed until we decide.
        transport.pause_reading()
        admitted, self.ticket = self.listener.enter(transport)
        if not admitted:
            return
        self.task = asyncio.get_running_loop().create_task(self._admit(transport))

    async def _admit(self, transport: asyncio.Transport) -> None:
        try:
            await self.listener.admit(transport, self.ticket)
        except OSError as exc:
            # Out of descriptors (or kernel memory) while looking at the connection:
            # reported like a limit, once a minute per host, never one line per attempt.
            self.listener.limited(
                _peer(transport),
                Refused("descriptors", f"closed: {exc.strerror or exc} while admitting it"),
            )
            transport.abort()
        except Exception:
            log.exception("%s: admitting a connection failed", self.listener.what)
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.listener.release(self.ticket)


class Wrapper(asyncio.Protocol):
    """A protocol that hands every call on to ``inner`` (subclasses add to some)."""

    def __init__(self, inner: asyncio.BaseProtocol) -> None:
        self.inner = cast(asyncio.Protocol, inner)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)


class _Tracked(Wrapper):
    """The protocol serving an admitted connection, giving its ticket back when it closes."""

    def __init__(self, inner: asyncio.BaseProtocol, listener: Listener, ticket: int | None) -> None:
        super().__init__(inner)
        self.listener = listener
        self.ticket = ticket

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.release(self.ticket)
        self.inner.connection_lost(exc)


class _Drain(asyncio.Protocol):
    """After a refusal: discard what the peer still sends until it closes, within bounds.

    The refusal and our FIN are already on their way; closing only once the
    peer's bytes are read (or the bounds are hit) keeps the kernel from
    answering with a reset that could destroy the refusal before it is read.
    """

    def __init__(
        self, transport: asyncio.Transport, listener: Listener, ticket: int | None
    ) -> None:
        self.transport = transport
        self.listener = listener
        self.ticket = ticket
        self.left = DRAIN_BYTES
        self.timer = asyncio.get_running_loop().call_later(DRAIN_S, transport.close)

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # the peer read the refusal and closed: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        self.listener.release(self.ticket)


class _StreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, told that it runs over TLS when the listener upgraded it.

    asyncio decides "over TLS" from the transport it was made with; here the
    TLS transport arrives later, so the EOF handling is set from the transport
    actually given (TLS cannot half-close).
    """

    _tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tls = transport.get_extra_info("ssl_object") is not None
        super().connection_made(transport)

    def eof_received(self) -> bool:
        keep_open = super().eof_received()
        return bool(keep_open) and not self._tls


def stream_factory(
    callback: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object], limit: int
) -> Callable[[], asyncio.BaseProtocol]:
    """A protocol factory serving ``callback`` with streams, like ``asyncio.start_server``."""

    def make() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit)
        return _StreamProtocol(reader, callback)  # type: ignore[arg-type]

    return make
