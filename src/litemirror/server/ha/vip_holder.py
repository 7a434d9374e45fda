"""The virtual IP as the transitions take and release it (the :class:`~.ports.VipActions` port).

Taking it adds the address (``vip.py``) and listens on it, so clients that
know only the virtual IP reach the primary; releasing closes that listener
and removes the address if it is there, also one left by a killed
predecessor of this process (the kernel outlived it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from litemirror.server.ha.vip import VirtualIP
from litemirror.server.ports import EventSink


class VipHolder:
    def __init__(
        self,
        vip: VirtualIP,
        *,
        listen: Callable[[str, int], Awaitable[asyncio.AbstractServer]],
        host: str,
        port: int,
        interface: str,
        event: EventSink,
    ) -> None:
        self.vip = vip
        self.listen = listen
        self.host = host
        self.port = port
        self.interface = interface
        self.event = event
        #: The listener on the virtual IP while it is held (None otherwise).
        self.server: asyncio.AbstractServer | None = None

    async def take(self) -> None:
        await self.vip.acquire()
        # Clients that know only the virtual IP reach the primary on it.
        ip = self.vip.address.split("/")[0]
        if self.server is None and ip != self.host:
            self.server = await self.listen(ip, self.port)
        self.event("vip", f"took the virtual IP {self.vip.address} on {self.interface}")

    async def release(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            if not await self.vip.held():
                return
            await self.vip.release()
            self.event("vip", f"released the virtual IP {self.vip.address}")
        except Exception as exc:
            self.event("vip", f"could not release the virtual IP: {exc}", "error")
