"""Placeholder: filled in by the TLS listener work."""

from __future__ import annotations

import asyncio

from litemirror.errors import ProtocolError
from litemirror.security.certs import PeerIdentity, peer_identity


def identity_of(writer: asyncio.StreamWriter) -> PeerIdentity | None:
    """The peer certificate's (CN, OU), or None on plaintext or without a certificate."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    try:
        return peer_identity(ssl_object)
    except ProtocolError:
        return None
