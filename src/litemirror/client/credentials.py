"""How this process's control connections (CLI, tools) reach members: TLS and login.

The driver takes everything from its URL. Control connections opened by the
command line take it from here, filled from the mirror config and the
environment:

==========================  ===================================================
``LITEMIRROR_TLS_CA``       CA file (default: ``tls.ca`` of the mirror config)
``LITEMIRROR_TLS_CERT``     client certificate (with ``LITEMIRROR_TLS_KEY``)
``LITEMIRROR_TLS_KEY``      its key
==========================  ===================================================
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from litemirror.config import Config


@dataclass(frozen=True)
class ClientTls:
    ca: str
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        from .url import _context

        return _context(self.ca, self.cert, self.key)


_tls: ClientTls | None = None


def use_tls(tls: ClientTls | None) -> None:
    """Make control connections of this process use ``tls`` (None: plaintext)."""
    global _tls
    _tls = tls


def tls_from(config: Config | None, environ: dict[str, str] | None = None) -> ClientTls | None:
    """The TLS settings for control connections given the mirror config and environment."""
    env = os.environ if environ is None else environ
    ca = env.get("LITEMIRROR_TLS_CA") or (str(config.tls.ca) if config and config.tls else None)
    if not ca:
        return None
    return ClientTls(ca, env.get("LITEMIRROR_TLS_CERT"), env.get("LITEMIRROR_TLS_KEY"))


def control_context() -> ssl.SSLContext | None:
    """The TLS context control connections use now; None for plaintext."""
    return _tls.context() if _tls is not None else None
