"""What the front (client sessions, users, admin actions) is given instead of the member.

Each protocol here names the few methods one front component calls; the
member's wiring passes the real object (a :class:`Registry`, the
:class:`LimitGuard`, the :class:`EventLog`, ...) or a bound method, and a
component test passes a fake from :mod:`litemirror.testing.front_fakes`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from litemirror.config import Config, Member
from litemirror.errors import UnavailableError
from litemirror.protocol.framing import FrameDecoder
from litemirror.protocol.peer import PeerHello
from litemirror.protocol.replication import ReplHello
from litemirror.security.certs import PeerIdentity
from litemirror.security.roles import Principal
from litemirror.server.ports import RoleView
from litemirror.server.storage.database import Database
from litemirror.server.storage.statements import ShutdownFlag, StatementGuard


class Databases(Protocol):
    """The member's databases by name (a :class:`~litemirror.server.storage.registry.Registry`)."""

    def exists(self, name: str) -> bool: ...

    async def get(self, name: str) -> Database: ...


class StatusSource(Protocol):
    """This member's status, as ``viewer`` may see it (None: everything)."""

    def status(self, viewer: Principal | None = None) -> dict[str, Any]: ...


class AdminActions(Protocol):
    """Runs an admin action the caller has already authorised (:class:`.admin.Admin`)."""

    async def run(
        self, action: str, args: dict[str, Any], actor: Principal | None = None
    ) -> dict[str, Any]: ...


class ConnectionLimits(Protocol):
    """Who holds which connection (:class:`~litemirror.server.net.limits.LimitGuard`)."""

    def hello(self, writer: asyncio.StreamWriter) -> None: ...

    def admit(
        self, writer: asyncio.StreamWriter, principal: Principal | None
    ) -> UnavailableError | None: ...


class SessionUsers(Protocol):
    """The login and role checks a session asks (:class:`.users.Users`)."""

    async def login(
        self,
        user: str | None,
        password: str | None,
        identity: PeerIdentity | None,
        peer: str,
        database: str = "",
        ssl_object: ssl.SSLObject | None = None,
    ) -> Principal: ...

    async def authorize_action(
        self, principal: Principal, action: str, args: dict[str, Any], peer: str
    ) -> Principal: ...

    def may_write(
        self, principal: Principal, database: str | None, peer: str, what: str
    ) -> None: ...


class LimitedEvents(Protocol):
    """Events of which one per key and minute goes out (:class:`~..ops.event_log.EventLog`)."""

    def emit_limited(
        self, kind: str, key: Hashable, message: str, severity: str = "warning", **data: Any
    ) -> Any: ...


#: Serves a member's replication link on the connection it opened (builds the Sender).
ServeReplica = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, FrameDecoder[Any], ReplHello, str],
    Awaitable[None],
]
#: Takes the failover peer's heartbeats on the connection it opened.
PeerInbound = Callable[[asyncio.StreamReader, FrameDecoder[Any], PeerHello], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Everything a :class:`.session.ClientSession` uses; built once, shared by every session."""

    #: The current configuration (a reload may replace the member list).
    config: Callable[[], Config]
    me: Member
    role: RoleView
    primary_address: Callable[[], str | None]
    last_lsn: Callable[[], int]
    applied_lsn: Callable[[], int]
    #: Read-your-writes: ``await wait_applied(lsn, timeout)`` is True once ``lsn`` is applied.
    wait_applied: Callable[[int, float], Awaitable[bool]]
    databases: Databases
    users: SessionUsers
    admin: AdminActions
    status: StatusSource
    limits: ConnectionLimits
    #: Told each commit's latency in seconds (metrics).
    observe_commit: Callable[[float], None]
    #: Told each statement that ended (slow or stopped ones make an event).
    statement_finished: Callable[[StatementGuard], None]
    #: Set at shutdown: running statements stop.
    stopping: ShutdownFlag
    read_executor: Executor
    decode_executor: Executor
    #: Told the host of each database session that opens (status: sessions_by_host).
    session_opened: Callable[[str], None]
    #: Told (peer, why) when a member's certificate does not match the member it claims.
    tls_refused: Callable[[str, str], None]
    serve_replica: ServeReplica
    #: None on a member without a failover agent: a PeerHello is then just closed.
    peer_inbound: PeerInbound | None


class UserActions(Protocol):
    """The ``user_*`` admin actions (:meth:`.users.Users.run`)."""

    async def run(self, action: str, args: dict[str, Any], actor: Principal) -> dict[str, Any]: ...


class FailoverActions(Protocol):
    """The admin actions that change who is primary; they belong to the failover agent."""

    async def switchover(self, to: str, timeout: float) -> dict[str, Any]: ...

    async def promote(self, to_primary: bool) -> dict[str, Any]: ...

    async def force_promote(self, confirm: str, dry_run: bool) -> dict[str, Any]: ...


class BackupActions(Protocol):
    """``backup``, ``backup_list``, ``backup_scheduled``, ``backup_verify``
    (:mod:`.storage.scheduled_backups`)."""

    async def take(self, dbs: list[str] | None, to: str | None) -> dict[str, Any]: ...

    async def list_sets(self, to: str | None) -> dict[str, Any]: ...

    async def take_scheduled(self, slot: float, keep: int) -> dict[str, Any]: ...

    async def verify(self, set_dir: str | None) -> dict[str, Any]: ...
