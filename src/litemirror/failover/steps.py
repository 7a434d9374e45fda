"""The effects and guards the failover table refers to by name (pure).

Theory of operation
-------------------
An *effect* takes the view (already updated with what the event told) and the
event, and returns the next view and the actions for the member, in the order
they must run. A *guard* says whether a row of the table applies. Both are
small on purpose: the table in :mod:`litemirror.failover.machine` is where the
rules are read; these say what each named step does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .events import (
    Action,
    ActionFailed,
    ArbiterRecord,
    ArbiterReport,
    ArbiterRequest,
    AskArbiter,
    BecomeFailoverMember,
    Claim,
    FollowPrimary,
    Granted,
    HandOver,
    MemberKind,
    NewerEpochSeen,
    NotifyBecamePrimary,
    NotifyBecomePrimaryFailed,
    OpenWrites,
    PeerHeartbeat,
    PrepareToLead,
    PromoteRequested,
    RecordEpoch,
    SendTakeOver,
    SetBackup,
    StopWrites,
    SwitchoverRequested,
)
from .states import HOLDING, State
from .view import View

Effect = Callable[[View, Any], tuple[View, tuple[Action, ...]]]
Guard = Callable[[View, Any], bool]


# ------------------------------------------------------------------ effects


def no_change(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    return v, ()


def _ask(v: View, req: ArbiterRequest, *before: Action) -> tuple[View, tuple[Action, ...]]:
    return replace(v, request=req), (*before, AskArbiter(req))


def claim(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    force = v.kind is MemberKind.DR or (isinstance(e, PromoteRequested) and e.force)
    return _ask(v, Claim(v.me, v.epoch + 1, v.epoch, force=force))


def lead(v: View, e: Granted) -> tuple[View, tuple[Action, ...]]:
    n = replace(
        v, epoch=e.epoch, holder=v.me, kind=MemberKind.FAILOVER, backup_active=False, request=None
    )
    return n, (
        RecordEpoch(e.epoch, v.me),
        PrepareToLead(e.epoch),
        OpenWrites(e.epoch, wait_for_backup=False),
        NotifyBecamePrimary(e.epoch),
    )


def resume_alone(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    acts: tuple[Action, ...] = (OpenWrites(v.epoch, wait_for_backup=False),)
    if v.state is State.WAITING:  # a restart: hooks and VIP were not done for this run
        acts = (PrepareToLead(v.epoch), *acts, NotifyBecamePrimary(v.epoch))
    return replace(v, backup_active=False, request=None), acts


def ask_inactive(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    return _ask(replace(v, backup_active=False), SetBackup(v.me, v.epoch, active=False))


def trouble(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    n = replace(v, backup_active=False)
    return _ask(n, SetBackup(v.me, v.epoch, active=False), StopWrites(deposed=False))


def resume_in_trouble(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    n, acts = trouble(v, e)
    return n, (PrepareToLead(v.epoch), *acts)


def adopt_in_trouble(v: View, e: Granted) -> tuple[View, tuple[Action, ...]]:
    """The peer relays that our claim was granted; without the arbiter we cannot go alone."""
    n = replace(v, epoch=e.epoch, holder=v.me, kind=MemberKind.FAILOVER, request=None)
    n, acts = resume_in_trouble(n, e)
    return n, (RecordEpoch(e.epoch, v.me), *acts)


def drop_request(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    return replace(v, request=None), ()


def by_arbiter(v: View, e: Granted) -> bool:
    return e.by_arbiter


def by_peer(v: View, e: Granted) -> bool:
    return not e.by_arbiter


def activate(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    n = replace(v, backup_active=True)
    return _ask(n, SetBackup(v.me, v.epoch, active=True), OpenWrites(v.epoch, wait_for_backup=True))


def _follow_to(v: View, epoch: int, holder: str) -> tuple[View, tuple[Action, ...]]:
    acts: list[Action] = [RecordEpoch(epoch, holder)] if epoch > v.epoch else []
    acts.append(FollowPrimary(holder, epoch))
    return replace(v, epoch=epoch, holder=holder, backup_active=False, request=None), tuple(acts)


def follow(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    if isinstance(e, NewerEpochSeen):
        return _follow_to(v, e.epoch, e.holder)
    if isinstance(e, PeerHeartbeat) and e.holder is not None:
        return _follow_to(v, e.epoch, e.holder)
    assert v.arbiter is not None and v.arbiter.holder is not None
    return _follow_to(v, v.arbiter.epoch, v.arbiter.holder)


def fence(v: View, e: NewerEpochSeen) -> tuple[View, tuple[Action, ...]]:
    n = replace(v, epoch=e.epoch, holder=e.holder, backup_active=False, request=None)
    return n, (RecordEpoch(e.epoch, e.holder), StopWrites(deposed=True, primary=e.holder))


def learn(v: View, e: NewerEpochSeen) -> tuple[View, tuple[Action, ...]]:
    return replace(v, epoch=e.epoch, holder=e.holder), (RecordEpoch(e.epoch, e.holder),)


def abort_lead(v: View, e: ActionFailed) -> tuple[View, tuple[Action, ...]]:
    n = replace(v, backup_active=False, request=None)
    return n, (StopWrites(deposed=False), NotifyBecomePrimaryFailed(v.epoch, e.error))


def switchover(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    return v, (StopWrites(deposed=False),)


def handover(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    assert v.peer is not None
    return _ask(v, HandOver(v.me, v.epoch, v.peer))


def send_takeover(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    assert v.peer is not None
    return v, (SendTakeOver(v.peer, v.epoch),)


def become_failover(v: View, e: Any) -> tuple[View, tuple[Action, ...]]:
    n = replace(v, kind=MemberKind.FAILOVER)
    return n, (BecomeFailoverMember(),)


# ------------------------------------------------------------------- guards


def always(v: View, e: Any) -> bool:
    return True


def refused_claim(v: View, e: ArbiterReport) -> bool:
    return isinstance(e.answered, Claim) and e.answered.member == v.me and e.refused is not None


def _rec(v: View) -> ArbiterRecord:
    return v.arbiter or ArbiterRecord()


def names_me(v: View, e: ArbiterReport) -> bool:
    return e.record.epoch == v.epoch and e.record.holder == v.me and v.epoch > 0


def names_other(v: View, e: ArbiterReport) -> bool:
    return e.record.epoch == v.epoch and e.record.holder not in (None, v.me)


def arbiter_behind(v: View, e: ArbiterReport) -> bool:
    return e.record.epoch < v.epoch


def new_mirror(v: View, e: ArbiterReport) -> bool:
    return e.record == ArbiterRecord() and v.epoch == 0 and v.kind is MemberKind.FAILOVER


def peer_holds(v: View, e: PeerHeartbeat) -> bool:
    return e.epoch == v.epoch and e.holder == v.peer and e.state in HOLDING


def peer_confirms_me(v: View, e: PeerHeartbeat) -> bool:
    return (
        v.epoch > 0
        and v.holder == v.me
        and e.epoch == v.epoch
        and e.holder == v.me
        and e.state is not State.TAKING_OVER
    )


def primary_waits_for_me(v: View, e: PeerHeartbeat) -> bool:
    return e.state in HOLDING and e.backup_active and e.epoch == v.epoch and e.holder == v.holder


def primary_stopped_waiting(v: View, e: PeerHeartbeat) -> bool:
    return e.epoch == v.epoch and e.holder == v.holder and not e.backup_active


def recorded_inactive(v: View) -> bool:
    rec = _rec(v)
    return (
        v.arbiter_up
        and rec.epoch == v.epoch
        and rec.holder == v.holder
        and not rec.backup_active
        and rec.handover_to != v.me
    )


def may_take_over(v: View, e: Any) -> bool:
    return not v.peer_up and v.arbiter_lost_primary and _rec(v).backup_active


def lost_and_inactive(v: View, e: Any) -> bool:
    return not v.peer_up and recorded_inactive(v)


def arbiter_up(v: View, e: Any) -> bool:
    return v.arbiter_up


def arbiter_down(v: View, e: Any) -> bool:
    return not v.arbiter_up


def arbiter_also_lost_backup(v: View, e: Any) -> bool:
    return v.arbiter_up and v.peer not in v.arbiter_sees


def alone_confirmed(v: View, e: Any) -> bool:
    return not v.backup_active and v.alone_confirmed


def backup_inactive(v: View, e: Any) -> bool:
    return not v.backup_active


def not_confirmed(v: View, e: ArbiterReport) -> bool:
    return not v.alone_confirmed and e.record.epoch <= v.epoch


def switchover_ok(v: View, e: SwitchoverRequested) -> bool:
    return e.to == v.peer and v.backup_active and v.peer_up and v.arbiter_up


def handover_recorded(v: View, e: ArbiterReport) -> bool:
    r = e.record
    return r.epoch == v.epoch and r.holder == v.me and r.handover_to == v.peer is not None


def is_kind(kind: MemberKind) -> Guard:
    return lambda v, e: v.kind is kind


def bootstrap_claim(v: View, e: Any) -> bool:
    return v.kind is MemberKind.FAILOVER and v.epoch == 0


def active_claimant(v: View, e: Any) -> bool:
    return _rec(v).backup_active or _rec(v).handover_to == v.me


def confirms_me_alone(v: View, e: ArbiterReport) -> bool:
    return names_me(v, e) and v.alone_confirmed


def asked_at_my_epoch(v: View, e: Any) -> bool:
    return bool(e.epoch == v.epoch) and v.arbiter_up


def refused_dr(v: View, e: ArbiterReport) -> bool:
    return refused_claim(v, e) and v.kind is MemberKind.DR


def refused_bootstrap(v: View, e: ArbiterReport) -> bool:
    return refused_claim(v, e) and bootstrap_claim(v, e)


def refused_still_active(v: View, e: ArbiterReport) -> bool:
    return refused_claim(v, e) and active_claimant(v, e)


def peer_taking_over(v: View, e: PeerHeartbeat) -> bool:
    return e.state is State.TAKING_OVER


def to_primary(v: View, e: Any) -> bool:
    return bool(e.to_primary)


def to_primary_arbiter_up(v: View, e: Any) -> bool:
    return bool(e.to_primary) and v.arbiter_up


def forced(v: View, e: Any) -> bool:
    return bool(e.force)


def forced_arbiter_up(v: View, e: Any) -> bool:
    return bool(e.force) and v.arbiter_up


is_dr = is_kind(MemberKind.DR)
is_reporting = is_kind(MemberKind.REPORTING)
