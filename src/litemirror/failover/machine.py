"""The failover decision: one agent per member, rules as a table, no I/O (pure).

Theory of operation
-------------------
Each member runs an agent whose whole knowledge is a frozen :class:`View`:
its state, the newest epoch it knows and who holds it, what it last heard
from the other failover member ("peer") and from the arbiter, whether its
commits wait for the backup, and the request it wants the arbiter to process.
:func:`decide` takes a view and one event and returns a :class:`Decision`:
the next view, the actions for the member to run in order, and one sentence
saying why, which the member logs and shows in ``litemirror status``.

Only one thing can make a member commit: **proof that it holds the newest
epoch** -- the acknowledgement of an *active* backup (commits wait for it), or
the arbiter's record saying "epoch E, held by me, backup inactive". Everything
else follows from keeping that proof single:

* An epoch is granted once, by the arbiter (compare-and-set). A backup claims
  the next epoch only if it is active and both it and the arbiter lost the
  primary, or the primary handed over. A backup stops acknowledging the
  moment it claims, so the old primary's commits stop at once.
* A primary that loses its backup asks the arbiter to record the backup
  inactive *before* committing alone; from then on the arbiter refuses the
  backup's claim. Losing the arbiter too, it is IN_TROUBLE and commits nothing
  until the arbiter or the peer tells it whether a failover happened.
* Any epoch newer than ours, from the peer, the arbiter or a replication
  frame, ends our right to commit (FENCED) or re-points us as a backup.
* A restarted member is WAITING: it commits again only after the arbiter or
  the peer confirms it holds the newest epoch.

The rules are :data:`ROWS`: for a state and an event type, the first row whose
guard holds gives the target state (None: stay), the effect (view change and
actions) and the reason template. Events that reveal a newer epoch are turned
into :class:`NewerEpochSeen` (or :class:`Granted` when they name us) before
the lookup, so "a newer epoch fences" is written once per state. The states
(:class:`State`) and :class:`View` live in ``view.py``; the effects and guards
the rows name, in ``steps.py``. :func:`diagram` and :func:`rules` draw the
table for ``docs/failover.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import steps as st
from .events import (
    AckTimeout,
    ActionFailed,
    ArbiterLost,
    ArbiterReport,
    BackupCaughtUp,
    Event,
    Granted,
    NewerEpochSeen,
    PeerHeartbeat,
    PeerLost,
    PromoteRequested,
    SwitchoverRequested,
    SwitchoverTimeout,
    TakeOverRequested,
)
from .states import HOLDING, State
from .view import Decision, Persisted, View, describe, fields, heartbeat

__all__ = [
    "HOLDING",
    "ROWS",
    "TABLE",
    "Agent",
    "Decision",
    "Persisted",
    "Row",
    "State",
    "View",
    "decide",
    "describe",
    "diagram",
    "heartbeat",
    "rules",
]


@dataclass(frozen=True)
class Row:
    source: State
    event: type
    target: State | None  # None: stay
    when: str  # the guard in words, for the diagram and the docs ("" = otherwise)
    guard: st.Guard
    effect: st.Effect
    reason: str  # str.format template; fields from view.fields()


_R: list[Row] = []


def _row(
    source: State | tuple[State, ...],
    event: type,
    target: State | None,
    when: str,
    guard: st.Guard,
    effect: st.Effect,
    *reason: str,
) -> None:
    for s in source if isinstance(source, tuple) else (source,):
        _R.append(Row(s, event, target, when, guard, effect, "".join(reason)))


S = State
ok, nothing = st.always, st.no_change
_BACKUPS = (S.BACKUP_CATCHING_UP, S.BACKUP_ACTIVE, S.WAITING)
_LEADING = (S.PRIMARY, S.PRIMARY_ALONE, S.IN_TROUBLE, S.SWITCHING_OVER)

# The table. For (state, event type) the first row whose guard holds applies.
# Layout: source, event, target (None = stay), guard in words, guard, effect, reason.
# fmt: off

# -- a newer epoch, seen anywhere, ends every claim to the old one
_row(_LEADING, NewerEpochSeen, S.FENCED, "", ok, st.fence,
     "demoting myself: {holder} holds epoch {new}, newer than my epoch {epoch}; ",
     "I will rejoin as its backup")
_row(_BACKUPS, NewerEpochSeen, S.BACKUP_CATCHING_UP, "", ok, st.follow,
     "following {holder}, which holds epoch {new}")
_row(S.TAKING_OVER, NewerEpochSeen, S.ASYNC, "DR member", st.is_dr, st.follow,
     "promote failed: {holder} holds epoch {new}; following it")
_row(S.TAKING_OVER, NewerEpochSeen, S.BACKUP_CATCHING_UP, "", ok, st.follow,
     "my claim failed: {holder} holds epoch {new}; following it")
_row((S.FENCED, S.ASYNC), NewerEpochSeen, None, "", ok, st.learn,
     "learned that {holder} holds epoch {new}")

# -- the arbiter names us holder of an epoch newer than we knew: our claim was granted
_row((S.TAKING_OVER, *_BACKUPS), Granted, S.PRIMARY_ALONE, "by the arbiter",
     st.by_arbiter, st.lead,
     "taking over as primary at epoch {new}: the arbiter stored it; committing without ",
     "a backup until {peer} rejoins")
# A claim granted while we could not hear the answer, relayed by the peer.
_row((S.TAKING_OVER, *_BACKUPS), Granted, S.IN_TROUBLE, "relayed by the peer", st.by_peer,
     st.adopt_in_trouble,
     "{peer} says the arbiter granted me epoch {new}; resuming as primary, committing once ",
     "{peer} has caught up or the arbiter lets me go on alone")

# -- WAITING: after a (re)start, find out who holds the newest epoch
_row(S.WAITING, ArbiterReport, S.PRIMARY_ALONE, "arbiter confirms me, backup inactive",
     st.confirms_me_alone, st.resume_alone,
     "resuming as primary: the arbiter confirms I hold epoch {epoch} and records {peer} ",
     "as inactive")
_row(S.WAITING, ArbiterReport, S.IN_TROUBLE, "arbiter confirms me",
     st.names_me, st.resume_in_trouble,
     "the arbiter confirms I hold epoch {epoch}; asking it to record {peer} inactive ",
     "before committing without it")
_row(S.WAITING, ArbiterReport, S.BACKUP_CATCHING_UP, "arbiter names the other holder",
     st.names_other, st.follow,
     "joining as backup: the arbiter says {arbiter_holder} holds epoch {epoch}")
_row(S.WAITING, ArbiterReport, S.TAKING_OVER, "new mirror", st.new_mirror, st.claim,
     "starting a new mirror: asking the arbiter for epoch 1")
_row(S.WAITING, ArbiterReport, None, "arbiter behind", st.arbiter_behind, nothing,
     "waiting: the arbiter only knows epoch {arbiter_epoch}, older than my epoch {epoch}; ",
     "its state was lost (restore it, or re-adopt the mirror on the arbiter)")
_row(S.WAITING, PeerHeartbeat, S.BACKUP_CATCHING_UP, "peer holds my epoch",
     st.peer_holds, st.follow,
     "joining as backup: {peer} holds epoch {epoch}")
_row(S.WAITING, PeerHeartbeat, S.IN_TROUBLE, "peer confirms me",
     st.peer_confirms_me, st.resume_in_trouble,
     "{peer} confirms I hold epoch {epoch}; resuming as primary, committing once {peer} ",
     "has caught up or the arbiter lets me go on alone")

# -- backups: only an active backup may take over, and only with the arbiter's consent
_row(S.BACKUP_CATCHING_UP, PeerHeartbeat, S.BACKUP_ACTIVE, "primary waits for me",
     st.primary_waits_for_me, nothing,
     "{holder} now waits for my acknowledgements: I am its active backup at epoch {epoch}")
_row(S.BACKUP_CATCHING_UP, PeerLost, None, "", ok, nothing,
     "lost contact with the primary {holder}; I am not an active backup, so I do not ",
     "take over (if {holder} is gone for good: litemirror promote --member {me} --force)")
_row(S.BACKUP_CATCHING_UP, TakeOverRequested, None, "", ok, nothing,
     "refusing to take over from {holder}: I am not an active backup")
_row(S.BACKUP_ACTIVE, PeerHeartbeat, S.BACKUP_CATCHING_UP, "primary stopped waiting",
     st.primary_stopped_waiting, nothing,
     "{holder} no longer waits for my acknowledgements; catching up")
# Staying active when the arbiter's last word was "inactive": that word may be stale
# (the primary may have re-activated us since); the arbiter's compare-and-set decides.
_row(S.BACKUP_ACTIVE, PeerLost, None, "arbiter records me inactive",
     st.lost_and_inactive, nothing,
     "lost the primary {holder}, and the arbiter's last record says it commits without me: ",
     "not taking over")
_row(S.BACKUP_ACTIVE, PeerLost, S.TAKING_OVER, "arbiter also lost the primary",
     st.may_take_over, st.claim,
     "taking over: the primary {holder} and the arbiter both lost contact with it; ",
     "asking the arbiter for epoch {next}")
_row(S.BACKUP_ACTIVE, PeerLost, None, "arbiter unreachable", st.arbiter_down, nothing,
     "lost the primary {holder} and cannot reach the arbiter: not taking over without it")
_row(S.BACKUP_ACTIVE, PeerLost, None, "", ok, nothing,
     "lost the primary {holder}, but the arbiter still has contact with it: not taking over")
_row(S.BACKUP_ACTIVE, ArbiterReport, S.TAKING_OVER, "primary lost to both of us",
     st.may_take_over, st.claim,
     "taking over: the primary {holder} and the arbiter both lost contact with it; ",
     "asking the arbiter for epoch {next}")
_row(S.BACKUP_ACTIVE, TakeOverRequested, S.TAKING_OVER, "asked at my epoch, arbiter up",
     st.asked_at_my_epoch, st.claim,
     "{holder} hands over to me; asking the arbiter for epoch {next}")
_row(S.BACKUP_ACTIVE, TakeOverRequested, None, "", ok, nothing,
     "not taking over from {holder}: the request is for another epoch or the arbiter is ",
     "unreachable")
# An operator who knows the primary is gone may force a backup to take over; the
# arbiter grants it only while the holder is out of contact.
_row((S.BACKUP_CATCHING_UP, S.BACKUP_ACTIVE), PromoteRequested, S.TAKING_OVER,
     "forced, arbiter reachable", st.forced_arbiter_up, st.claim,
     "promoting me to primary at epoch {next} on operator request (forced); {warning}")
_row((S.BACKUP_CATCHING_UP, S.BACKUP_ACTIVE), PromoteRequested, None, "forced", st.forced,
     nothing, "promote refused: the arbiter must be reachable to store the new epoch")
_row((S.BACKUP_CATCHING_UP, S.BACKUP_ACTIVE), PromoteRequested, None, "", ok, nothing,
     "promote refused: a failover member takes over by itself when it may; to make it ",
     "primary anyway, knowing what may be lost, promote it with --force")

# -- TAKING_OVER: the claim is with the arbiter
_row(S.TAKING_OVER, ArbiterReport, S.ASYNC, "claim refused, DR member", st.refused_dr, nothing,
     "promote refused by the arbiter: {refused}")
_row(S.TAKING_OVER, ArbiterReport, S.WAITING, "new mirror claim refused",
     st.refused_bootstrap, nothing,
     "the arbiter refused epoch 1: {refused}")
_row(S.TAKING_OVER, ArbiterReport, S.BACKUP_ACTIVE, "claim refused, still active",
     st.refused_still_active, nothing,
     "not taking over, the arbiter refused: {refused}")
_row(S.TAKING_OVER, ArbiterReport, S.BACKUP_CATCHING_UP, "claim refused",
     st.refused_claim, nothing,
     "not taking over, the arbiter refused: {refused}")
_row(S.TAKING_OVER, ArbiterLost, S.ASYNC, "DR member", st.is_dr, st.drop_request,
     "lost the arbiter before it answered my promote")
_row(S.TAKING_OVER, ArbiterLost, S.WAITING, "new mirror", st.bootstrap_claim, st.drop_request,
     "lost the arbiter before it answered my claim to epoch 1")
_row(S.TAKING_OVER, ArbiterLost, S.BACKUP_ACTIVE, "", ok, st.drop_request,
     "lost the arbiter before it answered my claim to epoch {next}; staying backup ",
     "(if it was granted, the arbiter will tell me)")

# -- PRIMARY: commits wait for the active backup
_row(S.PRIMARY, PeerLost, None, "arbiter also lost backup",
     st.arbiter_also_lost_backup, st.ask_inactive,
     "lost the backup {peer} (the arbiter lost it too); asking the arbiter to record it ",
     "inactive before committing without it")
for _ev, _what in ((PeerLost, "lost contact with"), (AckTimeout, "no acknowledgement from")):
    _row(S.PRIMARY, _ev, None, "arbiter reachable", st.arbiter_up, st.ask_inactive,
         _what, " the backup {peer}; asking the arbiter to record it inactive, so it cannot ",
         "take over, before committing without it")
    _row(S.PRIMARY, _ev, S.IN_TROUBLE, "", ok, st.trouble,
         "lost both the backup {peer} and the arbiter: not committing until I learn ",
         "whether a failover happened")
_row(S.PRIMARY, ArbiterReport, S.PRIMARY_ALONE, "arbiter recorded backup inactive",
     st.alone_confirmed, st.resume_alone,
     "the arbiter recorded {peer} inactive at epoch {epoch}; committing without it")
_row(S.PRIMARY, ArbiterLost, S.IN_TROUBLE, "backup already lost",
     st.backup_inactive, st.trouble,
     "lost the arbiter before it recorded {peer} inactive: not committing until I learn ",
     "whether a failover happened")
_row(S.PRIMARY, ArbiterLost, None, "", ok, nothing,
     "lost the arbiter; the backup {peer} is active, so commits go on")
_row(S.PRIMARY, BackupCaughtUp, None, "backup was dropped", st.backup_inactive, st.activate,
     "{peer} caught up again: commits wait for it; telling the arbiter it is active")
_row(S.PRIMARY, SwitchoverRequested, S.SWITCHING_OVER, "to the active backup, arbiter up",
     st.switchover_ok, st.switchover,
     "switching over to {to}: writes stopped; waiting until it has every record")
_row((S.PRIMARY, S.PRIMARY_ALONE, S.IN_TROUBLE), SwitchoverRequested, None, "", ok, nothing,
     "switchover to {to} refused: it must be an active backup and the arbiter reachable")
_row((S.PRIMARY, S.PRIMARY_ALONE), ActionFailed, S.WAITING, "", ok, st.abort_lead,
     "could not act as primary at epoch {epoch}: {action} failed ({error}); will retry")

# -- PRIMARY_ALONE: the arbiter's record is the proof
_row(S.PRIMARY_ALONE, BackupCaughtUp, S.PRIMARY, "", ok, st.activate,
     "{peer} caught up: commits wait for it again; telling the arbiter it is active")
_row(S.PRIMARY_ALONE, ArbiterLost, S.IN_TROUBLE, "", ok, st.trouble,
     "lost the arbiter while committing without a backup: not committing until one of ",
     "them is back")
_row(S.PRIMARY_ALONE, ArbiterReport, S.IN_TROUBLE, "record does not confirm me",
     st.not_confirmed, st.trouble,
     "the arbiter no longer records me as committing alone at epoch {epoch}: not committing")

# -- IN_TROUBLE: holds the epoch as far as it knows, cannot prove it
_row(S.IN_TROUBLE, ArbiterReport, S.PRIMARY_ALONE, "arbiter confirms me, backup inactive",
     st.alone_confirmed, st.resume_alone,
     "the arbiter confirms no failover happened and records {peer} inactive; committing ",
     "without it")
_row(S.IN_TROUBLE, ArbiterReport, None, "arbiter confirms me", st.names_me, st.ask_inactive,
     "the arbiter confirms I hold epoch {epoch}; waiting for it to record {peer} inactive")
_row(S.IN_TROUBLE, BackupCaughtUp, S.PRIMARY, "", ok, st.activate,
     "{peer} caught up with me at epoch {epoch}, so no failover happened: committing ",
     "with it")
_row(S.IN_TROUBLE, PeerHeartbeat, None, "peer taking over", st.peer_taking_over, nothing,
     "{peer} is taking over; waiting to learn from it or the arbiter whether it succeeded")

# -- SWITCHING_OVER: writes stopped; hand the next epoch to the backup
_row(S.SWITCHING_OVER, BackupCaughtUp, None, "", ok, st.handover,
     "{peer} has every record; asking the arbiter to let it take over")
_row(S.SWITCHING_OVER, ArbiterReport, None, "handover recorded",
     st.handover_recorded, st.send_takeover,
     "the arbiter recorded the handover; asking {peer} to take over at epoch {next}")
_row(S.SWITCHING_OVER, SwitchoverTimeout, S.IN_TROUBLE, "", ok, st.trouble,
     "switchover to {peer} did not complete in time: taking writes back once the arbiter ",
     "has cancelled the handover")

# -- FENCED: rejoin the new primary once it is reachable
_row(S.FENCED, PeerHeartbeat, S.BACKUP_CATCHING_UP, "peer holds my epoch",
     st.peer_holds, st.follow,
     "rejoining as backup of {holder} at epoch {epoch}")

# -- ASYNC (DR, reporting): only an operator promotes, never a reporting member
_row(S.ASYNC, PromoteRequested, None, "reporting member", st.is_reporting, nothing,
     "promote refused: reporting members are never promoted")
_row(S.ASYNC, PromoteRequested, S.TAKING_OVER, "to primary, arbiter reachable",
     st.to_primary_arbiter_up, st.claim,
     "promoting me to primary at epoch {next} on operator request; {warning}")
_row(S.ASYNC, PromoteRequested, None, "to primary", st.to_primary, nothing,
     "promote refused: the arbiter must be reachable to store the new epoch")
_row(S.ASYNC, PromoteRequested, S.BACKUP_CATCHING_UP, "", ok, st.become_failover,
     "promoted to failover member on operator request; catching up with {holder}")

# fmt: on

ROWS: tuple[Row, ...] = tuple(_R)
TABLE: dict[State, dict[type, tuple[Row, ...]]] = {}
for _r in ROWS:
    _by_event = TABLE.setdefault(_r.source, {})
    _by_event[_r.event] = (*_by_event.get(_r.event, ()), _r)


# ------------------------------------------------------------------ decide


def decide(view: View, event: Event) -> Decision:
    """The next view, the actions to run in order, and why -- for one event."""
    seen = _observe(view, event)
    ev = _derive(view, event)
    if isinstance(ev, NewerEpochSeen | Granted) and ev.epoch <= view.epoch:
        return Decision(seen, (), describe(seen), False)  # old news
    for row in TABLE.get(view.state, {}).get(type(ev), ()):
        if row.guard(seen, ev):
            new, actions = row.effect(seen, ev)
            target = row.target or view.state
            reason = row.reason.format_map(fields(seen, ev))
            return Decision(replace(new, state=target), actions, reason, target is not view.state)
    return Decision(seen, (), describe(seen), False)


def _observe(v: View, e: Event) -> View:
    """Fold what the event tells about the world into the view (no decision yet)."""
    if isinstance(e, PeerHeartbeat):
        return replace(v, peer_up=True, peer_state=e.state)
    if isinstance(e, PeerLost):
        return replace(v, peer_up=False, peer_state=None)
    if isinstance(e, ArbiterLost):
        return replace(v, arbiter_up=False, arbiter_sees=frozenset())
    if isinstance(e, ArbiterReport):
        request = None if e.answered is not None and e.answered == v.request else v.request
        return replace(
            v, arbiter_up=True, arbiter=e.record, arbiter_sees=e.in_contact, request=request
        )
    return v


def _derive(v: View, e: Event) -> Event:
    """Turn news of a newer epoch into the event the table is written for."""
    if isinstance(e, ArbiterReport):
        r = e.record
        if r.epoch > v.epoch and r.holder is not None:
            return Granted(r.epoch) if r.holder == v.me else NewerEpochSeen(r.epoch, r.holder)
    elif isinstance(e, PeerHeartbeat) and e.epoch > v.epoch and e.holder is not None:
        if e.holder == v.me:
            return Granted(e.epoch, by_arbiter=False)
        return NewerEpochSeen(e.epoch, e.holder)
    return e


class Agent:
    """Holds one member's view and applies decisions to it (the server's handle)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.reason = describe(view)

    def handle(self, event: Event) -> Decision:
        d = decide(self.view, event)
        self.view = d.view
        self.reason = d.reason
        return d


# ------------------------------------------------------------------- docs


def diagram() -> str:
    """The table as a mermaid state diagram (state changes only; stays are in :func:`rules`)."""
    edges: dict[tuple[State, State], list[str]] = {}
    for r in ROWS:
        if r.target is not None and r.target is not r.source:
            label = r.event.__name__ + (f" ({r.when})" if r.when else "")
            edges.setdefault((r.source, r.target), []).append(label)
    lines = ["stateDiagram-v2", "    [*] --> WAITING", "    [*] --> ASYNC"]
    for (a, b), labels in edges.items():
        lines.append(f"    {a.name} --> {b.name} : {'<br/>'.join(dict.fromkeys(labels))}")
    return "\n".join(lines) + "\n"


def rules() -> str:
    """Every row of the table as a markdown table, in lookup order."""
    out = ["| state | event | when | next | reason |", "|---|---|---|---|---|"]
    order = list(State)
    for r in sorted(ROWS, key=lambda r: order.index(r.source)):  # stable: lookup order kept
        nxt = r.target.name if r.target else "(stays)"
        out.append(
            f"| {r.source.name} | {r.event.__name__} | {r.when or 'otherwise'} | {nxt} "
            f"| {r.reason} |"
        )
    return "\n".join(out) + "\n"
