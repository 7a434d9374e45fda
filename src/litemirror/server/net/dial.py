"""Outbound connections of a member: to other members and to the arbiter, over TLS when configured.

With a ``[tls]`` section the member dials with its own certificate and checks
the other side twice: OpenSSL verifies the chain to the mirror's CA and the
host name dialled (the certificate's SANs); then the certificate's subject
must be the one authorised for the member (or arbiter) we meant to reach, so
a valid certificate of *another* member cannot stand in for it. A refusal is
reported as an event (``tls_refused``) and raised as :class:`PeerRefused`, an
``OSError`` like any other failed dial, so the callers' retry loops apply.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from litemirror.config import Member
from litemirror.security.tls import arbiter_refusal, member_authorisation

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer


class PeerRefused(ConnectionRefusedError):
    """The peer's certificate is not the one authorised for what we dialled."""


async def open_to(
    m: MemberServer,
    host: str,
    port: int,
    *,
    member: Member | None = None,
    local_addr: tuple[str, int] | None = None,
    timeout: float = 5.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``member`` (or, when None, the arbiter) at host:port."""
    tls = m.tls
    if tls is None:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local_addr, limit=1024 * 1024),
            timeout,
        )
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                local_addr=local_addr,
                limit=1024 * 1024,
                ssl=tls.client,
                server_hostname=host,
                ssl_handshake_timeout=timeout,
            ),
            timeout,
        )
    except OSError as exc:
        import ssl

        if isinstance(exc, ssl.SSLError):
            what = f"member {member.name}" if member is not None else "the arbiter"
            m.tls_refused(f"{host}:{port}", f"TLS handshake with {what} failed: {exc}")
        raise
    ssl_object = writer.get_extra_info("ssl_object")
    if member is not None:
        why = member_authorisation(ssl_object, member, m.config)
    else:
        why = arbiter_refusal(ssl_object, m.config)
    if why is not None:
        writer.close()
        m.tls_refused(f"{host}:{port}", why)
        raise PeerRefused(why)
    return reader, writer
