"""A fault-injecting TCP proxy for fault trials, controlled from the harness.

Theory of operation
-------------------
The proxy runs its own asyncio loop in a daemon thread. Each *route* is one
listening address in front of one member (``upstream``). Every accepted
connection is looked up by its *source IP*: members connect to each other from
their own loopback address, so a rule keyed by source IP acts on one link
(``a -> b``) and leaves the others alone. ``"*"`` is the rule for any source
without its own.

A :class:`Rule` says what happens to a link:

``pass``       bytes flow (optionally delayed per direction, bandwidth-capped);
``drop``       new connections are reset at once; existing ones are not touched;
``blackhole``  new connections are accepted, and nothing flows on new or
               existing connections, in either direction, until the rule
               changes. Bytes are *held*, never discarded: a partition stalls a
               TCP stream, it cannot lose its middle, and a proxy that threw
               bytes away would test framing errors instead of partitions.

:meth:`FaultProxy.cut` resets existing connections (RST, via ``SO_LINGER 0``),
which is what a peer sees when the other side's host dies or a NAT forgets.

Delay is applied per chunk read, in order (a chunk is written no earlier than
``delay`` after it was read), so a slow link keeps the stream intact. Bandwidth
is a sleep of ``len/bytes_per_s`` after each write.

Control calls (:meth:`set_rule`, :meth:`cut`, :meth:`heal`) are thread-safe and
take effect before they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

Mode = Literal["pass", "drop", "blackhole"]
ANY = "*"
_CHUNK = 64 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    mode: Mode = "pass"
    #: Seconds added to bytes going to the member (``up``) and coming back (``down``).
    delay_up_s: float = 0.0
    delay_down_s: float = 0.0
    #: Bytes per second in each direction; 0 means unlimited.
    bytes_per_s: int = 0


PASS = Rule()


@dataclass(eq=False)
class _Conn:
    route: str
    source: str
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class _Route:
    name: str
    upstream: tuple[str, int]
    server: asyncio.Server
    rules: dict[str, Rule] = field(default_factory=dict)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST so the peer learns at once, as after a crash."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Routes, rules and connections; see the module docstring."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="proxy")
        self._thread.start()
        self._routes: dict[str, _Route] = {}
        self._conns: set[_Conn] = set()
        # Replaced (and the old one set) on every rule change: stalled pumps wake up.
        self._changed = asyncio.Event()
        self.connections_total = 0

    # ------------------------------------------------------------- control

    def _call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def add_route(self, name: str, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        """Listen on ``listen`` and forward to ``upstream`` (both ``(host, port)``)."""

        async def start() -> None:
            server = await asyncio.start_server(
                lambda r, w: self._accept(name, r, w), listen[0], listen[1], reuse_address=True
            )
            self._routes[name] = _Route(name, upstream, server)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def set_rule(self, route: str, source: str, rule: Rule) -> None:
        """Apply ``rule`` to connections to ``route`` from ``source`` (an IP or ``"*"``)."""

        def apply() -> None:
            self._routes[route].rules[source] = rule
            self._wake()

        self._call(apply)

    def cut(self, route: str | None = None, source: str | None = None) -> int:
        """Reset existing connections (of a route, from a source); return how many."""

        def apply() -> int:
            hit = [
                c
                for c in self._conns
                if (route is None or c.route == route) and (source is None or c.source == source)
            ]
            for c in hit:
                self._close(c)
            return len(hit)

        return self._call(apply)

    def heal(self) -> None:
        """Every rule back to ``pass``; stalled connections flow again."""

        def apply() -> None:
            for r in self._routes.values():
                r.rules.clear()
            self._wake()

        self._call(apply)

    def close(self) -> None:
        def shut() -> None:
            for r in self._routes.values():
                r.server.close()
            for c in list(self._conns):
                self._close(c)
            for t in asyncio.all_tasks(self._loop):
                if t is not asyncio.current_task():
                    t.cancel()

        async def settle() -> None:
            await asyncio.sleep(0.05)  # let cancelled tasks finish before the loop stops

        with contextlib.suppress(Exception):
            self._call(shut)
            asyncio.run_coroutine_threadsafe(settle(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # ------------------------------------------------------------ the loop

    def _wake(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    def _rule(self, route: str, source: str) -> Rule:
        rules = self._routes[route].rules
        return rules.get(source) or rules.get(ANY) or PASS

    async def _open_gate(self, c: _Conn) -> Rule:
        """Wait while the link is blackholed; return the rule that lets bytes through."""
        while True:
            rule = self._rule(c.route, c.source)
            if rule.mode != "blackhole":
                return rule
            await self._changed.wait()

    def _close(self, c: _Conn) -> None:
        self._conns.discard(c)
        for w in (c.client, c.upstream):
            if w is not None:
                _reset(w)
        for t in c.tasks:
            t.cancel()

    async def _accept(
        self, route: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Cancelled only when the proxy closes: end quietly.
        with contextlib.suppress(asyncio.CancelledError):
            await self._link(route, reader, writer)

    async def _link(
        self, route: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) else "?"
        self.connections_total += 1
        if self._rule(route, source).mode == "drop":
            _reset(writer)
            return
        c = _Conn(route, source, writer)
        self._conns.add(c)
        try:
            await self._open_gate(c)
            host, port = self._routes[route].upstream
            # Connect from the client's own address, so the member logs and
            # checks the real peer, not the proxy.
            local = (source, 0) if source.startswith("127.") else None
            up_r, up_w = await asyncio.open_connection(host, port, local_addr=local)
        except (OSError, asyncio.CancelledError):
            self._close(c)
            return
        c.upstream = up_w
        if c not in self._conns:  # cut while connecting
            _reset(up_w)
            return
        c.tasks = [
            asyncio.create_task(self._pump(c, reader, up_w, up=True)),
            asyncio.create_task(self._pump(c, up_r, writer, up=False)),
        ]
        # A clean EOF is passed on as a half-close; the link ends when both
        # directions have ended (or at once when either fails).
        await asyncio.gather(*c.tasks, return_exceptions=True)
        if c in self._conns:
            self._conns.discard(c)
            for w in (writer, up_w):
                w.close()

    async def _pump(
        self, c: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, up: bool
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=64)
        sender = asyncio.create_task(self._send(c, queue, dst, up=up))
        try:
            while True:
                rule = await self._open_gate(c)
                data = await src.read(_CHUNK)
                if not data:
                    break
                delay = rule.delay_up_s if up else rule.delay_down_s
                await queue.put((time.monotonic() + delay, data))
            await queue.put((0.0, b""))
            await sender
        except (OSError, asyncio.CancelledError):
            sender.cancel()
            if c in self._conns:
                self._close(c)

    async def _send(
        self,
        c: _Conn,
        queue: asyncio.Queue[tuple[float, bytes]],
        dst: asyncio.StreamWriter,
        *,
        up: bool,
    ) -> None:
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                rule = await self._open_gate(c)
                dst.write(data)
                await dst.drain()
                if rule.bytes_per_s:
                    await asyncio.sleep(len(data) / rule.bytes_per_s)
        except OSError:
            if c in self._conns:
                self._close(c)
