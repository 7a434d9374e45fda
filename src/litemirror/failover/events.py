"""What a failover agent hears, what it asks the arbiter, and what it tells its member to do.

Theory of operation
-------------------
Everything here is plain, frozen data. The member server turns what happens
around it into **events** (a heartbeat arrived, the QoS timeout elapsed for the
peer, the arbiter answered, an operator asked for a switchover) and feeds them
to :func:`litemirror.failover.machine.decide`. Time never enters the machine
except as such events: "the QoS timeout elapsed for the arbiter" is
:class:`ArbiterLost`, delivered by the server's timer.

The machine answers with a :class:`~litemirror.failover.machine.Decision`
holding **actions**, which the server executes *in order*, stopping at the
first one that fails and feeding :class:`ActionFailed` back. The order matters:
``RecordEpoch`` is durable before ``OpenWrites`` runs.

The arbiter understands three **requests**, each a compare-and-set on the one
record it stores (:class:`ArbiterRecord`); see :mod:`litemirror.failover.arbiter`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .states import State


class MemberKind(enum.Enum):
    """What a member may become. Only failover members take over automatically."""

    FAILOVER = "failover"
    DR = "dr"  # disaster recovery: promoted only by an operator
    REPORTING = "reporting"  # read-only copy: never promoted


@dataclass(frozen=True)
class ArbiterRecord:
    """The one thing the arbiter stores (durably, before it answers).

    ``backup_active`` says whether the holder's commits wait for its backup;
    only while it is true may the backup take over without being asked.
    ``handover_to`` names the member a switching-over holder hands the next
    epoch to.
    """

    epoch: int = 0
    holder: str | None = None
    backup_active: bool = False
    handover_to: str | None = None


# ----------------------------------------------------------- arbiter requests


@dataclass(frozen=True)
class Claim:
    """Ask the arbiter to store ``(epoch, member)``, taking over from ``over_epoch``.

    ``force`` is an operator's promote: it skips the "backup was active" rule.
    """

    member: str
    epoch: int
    over_epoch: int
    force: bool = False


@dataclass(frozen=True)
class SetBackup:
    """The holder tells the arbiter whether its commits wait for the backup.

    ``active=False`` must be stored before the holder commits without the
    backup: from then on the arbiter refuses the backup's claims. Either value
    cancels a pending handover.
    """

    member: str
    epoch: int
    active: bool


@dataclass(frozen=True)
class HandOver:
    """The holder, writes stopped and backup caught up, lets ``to`` claim the next epoch."""

    member: str
    epoch: int
    to: str


ArbiterRequest = Claim | SetBackup | HandOver


# ----------------------------------------------------------------- events


@dataclass(frozen=True)
class PeerHeartbeat:
    """A heartbeat from the other failover member, carrying its state.

    ``backup_active`` is the sender's view when it is primary: "my commits wait
    for your acknowledgements".
    """

    state: State
    epoch: int
    holder: str | None
    backup_active: bool = False


@dataclass(frozen=True)
class PeerLost:
    """The QoS timeout elapsed without a heartbeat from the other failover member."""


@dataclass(frozen=True)
class AckTimeout:
    """Primary only: the backup is connected but did not acknowledge within the QoS timeout."""


@dataclass(frozen=True)
class BackupCaughtUp:
    """Primary only: the backup acknowledged the last record; it can now be waited for.

    The server must switch its commit path to "wait for the backup" in the
    same step it reports this, so no commit slips between the two.
    """


@dataclass(frozen=True)
class ArbiterReport:
    """Any answer from the arbiter: its record and the members it has contact with.

    ``answered`` is the request this report answers (None for a plain heartbeat
    reply); ``refused`` the arbiter's reason when it refused it.
    """

    record: ArbiterRecord
    in_contact: frozenset[str]
    answered: ArbiterRequest | None = None
    refused: str | None = None


@dataclass(frozen=True)
class ArbiterLost:
    """The QoS timeout elapsed without an answer from the arbiter."""


@dataclass(frozen=True)
class NewerEpochSeen:
    """An epoch newer than ours was seen (e.g. in a replication frame), held by ``holder``."""

    epoch: int
    holder: str


@dataclass(frozen=True)
class Granted:
    """Derived by the machine: the arbiter (or, relaying it, the peer) names *us*
    holder of an epoch newer than we knew -- a claim of ours was granted."""

    epoch: int
    by_arbiter: bool = True


@dataclass(frozen=True)
class SwitchoverRequested:
    """An operator asked the primary to hand over to ``to``."""

    to: str


@dataclass(frozen=True)
class SwitchoverTimeout:
    """The switchover did not complete in the allowed time."""


@dataclass(frozen=True)
class TakeOverRequested:
    """The primary (switching over or shutting down) asks us to take over from ``epoch``."""

    epoch: int


@dataclass(frozen=True)
class PromoteRequested:
    """An operator promotes this member (a DR member, or with ``force`` a backup).

    ``to_primary``: become primary now (only when no failover member is left);
    otherwise become a failover member. ``records_behind`` is how far the
    member is known to lag the last primary (None: unknown). ``force``: the
    operator knows the primary is gone and accepts losing what this member
    does not hold (``litemirror promote --force``).
    """

    to_primary: bool
    records_behind: int | None = None
    force: bool = False


@dataclass(frozen=True)
class ActionFailed:
    """An action of the last decision failed (disk error, hook said no, VIP not taken)."""

    action: str
    error: str


Event = (
    PeerHeartbeat
    | PeerLost
    | AckTimeout
    | BackupCaughtUp
    | ArbiterReport
    | ArbiterLost
    | NewerEpochSeen
    | Granted
    | SwitchoverRequested
    | SwitchoverTimeout
    | TakeOverRequested
    | PromoteRequested
    | ActionFailed
)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class RecordEpoch:
    """Persist ``(epoch, holder)`` durably (fsync) before running the next action."""

    epoch: int
    holder: str | None


@dataclass(frozen=True)
class AskArbiter:
    """Send ``request`` to the arbiter; resend it with every heartbeat while
    ``View.request`` still holds it."""

    request: ArbiterRequest


@dataclass(frozen=True)
class PrepareToLead:
    """Run the ``can_start_become_primary`` and ``check_become_primary_ok`` hooks
    and take the virtual IP; any failure is reported as :class:`ActionFailed`."""

    epoch: int


@dataclass(frozen=True)
class OpenWrites:
    """Accept commits at ``epoch``; when ``wait_for_backup``, each waits for the backup's ack."""

    epoch: int
    wait_for_backup: bool


@dataclass(frozen=True)
class StopWrites:
    """Refuse new commits and fail those in flight with a retryable error.

    ``deposed``: a newer epoch exists; release the virtual IP and point clients
    to ``primary``. Otherwise the pause is temporary (in trouble, switchover).
    """

    deposed: bool
    primary: str | None = None


@dataclass(frozen=True)
class NotifyBecamePrimary:
    """Run the ``notify_become_primary`` hook."""

    epoch: int


@dataclass(frozen=True)
class NotifyBecomePrimaryFailed:
    """Run the ``notify_become_primary_failed`` hook."""

    epoch: int
    error: str


@dataclass(frozen=True)
class FollowPrimary:
    """(Re)connect to ``primary`` as its backup at ``epoch``: roll back and keep any
    journal records it never had, then catch up."""

    primary: str
    epoch: int


@dataclass(frozen=True)
class SendTakeOver:
    """Tell the backup ``to`` to take over from ``epoch`` (switchover)."""

    to: str
    epoch: int


@dataclass(frozen=True)
class BecomeFailoverMember:
    """Operator promote of a DR member: it now counts as a failover member."""


Action = (
    RecordEpoch
    | AskArbiter
    | PrepareToLead
    | OpenWrites
    | StopWrites
    | NotifyBecamePrimary
    | NotifyBecomePrimaryFailed
    | FollowPrimary
    | SendTakeOver
    | BecomeFailoverMember
)
