"""Blocking frame transport to one member, and finding the member to talk to.

Theory of operation
-------------------
:class:`Transport` is a socket plus a sans-IO :class:`FrameDecoder`: ``send``
writes one frame, ``recv`` reads until the decoder yields one message. Any
socket error, timeout or EOF becomes :class:`ConnectionLostError` naming the
member, and the transport is closed: after a broken frame or a missed answer
the stream position cannot be trusted, so it is never reused.

One request is in flight at a time, but another thread may send an
``Interrupt`` while the first waits for its answer (``Connection.interrupt``):
writes are serialised by a lock, and on TLS so is every call into the TLS
object (OpenSSL does not allow one connection to be read and written by two
threads at once), the reading thread waiting for data with ``select`` before
it takes the lock.

:func:`dial` opens a session: it walks the host list in order, says ``Hello``
and reads the answer. A member that is not primary answers
``Error(NotPrimaryError, primary=addr)``; the address it names is tried next.
One pass that finds nobody is repeated with a growing pause until the connect
timeout is spent (a failover takes about two seconds, so a driver that keeps
trying for five survives one), then :class:`UnavailableError` lists what each
host said. A read-only connection accepts any member, but with
``target=primary`` it keeps looking for the primary first.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from litemirror import errors
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode

from .url import ConnectInfo, format_address, parse_address

_RECV_SIZE = 256 * 1024
_FIRST_PAUSE = 0.02
_MAX_PAUSE = 0.5
#: A member may redirect us to another; more hops than this means a loop.
_MAX_REDIRECTS = 3


class Transport:
    """One TCP (optionally TLS) connection to a member, carrying frames."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self._sock: socket.socket | None = sock
        self.address = address
        self._decoder: FrameDecoder[m.ServerMessage] = FrameDecoder(m.ServerMessage)
        #: Held to write, and on TLS to read too (see the module docstring).
        self._io = threading.Lock()
        self._tls = isinstance(sock, ssl.SSLSocket)

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Transport:
        address = format_address(host, port)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise errors.ConnectionLostError(
                f"cannot connect to member {address}: {exc}; check that it runs and is reachable"
            ) from exc
        try:
            # Requests are small and latency-bound: do not let Nagle hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
        except OSError as exc:
            sock.close()
            raise errors.ConnectionLostError(
                f"cannot set up the connection to member {address}: {exc}"
            ) from exc
        return cls(sock, address)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def peer_closed(self) -> bool:
        """True when the member already closed this connection (checked without waiting).

        A member that died while the connection sat idle leaves an end-of-file
        waiting to be read; noticing it before sending means a statement is never
        written into a dead connection, where its fate would be unknown.
        """
        sock = self._sock
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket):
                # The protocol is request/answer, so bytes on an idle TLS
                # connection can only be a close_notify alert (or an error sent
                # before closing): either way the member is going away.
                return not sock.pending()
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def settimeout(self, timeout: float | None) -> None:
        if self._sock is not None:
            self._sock.settimeout(timeout)

    def send(self, message: m.ClientMessage) -> None:
        sock = self._live()
        frame = encode(message)
        try:
            with self._io:
                sock.sendall(frame)
        except OSError as exc:
            self.close()
            raise errors.ConnectionLostError(
                f"connection to member {self.address} broke while sending: {exc}"
            ) from exc

    def send_quietly(self, message: m.ClientMessage) -> bool:
        """Send from another thread while a request waits (Interrupt); False if it failed.

        A failure is left to the thread that waits for its answer: it sees the
        broken connection itself.
        """
        sock = self._sock
        if sock is None:
            return False
        try:
            with self._io:
                sock.sendall(encode(message))
        except (OSError, ValueError):
            return False
        return True

    def _receive(self, sock: socket.socket) -> bytes:
        """One read from the socket; on TLS, never inside the TLS object while another writes."""
        if not self._tls:
            return sock.recv(_RECV_SIZE)
        assert isinstance(sock, ssl.SSLSocket)
        timeout = sock.gettimeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not sock.pending():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([sock], [], [], left)
            if readable:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("timed out")
        with self._io:
            return sock.recv(_RECV_SIZE)

    def recv(self) -> m.ServerMessage:
        # Not protocol.framing.read_message: that loop awaits an asyncio read,
        # and this driver is blocking (DB-API), with its own timeout and TLS
        # read lock in _receive, and it closes the socket on any failure.
        sock = self._live()
        while True:
            try:
                message = self._decoder.next_message()
            except errors.ProtocolError:
                self.close()
                raise
            if message is not None:
                return message
            try:
                data = self._receive(sock)
            except TimeoutError as exc:
                self.close()
                raise errors.ConnectionLostError(
                    f"member {self.address} did not answer within {sock.gettimeout()} s; "
                    "the connection was closed (raise timeout= in the URL for long statements)"
                ) from exc
            except OSError as exc:
                self.close()
                raise errors.ConnectionLostError(
                    f"connection to member {self.address} broke: {exc}"
                ) from exc
            if not data:
                self.close()
                raise errors.ConnectionLostError(f"member {self.address} closed the connection")
            try:
                self._decoder.feed(data)
            except errors.ProtocolError:
                self.close()
                raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise errors.ConnectionLostError(f"connection to member {self.address} is closed")
        return self._sock


def wire_error(answer: m.Error, message: str | None = None) -> errors.Error:
    """The exception a member's ``Error`` answer stands for (``message`` replaces its text)."""
    cls = errors.BY_NAME.get(answer.kind, errors.DatabaseError)
    return cls(
        answer.message if message is None else message,
        sqlite_code=answer.sqlite_code,
        sqlite_errorcode=answer.sqlite_errorcode,
        sqlite_errorname=answer.sqlite_errorname,
        primary=answer.primary,
        retryable=answer.retryable,
    )


@dataclass(frozen=True)
class Session:
    """An open transport and what the member said about itself."""

    transport: Transport
    welcome: m.Welcome


def dial(
    info: ConnectInfo,
    *,
    hint: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Session:
    """Find a member that serves ``info`` (the primary unless read-only) and say Hello.

    ``hint`` is an address believed to be the primary (from a NotPrimaryError);
    it is tried first.
    """
    if ssl_context is None:
        ssl_context = info.ssl_context()
    deadline = time.monotonic() + info.connect_timeout
    pause = _FIRST_PAUSE
    said: dict[str, str] = {}
    while True:
        refusals: list[errors.Error] = []
        session = _one_pass(info, hint, ssl_context, deadline, said, refusals)
        if session is not None:
            return session
        report = "; ".join(f"{addr}: {what}" for addr, what in said.items())
        if refusals:
            # A member refused for a reason that waiting will not change (unknown
            # database, bad credentials, protocol version): say so now.
            first = refusals[0]
            raise type(first)(
                first.message if len(said) == 1 else f"{first.message} (all members: {report})",
                sqlite_code=first.sqlite_code,
                primary=first.primary,
                retryable=first.retryable,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise errors.UnavailableError(
                f"no member could serve database {info.database!r} within "
                f"{info.connect_timeout} s ({report}); check that the mirror has a primary"
            )
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, _MAX_PAUSE)
        hint = None


def _one_pass(
    info: ConnectInfo,
    hint: str | None,
    ssl_context: ssl.SSLContext | None,
    deadline: float,
    said: dict[str, str],
    refusals: list[errors.Error],
) -> Session | None:
    """Try every host once (following redirects); return a session or None."""
    queue = list(info.hosts)
    if not info.redirect:
        # Behind a load balancer or a virtual IP: the members' own addresses
        # may be unreachable (or must not be used); keep to the URL's hosts.
        hint = None
    if hint:
        _push_front(queue, hint)
    tried: set[tuple[str, int]] = set()
    fallback: Session | None = None
    redirects = 0
    while queue:
        host, port = queue.pop(0)
        if (host, port) in tried:
            continue
        tried.add((host, port))
        address = format_address(host, port)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # A paused or partitioned member may accept TCP and then say nothing:
        # with other hosts to try, do not spend the whole budget on it.
        per_host = (
            info.connect_timeout
            if len(info.hosts) == 1
            else min(info.connect_timeout, max(0.5, min(2.0, info.connect_timeout / 2)))
        )
        session, redirect = _hello(
            info, host, port, min(remaining, per_host), ssl_context, said, refusals
        )
        if redirect is not None and info.redirect and redirects < _MAX_REDIRECTS:
            redirects += 1
            _push_front(queue, redirect)
        if session is None:
            continue
        role = session.welcome.role
        if role == "primary" or info.target == "any":
            if fallback is not None:
                fallback.transport.close()
            return session
        if info.read_only:
            # Usable, but keep looking for the primary the URL asked for.
            if fallback is None:
                fallback = session
            else:
                session.transport.close()
            continue
        session.transport.close()
        said[address] = f"is {role}, not primary"
        if session.welcome.primary and info.redirect and redirects < _MAX_REDIRECTS:
            redirects += 1
            _push_front(queue, session.welcome.primary)
    return fallback


def _push_front(queue: list[tuple[str, int]], address: str) -> None:
    """Queue an address a member named; ignore one we cannot parse (the list still works)."""
    try:
        queue.insert(0, parse_address(address))
    except errors.InterfaceError:
        pass


def _hello(
    info: ConnectInfo,
    host: str,
    port: int,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
    said: dict[str, str],
    refusals: list[errors.Error],
) -> tuple[Session | None, str | None]:
    """Say Hello to one member: (session or None, address it redirected us to)."""
    address = format_address(host, port)
    try:
        transport = Transport.connect(host, port, timeout, ssl_context)
    except errors.ConnectionLostError as exc:
        said[address] = str(exc.__cause__ or exc)
        return None, None
    timeout_ms = max(1, round(info.statement_timeout * 1000)) if info.statement_timeout else 0
    hello = m.Hello(
        version=m.PROTOCOL_VERSION,
        client=m.client_name("litemirror-python"),
        database=info.database,
        read_only=info.read_only,
        user=info.user,
        password=info.password,
        statement_timeout_ms=timeout_ms,
    )
    try:
        transport.settimeout(timeout)
        transport.send(hello)
        answer = transport.recv()
    except (errors.ConnectionLostError, errors.ProtocolError) as exc:
        transport.close()
        said[address] = str(exc)
        return None, None
    if isinstance(answer, m.Welcome):
        transport.settimeout(info.timeout)
        return Session(transport, answer), None
    transport.close()
    if isinstance(answer, m.Error):
        if answer.kind in ("NotPrimaryError", "UnavailableError") or answer.retryable:
            said[address] = f"{answer.kind}: {answer.message}"
            return None, answer.primary
        # Wrong database, bad credentials, unsupported version: asking this
        # member again will not help; another member may still serve us.
        said[address] = f"refused: {answer.message}"
        if "statement_timeout_ms" in answer.message:
            # A member of an older release refuses the field it does not know.
            refusals.append(
                errors.NotSupportedError(
                    f"member {address} runs an older litemirror release that cannot take a "
                    "time limit per connection; remove statement_timeout from the URL (the "
                    "member's own limits still apply)"
                )
            )
            return None, None
        refusals.append(
            wire_error(answer, f"member {address} refused the connection: {answer.message}")
        )
        return None, None
    said[address] = f"answered Hello with an unexpected {type(answer).__name__}"
    return None, None
