"""The member's configuration while it runs, and what a reload may change.

Members may be added or removed while the mirror runs (SIGHUP, or an unknown
member connecting); everything else needs a restart and is reported, not
applied. A config that does not validate is refused whole and the running one
kept. SIGHUP also reloads the TLS files (certificate rotation): new
connections present the new certificate.

Components that read the member list take ``config`` as a callable (this
object), so a reload reaches them without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from litemirror.config import Config
from litemirror.config import load as load_config
from litemirror.errors import Error
from litemirror.security.tls import TlsSetup, certificate_info
from litemirror.security.tls import reload as reload_tls
from litemirror.server.ports import EventSink


class LiveConfig:
    def __init__(self, config: Config, member: str, tls: TlsSetup | None, event: EventSink) -> None:
        self._config = config
        self._member = member
        #: TLS contexts (None without [tls]); reloaded in place by SIGHUP.
        self.tls = tls
        self.certificate = certificate_info(config, member)
        self._event = event

    def __call__(self) -> Config:
        return self._config

    def tls_status(self) -> dict[str, Any] | None:
        """The ``tls`` part of the member's status."""
        if self.tls is None or self.certificate is None:
            return None
        return {"require": self.tls.require, **self.certificate.status(datetime.now(UTC))}

    def certificate_expiry(self) -> float | None:
        cert = self.certificate
        return cert.not_after.timestamp() if cert is not None else None

    def reload_members(self) -> bool:
        """Re-read the config file; True when the member list changed."""
        config = self._config
        if config.path is None:
            return False
        try:
            new = load_config(config.path)
            new.member(self._member)
        except Error as exc:
            self._event("config_refused", f"config reload refused: {exc.message}", "error")
            return False
        if new.failover_members != config.failover_members:
            self._event(
                "config_refused",
                "config reload refused: the failover members "
                "changed; restart the members to change them",
                "error",
            )
            return False
        changed = {mb.name for mb in new.members} ^ {mb.name for mb in config.members}
        self._config = msgspec.structs.replace(config, members=new.members)
        if changed:
            self._event(
                "config_reloaded", f"members now: {', '.join(mb.name for mb in new.members)}"
            )
        return bool(changed)

    def on_sighup(self) -> None:
        """SIGHUP: re-read the config (members) and the TLS files (certificate rotation)."""
        self.reload_members()
        if self._config.path is None:
            return
        try:
            new = load_config(self._config.path)
            if self.tls is not None:
                reload_tls(self.tls, new, self._member)
                self.certificate = certificate_info(new, self._member)
            elif new.tls is not None:
                self._event(
                    "config_refused",
                    "a [tls] section was added; restart the member to turn TLS on",
                    "warning",
                )
                return
            else:
                return
        except Error as exc:
            self._event("config_refused", f"TLS reload refused: {exc.message}", "error")
            return
        self._event(
            "tls_reloaded",
            "TLS certificate, key and CA reloaded: new connections present the new certificate",
        )
