"""The client listener's handler: one :class:`ClientSession` per connection, counted.

The counts (open connections, per source address, database sessions opened
per address) are what ``status`` and the metrics show.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from litemirror.server.front.ports import SessionContext
from litemirror.server.front.session import ClientSession

log = logging.getLogger("litemirror.member")


class ClientConnections:
    def __init__(self) -> None:
        self._open = 0
        #: Open connections (clients, members, CLI) per source address.
        self.by_host: collections.Counter[str] = collections.Counter()
        #: Database sessions opened since start, per client address.
        self.sessions_by_host: collections.Counter[str] = collections.Counter()

    def open_connections(self) -> int:
        """Connections open now (metrics: ``ConnectionCounts``)."""
        return self._open

    def session_opened(self, host: str) -> None:
        self.sessions_by_host[host] += 1

    async def serve(
        self, ctx: SessionContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._open += 1
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.by_host[host] += 1
        try:
            await ClientSession(ctx, reader, writer).run()
        except Exception:
            log.exception("client session failed")
        finally:
            self._open -= 1
            self.by_host[host] -= 1
            if not self.by_host[host]:
                del self.by_host[host]
