"""Deadlines on the HTTP port: a request must arrive in time, whatever aiohttp version serves it.

Theory of operation
-------------------
aiohttp bounds the size of a request (line, header and body limits) but,
depending on its version, not the time it takes to arrive: a client that
trickles a header line every few seconds (slowloris), or connects and never
completes a request, holds its connection as long as it likes. Here each
connection gets a deadline, armed when it opens and again after each
response: the next request's headers must arrive within ``seconds``, or the
connection is closed. The deadline is lifted while a handler runs (the
middleware :func:`RequestDeadlines.middleware` tells the connection when a
request starts and ends), so a slow answer — a switchover waits for the
backup — is never cut. Inside a handler the body must also arrive within
``seconds`` (else 408 and the connection is closed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from litemirror.server.net.listener import Wrapper

log = logging.getLogger("litemirror.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Deadline(Wrapper):
    """aiohttp's protocol for one connection, closed when a request does not arrive in time."""

    def __init__(self, inner: asyncio.BaseProtocol, guard: RequestDeadlines) -> None:
        super().__init__(inner)
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: Requests being handled now (more than one when pipelined).
        self.busy = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.guard.by_handler[id(self.inner)] = self
        self.arm()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.guard.by_handler.pop(id(self.inner), None)
        super().connection_lost(exc)

    def arm(self) -> None:
        self.disarm()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.guard.seconds, self.expire)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def expire(self) -> None:
        self.timer = None
        if self.busy or self.transport is None or self.transport.is_closing():
            return
        peer = self.transport.get_extra_info("peername")
        log.info(
            "HTTP connection from %s closed: no complete request within %g s",
            peer,
            self.guard.seconds,
        )
        self.guard.expired += 1
        self.transport.abort()


class RequestDeadlines:
    """The deadlines of every HTTP connection of one server."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.by_handler: dict[int, _Deadline] = {}
        #: Connections closed for a request that did not arrive in time, since start.
        self.expired = 0

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], Wrapper]:
        """A protocol factory like ``factory`` whose connections have the deadline."""
        return lambda: _Deadline(factory(), self)

    @property
    def middleware(self) -> Any:
        @web.middleware
        async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = self.by_handler.get(id(request.protocol))
            if conn is not None:
                conn.busy += 1
                conn.disarm()
            try:
                if request.body_exists:
                    try:
                        async with asyncio.timeout(self.seconds):
                            await request.read()
                    except TimeoutError:
                        self.expired += 1
                        resp = web.json_response(
                            {
                                "error": "request_timeout",
                                "message": f"the request body did not arrive within "
                                f"{self.seconds:g} s (limits.http_timeout_s)",
                            },
                            status=408,
                        )
                        resp.force_close()
                        return resp
                return await handler(request)
            finally:
                if conn is not None:
                    conn.busy -= 1
                    if not conn.busy:
                        conn.arm()

        return deadline
