"""What the replication components are given instead of the member.

A :class:`~.sender.Sender` (the primary's side of one replication
connection) is built from :class:`SenderPorts`; a :class:`~.receiver.Receiver`
(a follower's side) from :class:`ReceiverPorts`. Each is a frozen set of
callables and components built once by the wiring; a component test builds
one from the fakes in :mod:`litemirror.testing.stream_fakes`.

``config`` is a callable, not the value: the member re-reads its members
list while it runs (SIGHUP, or an unknown member connecting), and the
components must see the list of that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from litemirror.config import Config, Member
from litemirror.journal import Journal
from litemirror.protocol import replication as r
from litemirror.protocol.framing import FrameDecoder
from litemirror.server.ports import EventSink, RoleView
from litemirror.server.storage.registry import Registry
from litemirror.server.stream.hub import Hub

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

#: Opens a connection to another member (TLS and source address as configured).
Dial = Callable[[Member], Awaitable[Streams]]

#: What another member says of itself (its ``status``); ``{}`` or no ``role``
#: when it does not answer.
StatusOf = Callable[[Member], Awaitable[dict[str, Any]]]

#: Serves one replica's connection on the primary, from its hello to its end
#: (``reader, writer, decoder, hello, peer``); raises the refusal it sent.
ServeReplica = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, FrameDecoder[Any], r.ReplHello, str],
    Awaitable[None],
]


class FailoverGate(Protocol):
    """What a follower's receiver asks of the member's failover side."""

    def may_acknowledge(self) -> bool:
        """Whether acknowledgements may go to the primary (not while taking over)."""
        ...

    def newer_epoch_seen(self, epoch: int, holder: str) -> None:
        """The primary ``holder`` streams at ``epoch``, newer than this member's."""
        ...


@dataclass(frozen=True, slots=True)
class SenderPorts:
    """What the primary's senders use; one instance serves every replica connection."""

    config: Callable[[], Config]
    me: Member
    role: RoleView
    event: EventSink
    #: Blocking work: journal reads, database copies.
    executor: Executor
    journal: Journal
    registry: Registry
    hub: Hub
    #: An LSN at or below which every journal record is committed in its database.
    current_horizon: Callable[[], int]
    #: Re-read the config file's members; True when they changed.
    reload_config: Callable[[], bool]
    #: Whether a database is being imported right now (its file is not in place yet).
    importing: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class ReceiverPorts:
    """What a follower's receiver uses."""

    config: Callable[[], Config]
    me: Member
    role: RoleView
    event: EventSink
    #: Blocking work on the databases (applying, installing copies).
    executor: Executor
    journal: Journal
    registry: Registry
    failover: FailoverGate
    #: A newer epoch was seen in the stream; the member keeps it when no
    #: failover agent owns the epoch.
    note_epoch: Callable[[int], None]
    dial: Dial
    status_of: StatusOf
    #: A MARKER record was applied (any thread): its payload (canaries).
    marker_applied: Callable[[bytes], None]
