"""What the operator-facing parts (metrics, canary, HTTP API) are given instead of the member.

The member's wiring fills these from its journal, registry, hub and
receiver; a component test fills them with plain values
(:mod:`litemirror.testing.front_fakes`, :mod:`litemirror.testing.ops_fakes`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.registry import Collector

from litemirror.config import Config, Member
from litemirror.journal import Record
from litemirror.security.admission import Admission, Refused
from litemirror.security.roles import Principal
from litemirror.security.tls import TlsSetup
from litemirror.server.front.ports import AdminActions, StatusSource
from litemirror.server.front.users import UserRow
from litemirror.server.ops.event_log import Event
from litemirror.server.ports import EventSink, RoleView


class ConnectionCounts(Protocol):
    """How many client connections are open now."""

    def open_connections(self) -> int: ...


@dataclass(frozen=True, slots=True)
class JournalFigures:
    """The journal's counters and size at one moment."""

    records: int
    fsyncs: int
    payload_bytes: int
    disk_bytes: int
    segments: int
    last_lsn: int


@dataclass(frozen=True, slots=True)
class ReplicaFigures:
    """What the primary knows of one replica's link."""

    member: str
    lag_records: int
    lag_seconds: float
    received: int
    durable: int
    applied: int


@dataclass(frozen=True, slots=True)
class ReceiverFigures:
    """What this member's receiver (on a non-primary) counts."""

    lag_records: int
    stream_resets: int
    frames_refused: int


@dataclass(frozen=True, slots=True)
class MetricsSources:
    """Everything :class:`.metrics.Metrics` reads, each as a callable read at scrape time."""

    member: str
    role: RoleView
    started: float
    connections: ConnectionCounts
    journal: Callable[[], JournalFigures]
    applied_lsn: Callable[[], int]
    #: The open databases (each with a monotonic ``commits`` count).
    open_databases: Callable[[], list[Any]]
    #: (databases held, databases open now).
    database_counts: Callable[[], tuple[int, int]]
    #: When the certificate this member presents expires (Unix time); None without TLS.
    certificate_expiry: Callable[[], float | None]
    #: Worst event-loop delay of the last minute, in seconds.
    loop_lag: Callable[[], float]
    #: The replicas' links (on the primary), given the time in ms.
    replicas: Callable[[int], list[ReplicaFigures]]
    #: This member's receiver, None when it has none.
    receiver: Callable[[], ReceiverFigures | None]
    #: The event log's recent events, oldest first.
    recent_events: Callable[[], Sequence[Event]]
    #: Registers a listener called with each durable batch of journal records.
    on_durable: Callable[[Callable[[list[Record]], None]], None]
    #: More collectors registered beside the member's own (the canary's).
    collectors: Sequence[Collector] = field(default=())


@dataclass(frozen=True, slots=True)
class CanaryPorts:
    """What :class:`.canary.Canary` uses: the role, the journal and hub as two calls, events."""

    #: This member's name (events and metrics say whose canary).
    member: str
    role: RoleView
    event: EventSink
    #: Journals a MARKER record with ``payload`` at ``epoch``; returns its LSN once durable here.
    append_marker: Callable[[int, bytes], Awaitable[int]]
    #: Waits until ``lsn`` is replicated as a commit waits (``mirror.ack``); raises an Error if not.
    wait_replicated: Callable[[int], Awaitable[None]]
    #: On the primary: the LSN each replica acknowledged as applied, by member name.
    applied_by_replica: Callable[[], Mapping[str, int]]
    #: Wall-clock seconds (canary timestamps compare across members).
    wall_clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class Following:
    """What this member's receiver says while it follows a primary."""

    #: The receiver's state word ("streaming", "seeding", "rolling back", ...).
    state: str
    lag_records: int
    #: Seconds since the primary was last heard from; None before the first contact.
    last_contact_s: float | None


class OpenDatabase(Protocol):
    """One open database, as the status lists it."""

    @property
    def name(self) -> str: ...

    @property
    def applied_lsn(self) -> int: ...

    @property
    def commits(self) -> int: ...


class DatabaseList(Protocol):
    """The member's databases (a :class:`~litemirror.server.storage.registry.Registry`)."""

    def names(self) -> list[str]: ...

    def open_databases(self) -> Sequence[OpenDatabase]: ...


class HttpUsers(Protocol):
    """The logins and checks the HTTP port asks (:class:`~litemirror.server.front.users.Users`)."""

    async def authenticate(
        self, name: str, password: str | None, cert_user: str | None, peer: str
    ) -> Principal: ...

    async def authorize_action(
        self, principal: Principal, action: str, args: dict[str, Any], peer: str
    ) -> Principal: ...

    async def bootstrap_allowed(self, peer: str) -> bool: ...

    def member_certificate(self, ssl_object: ssl.SSLObject | None) -> str | None: ...

    async def lookup(self, name: str) -> UserRow | None: ...

    def refused(self, peer: str, kind: str, message: str) -> None: ...


class MetricsPage(Protocol):
    """The Prometheus text and its once-a-second poll (:class:`.metrics.Metrics`)."""

    def render(self) -> bytes: ...

    def poll(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HttpPorts:
    """Everything :class:`.http_api.HttpApi` (and the Monitor's view) reads or calls."""

    #: The current configuration (a reload may replace the member list).
    config: Callable[[], Config]
    me: Member
    role: RoleView
    #: This member's TLS contexts; None without a ``[tls]`` section.
    tls: TlsSetup | None
    #: The admin bearer token (``server.http_token`` or ``LITEMIRROR_HTTP_TOKEN``); None: none.
    http_token: str | None
    status: StatusSource
    admin: AdminActions
    users: HttpUsers
    event: EventSink
    metrics: MetricsPage
    databases: DatabaseList
    #: Whether a database is being imported (``db add --from``) right now.
    importing: Callable[[str], bool]
    #: The receiver's figures; None on a member that follows no primary.
    following: Callable[[], Following | None]
    #: The replicas' links (on the primary), given the time in ms.
    replicas: Callable[[int], list[ReplicaFigures]]
    #: The event log's recent events, oldest first.
    recent_events: Callable[[], Sequence[Event]]
    #: The other failover member (a switchover's default target); None without one.
    failover_peer: Member | None


@dataclass(frozen=True, slots=True)
class HttpServing:
    """What :func:`.http_api.start_http` needs besides the API: the port's guards."""

    #: Told (peer, why) when a TLS handshake on the port is refused.
    tls_refused: Callable[[str, str], None]
    #: Connection caps and deadlines of the HTTP port.
    admission: Admission
    #: Told (peer, refusal) when a limit refuses or closes a connection.
    on_limit: Callable[[str, Refused], None]
    #: Keeps a background task (the sampler) until it ends.
    spawn: Callable[[asyncio.Task[Any]], None]
