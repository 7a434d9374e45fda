"""A failover member's side of its session with the arbiter.

Theory of operation
-------------------
The member calls :meth:`ArbiterClient.exchange` once per heartbeat interval,
with the request its failover agent wants sent (``View.request``) or None.
Each call sends one ``ArbBeat`` on a persistent connection and waits for the
``ArbAnswer`` with the same ``seq``; the answer is returned as the
:class:`~litemirror.failover.events.ArbiterReport` the agent is fed.

The connection is opened on first use (from ``source`` when given, so the
arbiter sees the member's own address) and dropped after any failure; the
next call opens a new one. Dropping it on a timeout matters: beats queued on
a half-dead connection must not reach the arbiter later, when the member
has moved on. A call raises :class:`ArbiterUnreachable` as soon as it is
known that no answer will come (connection refused or closed, session
refused) and at the latest after ``qos_timeout``; the member turns that into
``ArbiterLost`` by its own rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litemirror.config import parse_address
from litemirror.errors import ProtocolError, UnavailableError
from litemirror.failover.events import ArbiterReport, ArbiterRequest
from litemirror.protocol import arbiter as wire
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode, read_message

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class ArbiterUnreachable(UnavailableError):
    """The arbiter did not answer (down, partitioned, or it refused the session)."""


class ArbiterClient:
    def __init__(
        self,
        address: str,
        mirror: str,
        member: str,
        qos_timeout: float,
        source: tuple[str, int] | None = None,
        opener: Opener | None = None,
    ) -> None:
        self.address = address
        self.host, self.port = parse_address("mirror.arbiter", address)
        self.mirror = mirror
        self.member = member
        self.qos_timeout = qos_timeout
        self.source = source
        #: Opens the connection (TLS and the arbiter's identity checked by the
        #: member's dialler); default: plain TCP from ``source``.
        self.opener = opener
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder: FrameDecoder[Any] = FrameDecoder(wire.FromArbiter, max_frame=wire.MAX_FRAME)
        self._seq = 0
        # exchange() is not reentrant: one beat in flight per connection.
        self._lock = asyncio.Lock()
        #: When the arbiter last answered (monotonic), and why the last exchange
        #: failed (None since it answered): what ``status`` says of the session.
        self.last_answer: float | None = None
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def session(self) -> dict[str, object]:
        """This member's session with the arbiter as ``status`` shows it."""
        return {
            "address": self.address,
            "connected": self.connected,
            "last_answer_ms": None
            if self.last_answer is None
            else round((time.monotonic() - self.last_answer) * 1000),
            "error": self.last_error,
        }

    async def exchange(self, request: ArbiterRequest | None = None) -> ArbiterReport:
        """Send one beat (carrying ``request``) and return the arbiter's answer.

        Raises :class:`ArbiterUnreachable` when no answer can be had within
        ``qos_timeout``.
        """
        async with self._lock:
            try:
                report = await self._timed_exchange(request)
            except ArbiterUnreachable as exc:
                self.last_error = exc.message
                raise
            self.last_answer, self.last_error = time.monotonic(), None
            return report

    async def _timed_exchange(self, request: ArbiterRequest | None) -> ArbiterReport:
        try:
            async with asyncio.timeout(self.qos_timeout):
                return await self._exchange(request)
        except TimeoutError as exc:
            self._drop()
            raise ArbiterUnreachable(
                f"the arbiter at {self.address} did not answer {self.member} within "
                f"{self.qos_timeout * 1000:.0f} ms; treating it as lost until it answers again"
            ) from exc
        except (OSError, ProtocolError) as exc:
            self._drop()
            why = exc.message if isinstance(exc, ProtocolError) else str(exc) or repr(exc)
            raise ArbiterUnreachable(
                f"cannot reach the arbiter at {self.address} from {self.member}: {why}"
            ) from exc
        except ArbiterUnreachable:
            self._drop()
            raise

    async def _exchange(self, request: ArbiterRequest | None) -> ArbiterReport:
        if self._writer is None:
            await self._connect()
        assert self._writer is not None
        self._seq += 1
        seq = self._seq
        beat = wire.ArbBeat(seq, wire.wire_request(request) if request is not None else None)
        self._writer.write(encode(beat))
        await self._writer.drain()
        while True:
            msg = await self._next()
            if isinstance(msg, m.Error):
                raise ArbiterUnreachable(
                    f"the arbiter at {self.address} refused {self.member}: {msg.message}"
                )
            if msg.seq == seq:
                return wire.to_report(msg)
            # An answer to an earlier beat: cannot happen on a fresh connection
            # (each failure drops it), skipped rather than trusted.

    async def _connect(self) -> None:
        if self.opener is not None:
            self._reader, self._writer = await self.opener()
        else:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, local_addr=self.source
            )
        self._decoder = FrameDecoder(wire.FromArbiter, max_frame=wire.MAX_FRAME)
        self._writer.write(
            encode(wire.ArbHello(version=wire.ARB_VERSION, mirror=self.mirror, member=self.member))
        )

    async def _next(self) -> wire.ArbAnswer | m.Error:
        assert self._reader is not None
        msg = await read_message(
            self._decoder,
            self._reader.read,
            64 * 1024,
            closed=lambda: ArbiterUnreachable(
                f"the arbiter at {self.address} closed the connection"
            ),
        )
        assert isinstance(msg, wire.ArbAnswer | m.Error)
        return msg

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def close(self) -> None:
        """Close the session; the arbiter drops this member from its contacts at once."""
        async with self._lock:
            writer = self._writer
            self._drop()
            if writer is not None:
                try:
                    await writer.wait_closed()
                except OSError:
                    pass
