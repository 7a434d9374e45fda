"""Outbound connections of a member: to other members and to the arbiter, over TLS when configured.

With a ``[tls]`` section the member dials with its own certificate and checks
the other side twice: OpenSSL verifies the chain to the mirror's CA and the
host name dialled (the certificate's SANs); then the certificate's subject
must be the one authorised for the member (or arbiter) we meant to reach, so
a valid certificate of *another* member cannot stand in for it. A refusal is
reported (``refused``: the member makes it a ``tls_refused`` event) and raised
as :class:`PeerRefused`, an ``OSError`` like any other failed dial, so the
callers' retry loops apply.

A :class:`Dialer` is built once by the member's wiring from its TLS setup, the
current configuration (who is authorised), the refusal sink and the member's
own source address; everything that dials is given the dialer, not the member.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from litemirror.config import Config, Member
from litemirror.security.tls import TlsSetup, arbiter_refusal, member_authorisation

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
#: Told (peer "host:port", why) when a peer's TLS handshake or certificate is refused.
RefusalSink = Callable[[str, str], None]


class PeerRefused(ConnectionRefusedError):
    """The peer's certificate is not the one authorised for what we dialled."""


class Dialer:
    """Opens this member's connections to other members and to the arbiter."""

    def __init__(
        self,
        tls: TlsSetup | None,
        config: Callable[[], Config],
        refused: RefusalSink,
        local_addr: tuple[str, int] | None = None,
    ) -> None:
        """``tls``: None without a ``[tls]`` section; ``config``: the current
        configuration (a reload may add members); ``local_addr``: where this
        member's connections come from (None: wherever the system routes)."""
        self.tls = tls
        self.config = config
        self.refused = refused
        self.local_addr = local_addr

    async def __call__(
        self, host: str, port: int, member: Member | None = None, timeout: float = 5.0
    ) -> Streams:
        """Connect to ``member`` (or, when None, the arbiter) at host:port."""
        tls = self.tls
        if tls is None:
            return await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=self.local_addr, limit=1024 * 1024),
                timeout,
            )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    local_addr=self.local_addr,
                    limit=1024 * 1024,
                    ssl=tls.client,
                    server_hostname=host,
                    ssl_handshake_timeout=timeout,
                ),
                timeout,
            )
        except ssl.SSLError as exc:
            what = f"member {member.name}" if member is not None else "the arbiter"
            self.refused(f"{host}:{port}", f"TLS handshake with {what} failed: {exc}")
            raise
        ssl_object = writer.get_extra_info("ssl_object")
        config = self.config()
        if member is not None:
            why = member_authorisation(ssl_object, member, config)
        else:
            why = arbiter_refusal(ssl_object, config)
        if why is not None:
            writer.close()
            self.refused(f"{host}:{port}", why)
            raise PeerRefused(why)
        return reader, writer
