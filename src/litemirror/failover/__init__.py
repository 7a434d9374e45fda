"""Automatic failover, decided by a pure state machine (no sockets, no clocks).

The member server feeds each member's :class:`Agent` the events it observes
(heartbeats, QoS timeouts, arbiter answers, operator requests) and runs the
actions of each :class:`Decision` in order; the arbiter process keeps one
:class:`Arbiter` and answers requests with :meth:`Arbiter.handle`. The rules
are the table in :mod:`litemirror.failover.machine`; ``docs/failover.md``
explains them and shows the diagram drawn from it.
"""

from __future__ import annotations

from .arbiter import Arbiter
from .events import (
    AckTimeout,
    Action,
    ActionFailed,
    ArbiterLost,
    ArbiterRecord,
    ArbiterReport,
    ArbiterRequest,
    AskArbiter,
    BackupCaughtUp,
    BecomeFailoverMember,
    Claim,
    Event,
    FollowPrimary,
    Granted,
    HandOver,
    MemberKind,
    NewerEpochSeen,
    NotifyBecamePrimary,
    NotifyBecomePrimaryFailed,
    OpenWrites,
    PeerHeartbeat,
    PeerLost,
    PrepareToLead,
    PromoteRequested,
    RecordEpoch,
    SendTakeOver,
    SetBackup,
    StopWrites,
    SwitchoverRequested,
    SwitchoverTimeout,
    TakeOverRequested,
)
from .machine import ROWS, TABLE, Agent, decide, diagram, rules
from .states import HOLDING, State
from .view import Decision, Persisted, View, describe, heartbeat

__all__ = [
    "HOLDING",
    "ROWS",
    "TABLE",
    "AckTimeout",
    "Action",
    "ActionFailed",
    "Agent",
    "Arbiter",
    "ArbiterLost",
    "ArbiterRecord",
    "ArbiterReport",
    "ArbiterRequest",
    "AskArbiter",
    "BackupCaughtUp",
    "BecomeFailoverMember",
    "Claim",
    "Decision",
    "Event",
    "FollowPrimary",
    "Granted",
    "HandOver",
    "MemberKind",
    "NewerEpochSeen",
    "NotifyBecamePrimary",
    "NotifyBecomePrimaryFailed",
    "OpenWrites",
    "PeerHeartbeat",
    "PeerLost",
    "Persisted",
    "PrepareToLead",
    "PromoteRequested",
    "RecordEpoch",
    "SendTakeOver",
    "SetBackup",
    "State",
    "StopWrites",
    "SwitchoverRequested",
    "SwitchoverTimeout",
    "TakeOverRequested",
    "View",
    "decide",
    "describe",
    "diagram",
    "heartbeat",
    "rules",
]
