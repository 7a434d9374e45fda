"""A process's connection caps and descriptor limit, and how their refusals are reported.

Built once per process (member or arbiter) from the ``[limits]`` section.
It holds the :class:`~litemirror.security.admission.Admission` of the
process's port (and of the member's HTTP port), and moves a connection to
the class its Hello showed (:meth:`LimitGuard.admit`). Then:
the caps are fitted to the descriptor limit at construction
(:func:`litemirror.security.descriptors.plan`); :meth:`LimitGuard.install`
then raises the soft ``RLIMIT_NOFILE`` as planned, says so when the caps had
to be lowered, and catches the event loop's "out of descriptors" errors on
``accept`` — which asyncio reports once per attempt per listening socket —
and turns them into one ``descriptors_exhausted`` event a minute with a
count. Refused connections are ``connection_refused`` events, one per peer
host and limit a minute, the next one saying how many were held back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
from typing import Any

from litemirror.config import Config, LimitsSection
from litemirror.errors import UnavailableError
from litemirror.security.admission import Admission, Caps, Kind, Refused
from litemirror.security.descriptors import (
    ARBITER_BACKLOG,
    HTTP_BACKLOG,
    LISTEN_BACKLOG,
    Budget,
    database_descriptors,
    member_descriptors,
    plan,
)
from litemirror.security.roles import Principal
from litemirror.server.net.listener import ticket_of
from litemirror.server.ops.event_log import EventLog

log = logging.getLogger("litemirror.limits")

#: accept() and socket errors that mean "out of descriptors or kernel memory".
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def caps_of(limits: LimitsSection) -> Caps:
    """The caps of ``[limits]``; a per-host or per-user cap never above its overall cap."""
    caps = Caps(
        max_connections=limits.max_connections,
        max_connections_per_host=limits.max_connections_per_host,
        max_connections_per_user=limits.max_connections_per_user,
        max_handshakes=limits.max_handshakes,
        max_handshakes_per_host=limits.max_handshakes_per_host,
        max_anonymous=limits.max_anonymous,
        max_anonymous_per_host=limits.max_anonymous_per_host,
        http_max_connections=limits.http_max_connections,
        http_max_connections_per_host=limits.http_max_connections_per_host,
        handshake_timeout=limits.handshake_timeout_s,
        anonymous_timeout=limits.anonymous_timeout_s,
    )
    return caps.with_totals(caps.totals())


def limit_error(what: str, refusal: Refused) -> UnavailableError:
    """What a peer refused by a limit is told (retryable: the limit is not about it)."""
    return UnavailableError(f"{what} refused the connection: {refusal.message}")


class LimitGuard:
    def __init__(
        self, config: Config | None, events: EventLog, what: str, *, databases: bool = True
    ) -> None:
        """``databases``: a member (databases, clients, HTTP); else the arbiter, which serves
        only handshakes, anonymous control connections and members' sessions."""
        self.events = events
        self.what = what
        limits = config.limits if config is not None else LimitsSection()
        db = 0
        if databases and config is not None:
            db = database_descriptors(
                config.server.max_open_databases, config.server.readers_per_database
            )
        members = len(config.members) + 1 if config is not None else 3
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.budget: Budget = plan(
            soft,
            None if hard == resource.RLIM_INFINITY else hard,
            caps_of(limits),
            databases=db,
            members=member_descriptors(members),
            backlog=LISTEN_BACKLOG + HTTP_BACKLOG if databases else ARBITER_BACKLOG,
            classes=None if databases else ("max_handshakes", "max_anonymous"),
        )
        self.caps = self.budget.caps
        #: Who holds a connection on the process's port, and on a member's HTTP port.
        self.admission = Admission(self.caps)
        self.http_admission = Admission(self.caps)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raise the descriptor limit as planned; report accept errors as events."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if self.budget.soft_limit > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.budget.soft_limit, hard))
                log.info(
                    "descriptor limit raised from %d to %d (%d may be needed)",
                    soft,
                    self.budget.soft_limit,
                    self.budget.wanted,
                )
            except (ValueError, OSError) as exc:
                log.warning("could not raise the descriptor limit to %d: %s", soft, exc)
        if self.budget.shortfall is not None:
            self.events.emit(
                "descriptor_budget", f"{self.what}: {self.budget.shortfall}", "warning"
            )
        loop.set_exception_handler(self._loop_error)

    def hello(self, writer: asyncio.StreamWriter) -> None:
        """The connection said Hello: from now on its login, not the handshake deadline, runs."""
        ticket = ticket_of(writer)
        if ticket is not None:
            self.admission.hello(ticket)

    def admit(
        self, writer: asyncio.StreamWriter, principal: Principal | None, kind: Kind | None = None
    ) -> UnavailableError | None:
        """Count a connection as what its Hello showed; the error to answer if a limit says no.

        ``principal``: who it logged in as (no role: anonymous); None for a
        member's link (authorised), unless ``kind`` says otherwise.
        """
        ticket = ticket_of(writer)
        if ticket is None:
            return None
        user = None
        if kind is None:
            if principal is None:
                kind = Kind.MEMBER
            elif principal.role is None:
                kind = Kind.ANONYMOUS
            else:
                kind, user = Kind.CLIENT, principal.user
        loop = asyncio.get_running_loop()
        refusal = self.admission.become(ticket, kind, loop.time(), user)
        if refusal is None:
            return None
        peer = writer.get_extra_info("peername")
        self.refused(f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer), refusal)
        return limit_error(self.what, refusal)

    def status(self) -> dict[str, Any]:
        return {
            "connections": self.admission.counts(),
            "http_connections": self.http_admission.count(Kind.HTTP),
            "refused": dict(self.admission.refused + self.http_admission.refused),
            "descriptor_limit": self.budget.soft_limit,
            "descriptors_wanted": self.budget.wanted,
            "caps": self.caps.totals(),
            "shortfall": self.budget.shortfall,
        }

    def refused(self, peer: str, refusal: Refused) -> None:
        """A connection refused or closed by a limit: one event per host and limit a minute."""
        host = peer.rpartition(":")[0] or peer
        self.events.emit_limited(
            "connection_refused",
            ("limit", host, refusal.key),
            f"{self.what}: connection from {peer} refused: {refusal.message}",
            "warning",
            peer=peer,
            limit=refusal.key,
        )

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _EXHAUSTED:
            self.events.emit_limited(
                "descriptors_exhausted",
                ("descriptors", exc.errno),
                f"{self.what}: {context.get('message', 'out of resources')}: {exc.strerror}; "
                f"new connections wait until descriptors are free (limit "
                f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}); see the connection caps "
                "in [limits]",
                "error",
            )
            return
        loop.default_exception_handler(context)
