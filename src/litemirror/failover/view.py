"""What one failover agent knows: its state and its view of the mirror (pure data).

Theory of operation
-------------------
:class:`State` names where a member stands; :class:`View` is everything its
agent knows, frozen, so a decision is a function of (view, event) and the whole
mirror can be explored exhaustively in tests. :class:`Persisted` is the part a
member keeps on disk: after a restart the view is rebuilt from it alone, in
``WAITING``. The transition table lives in :mod:`litemirror.failover.machine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import (
    Action,
    ArbiterRecord,
    ArbiterRequest,
    MemberKind,
    NewerEpochSeen,
    PeerHeartbeat,
    PromoteRequested,
)
from .states import State


@dataclass(frozen=True)
class Persisted:
    """What a member keeps on disk across restarts: the newest epoch it knows and its holder."""

    epoch: int = 0
    holder: str | None = None


@dataclass(frozen=True)
class View:
    """Everything one agent knows. ``peer`` is the other failover member (None for DR)."""

    me: str
    peer: str | None
    state: State
    kind: MemberKind = MemberKind.FAILOVER
    epoch: int = 0
    holder: str | None = None
    peer_up: bool = False
    peer_state: State | None = None
    arbiter_up: bool = False
    arbiter: ArbiterRecord | None = None
    arbiter_sees: frozenset[str] = field(default=frozenset())
    backup_active: bool = False  # as primary: commits wait for the backup
    request: ArbiterRequest | None = None  # resend to the arbiter until answered

    @classmethod
    def start(
        cls,
        me: str,
        peer: str | None,
        persisted: Persisted | None = None,
        kind: MemberKind = MemberKind.FAILOVER,
    ) -> View:
        """The view of a member process that just started (first time or restart)."""
        p = persisted or Persisted()
        state = State.WAITING if kind is MemberKind.FAILOVER else State.ASYNC
        return cls(me=me, peer=peer, state=state, kind=kind, epoch=p.epoch, holder=p.holder)

    @property
    def persisted(self) -> Persisted:
        return Persisted(self.epoch, self.holder)

    @property
    def can_commit(self) -> bool:
        return self.state in (State.PRIMARY, State.PRIMARY_ALONE)

    @property
    def alone_confirmed(self) -> bool:
        """The arbiter's record lets us commit without the backup."""
        return self.arbiter_up and self.arbiter == ArbiterRecord(self.epoch, self.me)

    @property
    def arbiter_lost_primary(self) -> bool:
        rec = self.arbiter
        return (
            self.arbiter_up
            and rec is not None
            and rec.epoch == self.epoch
            and rec.holder == self.holder
            and rec.holder not in self.arbiter_sees
        )


@dataclass(frozen=True)
class Decision:
    view: View
    actions: tuple[Action, ...]
    reason: str
    changed: bool  # the state changed


def fields(v: View, e: Any) -> dict[str, object]:
    rec = v.arbiter or ArbiterRecord()
    f: dict[str, object] = {
        "me": v.me,
        "peer": v.peer or "the other failover member",
        "epoch": v.epoch,
        "next": v.epoch + 1,
        "holder": v.holder or "nobody",
        "arbiter_epoch": rec.epoch,
        "arbiter_holder": rec.holder or "nobody",
        "kind": v.kind.value,
        "warning": _promote_warning(e),
    }
    for name in ("to", "error", "action", "refused"):
        if hasattr(e, name):
            f[name] = getattr(e, name)
    if hasattr(e, "epoch"):
        f["new"] = e.epoch
    if isinstance(e, NewerEpochSeen):
        f["holder"] = e.holder
    return f


def _promote_warning(e: Any) -> str:
    if not isinstance(e, PromoteRequested):
        return ""
    if e.records_behind == 0:
        return "I have every record of the last primary"
    if e.records_behind is None:
        return (
            "WARNING: how far I am behind the last primary is unknown; whatever it "
            "committed after my last record is lost"
        )
    return (
        f"WARNING: I am {e.records_behind} records behind the last primary; those "
        "commits are lost unless it comes back"
    )


_STANDING = {
    State.WAITING: "waiting for the arbiter or {peer} to say who holds the newest epoch "
    "(I know epoch {epoch}, held by {holder})",
    State.BACKUP_CATCHING_UP: "backup of {holder} at epoch {epoch}, catching up; not active, "
    "so I would not take over",
    State.BACKUP_ACTIVE: "active backup of {holder} at epoch {epoch}",
    State.TAKING_OVER: "waiting for the arbiter to answer my claim to epoch {next}",
    State.PRIMARY: "primary at epoch {epoch}; commits wait for the backup {peer}",
    State.PRIMARY_ALONE: "primary at epoch {epoch}, committing without the backup {peer} "
    "(recorded inactive at the arbiter)",
    State.IN_TROUBLE: "not committing: I hold epoch {epoch} as far as I know, but neither an "
    "active backup nor the arbiter confirms it",
    State.SWITCHING_OVER: "switching over to {peer}: writes stopped",
    State.FENCED: "deposed: {holder} holds epoch {epoch}; waiting to rejoin it as backup",
    State.ASYNC: "{kind} member following {holder} at epoch {epoch}",
}


def describe(view: View) -> str:
    """The standing sentence for ``litemirror status`` when nothing changes."""
    if view.state is State.PRIMARY and not view.backup_active:
        template = (
            "primary at epoch {epoch}; lost the backup {peer}, commits wait until the "
            "arbiter records it inactive"
        )
    else:
        template = _STANDING[view.state]
    return template.format_map(fields(view, None))


def heartbeat(view: View) -> PeerHeartbeat:
    """What this member tells its peer in every heartbeat."""
    return PeerHeartbeat(view.state, view.epoch, view.holder, view.backup_active)
