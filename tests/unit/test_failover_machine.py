"""The failover rules, one table row per case: a view, an event, the expected decision.

Members ``a`` and ``b`` are the failover pair, ``c`` a DR member; in most cases
``a`` is (or was) primary at epoch 4.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from litemirror.failover import (
    ROWS,
    AckTimeout,
    Action,
    ActionFailed,
    Agent,
    Arbiter,
    ArbiterLost,
    ArbiterRecord,
    ArbiterReport,
    AskArbiter,
    BackupCaughtUp,
    BecomeFailoverMember,
    Claim,
    Event,
    FollowPrimary,
    HandOver,
    MemberKind,
    NewerEpochSeen,
    NotifyBecamePrimary,
    NotifyBecomePrimaryFailed,
    OpenWrites,
    PeerHeartbeat,
    PeerLost,
    Persisted,
    PrepareToLead,
    PromoteRequested,
    RecordEpoch,
    SendTakeOver,
    SetBackup,
    State,
    StopWrites,
    SwitchoverRequested,
    SwitchoverTimeout,
    TakeOverRequested,
    View,
    decide,
    describe,
    diagram,
    heartbeat,
    rules,
)

BOTH = frozenset({"a", "b"})
REC4 = ArbiterRecord(4, "a", backup_active=True)
ALONE4 = ArbiterRecord(4, "a")


def primary(state: State = State.PRIMARY, **kw: object) -> View:
    base = View(
        "a", "b", state, epoch=4, holder="a", peer_up=True, arbiter_up=True,
        arbiter=REC4, arbiter_sees=BOTH, backup_active=state is State.PRIMARY,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def backup(state: State = State.BACKUP_ACTIVE, **kw: object) -> View:
    base = View(
        "b", "a", state, epoch=4, holder="a", peer_up=True, arbiter_up=True,
        arbiter=REC4, arbiter_sees=BOTH,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def restarted() -> View:
    return View.start("a", "b", Persisted(4, "a"))


def dr(kind: MemberKind = MemberKind.DR, **kw: object) -> View:
    base = replace(View.start("c", None, Persisted(4, "a"), kind), arbiter_up=True)
    return replace(base, **kw)  # type: ignore[arg-type]


CLAIM5 = Claim("b", 5, 4)


@dataclass(frozen=True)
class Case:
    name: str
    view: View
    event: Event
    state: State
    reason: str
    actions: tuple[Action, ...] | None = None  # None: not checked


CASES = [
    # -- takeover: only an active backup, only when the arbiter also lost the primary
    Case("backup takes over when primary and arbiter both lost it",
         backup(arbiter_sees=frozenset({"b"})), PeerLost(), State.TAKING_OVER,
         "taking over: the primary a and the arbiter both lost contact with it; asking the "
         "arbiter for epoch 5", (AskArbiter(CLAIM5),)),
    Case("backup takes over when the arbiter reports it lost the primary",
         backup(peer_up=False), ArbiterReport(REC4, frozenset({"b"})), State.TAKING_OVER,
         "taking over: the primary a and the arbiter both lost contact with it; asking the "
         "arbiter for epoch 5", (AskArbiter(CLAIM5),)),
    Case("granted claim: record epoch, prepare, open, notify",
         backup(State.TAKING_OVER, peer_up=False, request=CLAIM5),
         ArbiterReport(ArbiterRecord(5, "b"), frozenset({"b"}), answered=CLAIM5),
         State.PRIMARY_ALONE,
         "taking over as primary at epoch 5: the arbiter stored it; committing without a "
         "backup until a rejoins",
         (RecordEpoch(5, "b"), PrepareToLead(5), OpenWrites(5, wait_for_backup=False),
          NotifyBecamePrimary(5))),
    Case("asymmetric partition: the arbiter still sees the primary",
         backup(), PeerLost(), State.BACKUP_ACTIVE,
         "lost the primary a, but the arbiter still has contact with it: not taking over", ()),
    Case("no takeover without the arbiter",
         backup(arbiter_up=False), PeerLost(), State.BACKUP_ACTIVE,
         "lost the primary a and cannot reach the arbiter: not taking over without it", ()),
    Case("no takeover once the primary recorded the backup inactive",
         backup(arbiter=ALONE4, arbiter_sees=frozenset({"b"})), PeerLost(), State.BACKUP_ACTIVE,
         "lost the primary a, and the arbiter's last record says it commits without me: not "
         "taking over", ()),
    Case("a catching-up backup never takes over",
         backup(State.BACKUP_CATCHING_UP, arbiter_sees=frozenset({"b"})), PeerLost(),
         State.BACKUP_CATCHING_UP,
         "lost contact with the primary a; I am not an active backup, so I do not take over "
         "(if a is gone for good: litemirror promote --member b --force)",
         ()),
    Case("claim refused while the arbiter still sees the primary: stay active",
         backup(State.TAKING_OVER, peer_up=False, request=CLAIM5),
         ArbiterReport(REC4, BOTH, answered=CLAIM5,
                       refused="the arbiter still has contact with the primary a"),
         State.BACKUP_ACTIVE,
         "not taking over, the arbiter refused: the arbiter still has contact with the "
         "primary a", ()),
    Case("claim refused because the backup was marked inactive",
         backup(State.TAKING_OVER, peer_up=False, request=CLAIM5),
         ArbiterReport(ALONE4, frozenset({"b"}), answered=CLAIM5, refused="inactive"),
         State.BACKUP_CATCHING_UP, "not taking over, the arbiter refused: inactive", ()),
    Case("arbiter lost before it answered the claim",
         backup(State.TAKING_OVER, peer_up=False, request=CLAIM5), ArbiterLost(),
         State.BACKUP_ACTIVE,
         "lost the arbiter before it answered my claim to epoch 5; staying backup (if it was "
         "granted, the arbiter will tell me)", ()),
    Case("the peer relays a grant whose answer was lost",
         backup(arbiter_up=False, peer_up=True),
         PeerHeartbeat(State.FENCED, 5, "b"), State.IN_TROUBLE,
         "a says the arbiter granted me epoch 5; resuming as primary, committing once a has "
         "caught up or the arbiter lets me go on alone"),
    # -- the primary losing its backup
    Case("primary loses the backup, the arbiter lost it too",
         primary(arbiter_sees=frozenset({"a"})), PeerLost(), State.PRIMARY,
         "lost the backup b (the arbiter lost it too); asking the arbiter to record it "
         "inactive before committing without it",
         (AskArbiter(SetBackup("a", 4, active=False)),)),
    Case("primary loses the backup, the arbiter still sees it",
         primary(), PeerLost(), State.PRIMARY,
         "lost contact with the backup b; asking the arbiter to record it inactive, so it "
         "cannot take over, before committing without it",
         (AskArbiter(SetBackup("a", 4, active=False)),)),
    Case("backup connected but not acknowledging",
         primary(), AckTimeout(), State.PRIMARY,
         "no acknowledgement from the backup b; asking the arbiter to record it inactive, so "
         "it cannot take over, before committing without it",
         (AskArbiter(SetBackup("a", 4, active=False)),)),
    Case("the arbiter recorded the backup inactive: commit alone",
         primary(backup_active=False, request=SetBackup("a", 4, False)),
         ArbiterReport(ALONE4, frozenset({"a"}), answered=SetBackup("a", 4, False)),
         State.PRIMARY_ALONE,
         "the arbiter recorded b inactive at epoch 4; committing without it",
         (OpenWrites(4, wait_for_backup=False),)),
    Case("primary loses backup and arbiter: in trouble",
         primary(arbiter_up=False), PeerLost(), State.IN_TROUBLE,
         "lost both the backup b and the arbiter: not committing until I learn whether a "
         "failover happened",
         (StopWrites(deposed=False), AskArbiter(SetBackup("a", 4, active=False)))),
    Case("arbiter down alone: commits go on with the backup",
         primary(), ArbiterLost(), State.PRIMARY,
         "lost the arbiter; the backup b is active, so commits go on", ()),
    Case("primary alone loses the arbiter: in trouble",
         primary(State.PRIMARY_ALONE, arbiter=ALONE4), ArbiterLost(), State.IN_TROUBLE,
         "lost the arbiter while committing without a backup: not committing until one of "
         "them is back"),
    Case("primary alone: the backup caught up, commits wait for it again",
         primary(State.PRIMARY_ALONE, arbiter=ALONE4), BackupCaughtUp(), State.PRIMARY,
         "b caught up: commits wait for it again; telling the arbiter it is active",
         (OpenWrites(4, wait_for_backup=True), AskArbiter(SetBackup("a", 4, active=True)))),
    # -- in trouble: learn whether a failover happened
    Case("in trouble, a failover happened: fenced",
         primary(State.IN_TROUBLE, arbiter_up=False),
         ArbiterReport(ArbiterRecord(5, "b"), frozenset({"a", "b"})), State.FENCED,
         "demoting myself: b holds epoch 5, newer than my epoch 4; I will rejoin as its backup",
         (RecordEpoch(5, "b"), StopWrites(deposed=True, primary="b"))),
    Case("in trouble, no failover: go on alone",
         primary(State.IN_TROUBLE, arbiter_up=False, backup_active=False),
         ArbiterReport(ALONE4, frozenset({"a"})), State.PRIMARY_ALONE,
         "the arbiter confirms no failover happened and records b inactive; committing "
         "without it", (OpenWrites(4, wait_for_backup=False),)),
    Case("in trouble, the backup caught up with us: no failover",
         primary(State.IN_TROUBLE, arbiter_up=False, backup_active=False), BackupCaughtUp(),
         State.PRIMARY,
         "b caught up with me at epoch 4, so no failover happened: committing with it"),
    Case("in trouble while the peer is taking over: wait",
         primary(State.IN_TROUBLE, arbiter_up=False),
         PeerHeartbeat(State.TAKING_OVER, 4, "a"), State.IN_TROUBLE,
         "b is taking over; waiting to learn from it or the arbiter whether it succeeded", ()),
    # -- a newer epoch, from anywhere
    Case("newer epoch in a replication frame fences a primary",
         primary(), NewerEpochSeen(5, "b"), State.FENCED,
         "demoting myself: b holds epoch 5, newer than my epoch 4; I will rejoin as its backup",
         (RecordEpoch(5, "b"), StopWrites(deposed=True, primary="b"))),
    Case("newer epoch in the peer's heartbeat fences a primary alone",
         primary(State.PRIMARY_ALONE), PeerHeartbeat(State.PRIMARY_ALONE, 5, "b"),
         State.FENCED,
         "demoting myself: b holds epoch 5, newer than my epoch 4; I will rejoin as its backup"),
    Case("an old epoch is old news",
         primary(), NewerEpochSeen(3, "b"), State.PRIMARY,
         "primary at epoch 4; commits wait for the backup b", ()),
    Case("fenced rejoins as backup when the new primary is reachable",
         primary(State.FENCED, epoch=5, holder="b"), PeerHeartbeat(State.PRIMARY_ALONE, 5, "b"),
         State.BACKUP_CATCHING_UP, "rejoining as backup of b at epoch 5",
         (FollowPrimary("b", 5),)),
    Case("a backup follows a newer primary",
         View("c", "a", State.BACKUP_ACTIVE, epoch=4, holder="a"),
         PeerHeartbeat(State.PRIMARY_ALONE, 5, "b"), State.BACKUP_CATCHING_UP,
         "following b, which holds epoch 5", (RecordEpoch(5, "b"), FollowPrimary("b", 5))),
    # -- restart
    Case("restart: the arbiter confirms us, backup still active",
         restarted(), ArbiterReport(REC4, frozenset({"a"})), State.IN_TROUBLE,
         "the arbiter confirms I hold epoch 4; asking it to record b inactive before "
         "committing without it",
         (PrepareToLead(4), StopWrites(deposed=False), AskArbiter(SetBackup("a", 4, False)))),
    Case("restart: the arbiter confirms us, backup inactive",
         restarted(), ArbiterReport(ALONE4, frozenset({"a"})), State.PRIMARY_ALONE,
         "resuming as primary: the arbiter confirms I hold epoch 4 and records b as inactive",
         (PrepareToLead(4), OpenWrites(4, wait_for_backup=False), NotifyBecamePrimary(4))),
    Case("restart after a failover: join as backup",
         restarted(), ArbiterReport(ArbiterRecord(5, "b"), BOTH), State.BACKUP_CATCHING_UP,
         "following b, which holds epoch 5", (RecordEpoch(5, "b"), FollowPrimary("b", 5))),
    Case("restart without arbiter: the peer confirms us",
         restarted(), PeerHeartbeat(State.BACKUP_ACTIVE, 4, "a"), State.IN_TROUBLE,
         "b confirms I hold epoch 4; resuming as primary, committing once b has caught up or "
         "the arbiter lets me go on alone"),
    Case("restart: the peer holds our epoch",
         View.start("b", "a", Persisted(4, "a")), PeerHeartbeat(State.PRIMARY_ALONE, 4, "a"),
         State.BACKUP_CATCHING_UP, "joining as backup: a holds epoch 4",
         (FollowPrimary("a", 4),)),
    Case("restart: the peer is taking over, keep waiting",
         restarted(), PeerHeartbeat(State.TAKING_OVER, 4, "a"), State.WAITING,
         "waiting for the arbiter or b to say who holds the newest epoch (I know epoch 4, "
         "held by a)", ()),
    Case("restart: the arbiter lost its state",
         restarted(), ArbiterReport(ArbiterRecord(), BOTH), State.WAITING,
         "waiting: the arbiter only knows epoch 0, older than my epoch 4; its state was lost "
         "(restore it, or re-adopt the mirror on the arbiter)", ()),
    Case("a new mirror elects its first primary at the arbiter",
         View.start("a", "b"), ArbiterReport(ArbiterRecord(), frozenset({"a"})),
         State.TAKING_OVER, "starting a new mirror: asking the arbiter for epoch 1",
         (AskArbiter(Claim("a", 1, 0)),)),
    # -- planned switchover
    Case("switchover stops writes",
         primary(), SwitchoverRequested("b"), State.SWITCHING_OVER,
         "switching over to b: writes stopped; waiting until it has every record",
         (StopWrites(deposed=False),)),
    Case("switchover refused without an active backup",
         primary(State.PRIMARY_ALONE, arbiter=ALONE4), SwitchoverRequested("b"),
         State.PRIMARY_ALONE,
         "switchover to b refused: it must be an active backup and the arbiter reachable", ()),
    Case("switchover: the backup has everything, ask the arbiter for the handover",
         primary(State.SWITCHING_OVER), BackupCaughtUp(), State.SWITCHING_OVER,
         "b has every record; asking the arbiter to let it take over",
         (AskArbiter(HandOver("a", 4, "b")),)),
    Case("switchover: handover recorded, tell the backup",
         primary(State.SWITCHING_OVER, request=HandOver("a", 4, "b")),
         ArbiterReport(replace(REC4, handover_to="b"), BOTH, answered=HandOver("a", 4, "b")),
         State.SWITCHING_OVER,
         "the arbiter recorded the handover; asking b to take over at epoch 5",
         (SendTakeOver("b", 4),)),
    Case("switchover: the backup is asked to take over",
         backup(), TakeOverRequested(4), State.TAKING_OVER,
         "a hands over to me; asking the arbiter for epoch 5", (AskArbiter(CLAIM5),)),
    Case("switchover: the old primary sees the new epoch",
         primary(State.SWITCHING_OVER), PeerHeartbeat(State.PRIMARY_ALONE, 5, "b"),
         State.FENCED,
         "demoting myself: b holds epoch 5, newer than my epoch 4; I will rejoin as its backup"),
    Case("switchover times out: take writes back through the arbiter",
         primary(State.SWITCHING_OVER), SwitchoverTimeout(), State.IN_TROUBLE,
         "switchover to b did not complete in time: taking writes back once the arbiter has "
         "cancelled the handover",
         (StopWrites(deposed=False), AskArbiter(SetBackup("a", 4, active=False)))),
    # -- operators: promote of DR and reporting members
    Case("promote a DR member that is behind",
         dr(), PromoteRequested(to_primary=True, records_behind=12), State.TAKING_OVER,
         "promoting me to primary at epoch 5 on operator request; WARNING: I am 12 records "
         "behind the last primary; those commits are lost unless it comes back",
         (AskArbiter(Claim("c", 5, 4, force=True)),)),
    Case("promote a DR member whose lag is unknown",
         dr(), PromoteRequested(to_primary=True), State.TAKING_OVER,
         "promoting me to primary at epoch 5 on operator request; WARNING: how far I am "
         "behind the last primary is unknown; whatever it committed after my last record is "
         "lost"),
    Case("promote a DR member that has everything",
         dr(), PromoteRequested(to_primary=True, records_behind=0), State.TAKING_OVER,
         "promoting me to primary at epoch 5 on operator request; I have every record of the "
         "last primary"),
    Case("promote a DR member to failover member",
         dr(), PromoteRequested(to_primary=False), State.BACKUP_CATCHING_UP,
         "promoted to failover member on operator request; catching up with a",
         (BecomeFailoverMember(),)),
    Case("reporting members are never promoted",
         dr(MemberKind.REPORTING), PromoteRequested(to_primary=True), State.ASYNC,
         "promote refused: reporting members are never promoted", ()),
    Case("force a backup that is catching up to take over",
         backup(State.BACKUP_CATCHING_UP, peer_up=False),
         PromoteRequested(to_primary=True, records_behind=3, force=True), State.TAKING_OVER,
         "promoting me to primary at epoch 5 on operator request (forced); WARNING: I am 3 "
         "records behind the last primary; those commits are lost unless it comes back",
         (AskArbiter(Claim("b", 5, 4, force=True)),)),
    Case("a forced promote needs the arbiter",
         backup(State.BACKUP_CATCHING_UP, arbiter_up=False),
         PromoteRequested(to_primary=True, force=True), State.BACKUP_CATCHING_UP,
         "promote refused: the arbiter must be reachable to store the new epoch", ()),
    Case("a backup is not promoted without --force",
         backup(), PromoteRequested(to_primary=True), State.BACKUP_ACTIVE,
         "promote refused: a failover member takes over by itself when it may; to make it "
         "primary anyway, knowing what may be lost, promote it with --force", ()),
    # -- actions that fail
    Case("the VIP or a hook failed: give up leading, retry later",
         primary(State.PRIMARY_ALONE), ActionFailed("PrepareToLead", "vip busy"), State.WAITING,
         "could not act as primary at epoch 4: PrepareToLead failed (vip busy); will retry",
         (StopWrites(deposed=False), NotifyBecomePrimaryFailed(4, "vip busy"))),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case) -> None:
    d = decide(case.view, case.event)
    assert d.view.state is case.state
    assert d.reason == case.reason
    assert d.changed == (case.state is not case.view.state)
    if case.actions is not None:
        assert d.actions == case.actions


def test_takeover_end_to_end_with_the_arbiter() -> None:
    """The backup's agent and the pure arbiter, talking: failover after the primary dies."""
    arb = Arbiter(REC4, BOTH)
    b = Agent(backup())
    arb = arb.lost("a")  # the arbiter's QoS timeout for a
    b.handle(PeerLost())  # b's view of the arbiter is stale: it still sees a
    assert b.view.state is State.BACKUP_ACTIVE
    arb, report = arb.handle("b", b.view.request)  # a heartbeat to the arbiter
    d = b.handle(report)
    assert d.view.state is State.TAKING_OVER
    arb, report = arb.handle("b", b.view.request)
    d = b.handle(report)
    assert d.view.state is State.PRIMARY_ALONE and b.view.epoch == 5
    assert arb.record == ArbiterRecord(5, "b")
    assert b.reason.startswith("taking over as primary at epoch 5")
    # the old primary comes back and learns it is deposed
    a = Agent(primary(State.IN_TROUBLE, arbiter_up=False, request=SetBackup("a", 4, False)))
    arb, report = arb.handle("a", a.view.request)
    assert report.refused is not None  # SetBackup at epoch 4 no longer applies
    assert a.handle(report).view.state is State.FENCED
    assert a.handle(heartbeat(b.view)).view.state is State.BACKUP_CATCHING_UP


# ------------------------------------------------------------------ arbiter


def claim(arb: Arbiter, member: str, epoch: int, over: int, force: bool = False) -> str | None:
    return arb.handle(member, Claim(member, epoch, over, force))[1].refused


@pytest.mark.parametrize(
    ("arbiter", "member", "epoch", "over", "force", "refusal"),
    [
        (Arbiter(REC4, BOTH), "b", 5, 4, False, "the arbiter still has contact with the primary a"),
        (Arbiter(ALONE4, frozenset({"b"})), "b", 5, 4, False,
         "a marked its backup inactive at epoch 4; it may have committed without b"),
        (Arbiter(REC4, frozenset({"b"})), "b", 4, 3, False,
         "epoch 4 is not newer than the stored epoch 4 held by a"),
        (Arbiter(REC4, frozenset({"b"})), "b", 6, 5, False,
         "b claims over epoch 5 but the stored epoch is 4 held by a"),
        (Arbiter(REC4, frozenset({"a"})), "a", 5, 4, False, "a already holds epoch 4"),
        (Arbiter(REC4, frozenset({"b"})), "b", 5, 4, False, None),
        (Arbiter(replace(REC4, handover_to="b"), BOTH), "b", 5, 4, False, None),
        (Arbiter(ALONE4, frozenset({"c"})), "c", 5, 4, True, None),
        (Arbiter(ALONE4, BOTH), "c", 5, 4, True,
         "the arbiter still has contact with the primary a"),
        (Arbiter(), "a", 1, 0, False, None),
    ],
)  # fmt: skip
def test_arbiter_claims(
    arbiter: Arbiter, member: str, epoch: int, over: int, force: bool, refusal: str | None
) -> None:
    assert claim(arbiter, member, epoch, over, force) == refusal


def test_arbiter_grants_each_epoch_once_and_remembers_across_restart() -> None:
    arb, report = Arbiter().handle("a", Claim("a", 1, 0))
    assert report.refused is None and arb.record == ArbiterRecord(1, "a")
    arb, report = arb.handle("b", Claim("b", 1, 0))
    assert report.refused == "epoch 1 is not newer than the stored epoch 1 held by a"
    arb, report = arb.handle("a", SetBackup("a", 1, active=False))
    arb = arb.restarted()
    assert arb.in_contact == frozenset() and arb.record == ArbiterRecord(1, "a")


def test_arbiter_set_backup_and_handover_only_by_the_holder() -> None:
    arb = Arbiter(REC4, BOTH)
    _, r = arb.handle("b", SetBackup("b", 4, active=False))
    assert r.refused == "b does not hold epoch 4; the stored epoch is 4 held by a"
    arb2, r = arb.handle("a", HandOver("a", 4, "b"))
    assert r.refused is None and arb2.record.handover_to == "b"
    arb3, r = arb2.handle("a", SetBackup("a", 4, active=True))  # cancels the handover
    assert arb3.record == REC4
    _, r = Arbiter(ALONE4, BOTH).handle("a", HandOver("a", 4, "b"))
    assert r.refused == "cannot hand over to b: it is not recorded as an active backup"


# --------------------------------------------------------- table and docs


KNOWN_FIELDS = {
    "me", "peer", "epoch", "next", "holder", "arbiter_epoch", "arbiter_holder", "kind",
    "warning", "to", "error", "action", "refused", "new",
}  # fmt: skip


def test_every_reason_uses_known_fields() -> None:
    for row in ROWS:
        names = {f for _, f, _, _ in string.Formatter().parse(row.reason) if f}
        assert names <= KNOWN_FIELDS, (row.source, row.event, names - KNOWN_FIELDS)


def test_guards_are_named_and_no_row_hides_behind_an_unguarded_one() -> None:
    from litemirror.failover.steps import always

    last_when: dict[tuple[State, type], str] = {}
    for row in ROWS:
        assert (row.when == "") == (row.guard is always), (row.source, row.event, row.when)
        key = (row.source, row.event)
        assert last_when.get(key) != "", f"a row follows an unguarded row: {key}"
        last_when[key] = row.when


def test_every_state_has_a_standing_sentence() -> None:
    for state in State:
        assert describe(replace(primary(), state=state))


def test_docs_embed_the_generated_diagram_and_rules() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "failover.md").read_text()
    assert diagram() in doc, "docs/failover.md: paste the output of diagram()"
    assert rules() in doc, "docs/failover.md: paste the output of rules()"
