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
from dataclasses import dataclass

from litemirror.errors import ProtocolError
from litemirror.protocol import messages as m
from litemirror.protocol.framing import encode
from litemirror.protocol.handshake import classify_first_bytes
from litemirror.security.certs import PeerIdentity, peer_identity

log = logging.getLogger("litemirror.tls")

#: Called with (peer address, reason) when a connection is refused at the TLS layer.
RefusalHook = Callable[[str, str], None]


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

    def protocol(self) -> asyncio.BaseProtocol:
        return _Sniffer(self)

    def refuse(self, peer: str, reason: str) -> None:
        log.warning("%s: connection from %s refused: %s", self.what, peer, reason)
        if self.on_refused is not None:
            try:
                self.on_refused(peer, reason)
            except Exception:
                log.exception("refusal hook failed")

    async def admit(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        peer = _peer(transport)
        try:
            first = await asyncio.wait_for(_peek(transport, 8), self.handshake_timeout)
        except TimeoutError:
            log.info("%s: %s sent nothing within the handshake timeout; closed", self.what, peer)
            if self.silence_refusal:
                transport.write(self.silence_refusal)
            transport.close()
            return
        if not first:
            transport.abort()
            return
        if classify_first_bytes(first) == "tls":
            if self.context is None:
                self.refuse(peer, "the peer started TLS but this process has no [tls] section")
                transport.abort()
                return
            proto = self.factory()
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
                return
            if tls_transport is None:  # the peer went away during the handshake
                transport.abort()
                return
            proto.connection_made(tls_transport)
            return
        if self.context is not None and self.require:
            self.refuse(peer, "plaintext connection on a port that requires TLS (tls.require)")
            if self.plaintext_refusal:
                transport.write(self.plaintext_refusal)
            transport.close()
            return
        proto = self.factory()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        transport.resume_reading()

    async def start(self, host: str, port: int, backlog: int = 100) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(self.protocol, host, port, backlog=backlog)


class _Sniffer(asyncio.Protocol):
    """Holds a new connection, paused, until :meth:`Listener.admit` decides what it is."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Paused before asyncio's first read: nothing is consumed until we decide.
        transport.pause_reading()
        self.task = asyncio.get_running_loop().create_task(self._admit(transport))

    async def _admit(self, transport: asyncio.Transport) -> None:
        try:
            await self.listener.admit(transport)
        except Exception:
            log.exception("%s: admitting a connection failed", self.listener.what)
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


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
