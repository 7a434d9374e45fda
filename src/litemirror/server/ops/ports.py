"""What the operator-facing parts (metrics, ...) are given instead of the member.

The member's wiring fills these from its journal, registry, hub and
receiver; a component test fills them with plain values
(:mod:`litemirror.testing.front_fakes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.registry import Collector

from litemirror.journal import Record
from litemirror.server.ops.event_log import Event
from litemirror.server.ports import RoleView


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
