"""In-memory fakes for component tests: a stream pair, a clock, an event sink.

Components of the member take narrow things through their constructors
(:mod:`litemirror.server.ports`); a component test builds one with these
instead of sockets and processes. Nothing here patches anything: each fake
is a small real implementation of the interface it stands for.

- :func:`memory_stream_pair` gives two connected ends, each an
  ``asyncio.StreamReader`` and ``asyncio.StreamWriter`` exactly like those of
  ``asyncio.open_connection``: what one end writes, the other reads; closing
  one end is EOF at the other.
- :class:`FakeClock` is a monotonic clock the test moves by hand.
- :class:`EventRecorder` is an event sink that keeps what it was told.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


class _MemoryTransport(asyncio.Transport):
    """The write side of one end: bytes go straight into the other end's reader."""

    def __init__(self, peer: asyncio.StreamReader, extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._peer = peer
        self._closing = False
        self.protocol: asyncio.StreamReaderProtocol | None = None
        self.bytes_written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            raise ConnectionResetError("the memory stream is closed")
        self.bytes_written += len(data)
        self._peer.feed_data(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._peer.feed_eof()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._peer.feed_eof()
        if self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def is_reading(self) -> bool:
        return not self._closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


End = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def memory_stream_pair(
    a_name: str = "127.0.0.1:1", b_name: str = "127.0.0.1:2", limit: int = 2**16
) -> tuple[End, End]:
    """Two connected in-memory stream ends; must be called inside a running loop.

    ``a_name``/``b_name`` are what each end's ``get_extra_info("peername")``
    shows of the other (as ``(host, port)``).
    """
    loop = asyncio.get_running_loop()
    readers = (asyncio.StreamReader(limit=limit), asyncio.StreamReader(limit=limit))
    ends: list[End] = []
    for mine, theirs, peer in ((0, 1, b_name), (1, 0, a_name)):
        host, _, port = peer.rpartition(":")
        transport = _MemoryTransport(readers[theirs], {"peername": (host, int(port))})
        protocol = asyncio.StreamReaderProtocol(readers[mine])
        transport.protocol = protocol
        protocol.connection_made(transport)
        writer = asyncio.StreamWriter(transport, protocol, readers[mine], loop)
        ends.append((readers[mine], writer))
    return ends[0], ends[1]


class FakeClock:
    """A monotonic clock that moves only when the test says: ``clock()``, ``clock.advance(s)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Event:
    kind: str
    message: str
    severity: str
    data: dict[str, Any]


@dataclass
class EventRecorder:
    """An event sink (:class:`litemirror.server.ports.EventSink`) that keeps every event."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, kind: str, message: str, severity: str = "info", **data: Any) -> None:
        self.events.append(Event(kind, message, severity, data))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]
