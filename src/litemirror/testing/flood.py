"""Connection floods for the security tests: many peers holding connections as long as they can.

Theory of operation
-------------------
A :class:`Flood` runs its own asyncio loop in a daemon thread (like the
fault proxy) and keeps ``per_source`` connections open from each source
address (distinct loopback addresses look like distinct hosts). What a
connection does is a *mode*:

``anonymous``  TLS (when a CA is given) without a certificate, ``Hello``
               without credentials, then a ``Ping`` every ``ping_s`` —
               the cheapest way to hold a control connection.
``silent``     completes TCP (and TLS) and then sends nothing.
``slowloris``  HTTP(S): sends a request line, then one header line every
               ``ping_s``, never finishing the request.

A connection the target closes is counted (``closed``) and opened again
after ``retry_s``; one refused before it got in is counted in ``refused``.
Counters are read from the test's thread (ints: atomic enough here).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from litemirror.errors import ProtocolError
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode, read_message

Mode = Literal["anonymous", "silent", "slowloris"]


@dataclass
class Flood:
    host: str
    port: int
    sources: Sequence[str]
    per_source: int
    mode: Mode = "anonymous"
    ca: str | None = None
    ping_s: float = 1.0
    retry_s: float = 0.5
    #: Connections that got in (Welcome; for silent and slowloris: connected).
    admitted: int = 0
    #: Connections open right now.
    open: int = 0
    #: Connections refused at once (reset, or an Error answer to the Hello).
    refused: int = 0
    #: Admitted connections the target closed later.
    closed: int = 0
    #: How long each admitted connection lasted before the target closed it (s).
    lifetimes: list[float] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    def start(self) -> Flood:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stop = asyncio.Event()
            ready.set()
            loop.run_until_complete(self._main())
            loop.close()

        self._thread = threading.Thread(target=run, name="flood", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def wait_open(self, count: int, timeout: float = 60.0) -> None:
        """Wait until at least ``count`` connections are open at once."""
        deadline = time.monotonic() + timeout
        while self.open < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"flood: only {self.open} of {count} connections open; {self}")
            time.sleep(0.05)

    def wait_tried(self, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` connections were let in or refused (the flood is in full swing)."""
        deadline = time.monotonic() + timeout
        while self.admitted + self.refused < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"flood: only {self.admitted + self.refused} tried; {self}")
            time.sleep(0.05)

    def __str__(self) -> str:
        return (
            f"{self.mode} flood of {self.host}:{self.port}: open {self.open}, admitted "
            f"{self.admitted}, refused {self.refused}, closed {self.closed}"
        )

    # ------------------------------------------------------------ workers

    async def _main(self) -> None:
        assert self._stop is not None
        ctx: ssl.SSLContext | None = None
        if self.ca is not None:
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.check_hostname = False
        workers = [
            asyncio.create_task(self._worker(src, ctx))
            for src in self.sources
            for _ in range(self.per_source)
        ]
        await self._stop.wait()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self, source: str, ctx: ssl.SSLContext | None) -> None:
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, ssl=ctx, local_addr=(source, 0)),
                    10,
                )
            except (OSError, TimeoutError):
                self.refused += 1
                await asyncio.sleep(self.retry_s)
                continue
            try:
                await self._hold(reader, writer)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError):
                pass  # cut (mid-frame too) or refused: the next connection tries again
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(self.retry_s)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "anonymous":
            writer.write(encode(m.Hello(version=m.PROTOCOL_VERSION, database="")))
            decoder: FrameDecoder[m.ServerMessage] = FrameDecoder(m.ServerMessage)
            answer = await _frame(reader, decoder)
            if not isinstance(answer, m.Welcome):
                self.refused += 1
                return
        elif self.mode == "slowloris":
            writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        self.admitted += 1
        self.open += 1
        began = time.monotonic()
        try:
            n = 0
            while True:
                n += 1
                if self.mode == "anonymous":
                    writer.write(encode(m.Ping(id=n)))
                elif self.mode == "slowloris":
                    writer.write(f"X-{n}: {n}\r\n".encode())
                await writer.drain()
                # Wait for the next tick, noticing at once when the target closes.
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.ping_s)
                    if not data:
                        break
                except TimeoutError:
                    pass
        finally:
            self.open -= 1
            self.closed += 1
            self.lifetimes.append(time.monotonic() - began)


async def _frame(reader: asyncio.StreamReader, decoder: FrameDecoder[m.ServerMessage]) -> object:
    async def read(n: int) -> bytes:
        return await asyncio.wait_for(reader.read(n), 10)

    return await read_message(decoder, read, 65536)
