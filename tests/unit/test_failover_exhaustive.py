"""Every ordering of faults and messages, up to a bounded depth, against the failover rules.

A whole mirror, pure: two failover members ``a`` and ``b`` (each an agent view,
or None while its process is down, plus what it keeps on disk), the arbiter
(:class:`Arbiter`, whose record survives its restarts), the three links, and
for each member whether it lacks an acknowledged commit. Each step is one of:

* faults -- a link goes down or up; a member process crashes or restarts; the
  arbiter crashes or restarts; an arbiter request is processed but its answer
  is lost (link drops, or the member crashes before reading it);
* time -- a QoS timeout elapses for one side of a broken link; the backup stops
  acknowledging; a switchover times out;
* messages -- a heartbeat between the members; a request/answer exchange with
  the arbiter; the backup catches up; the primary asks the backup to take over;
* operators and clients -- a switchover is requested; a commit is acknowledged.

Committing is modelled by what acknowledging a commit needs *now*: a primary
waiting for its backup needs the backup to be up, reachable and acknowledging
at the same epoch; a primary alone needs the arbiter to be up, reachable and
to store (its epoch, it, backup inactive). Breadth-first search with a
visited set explores every reachable world up to ``DEPTH`` steps from each
seed, and checks after every step:

1. at most one member can acknowledge commits; two members that both believe
   they may commit never share an epoch, and the older one cannot acknowledge;
2. only an active backup takes over: a member enters TAKING_OVER only from
   BACKUP_ACTIVE (or to start a new mirror), and the arbiter grants a takeover
   only to a member holding every acknowledged commit;
3. progress: while two of the three are up and connected, letting messages
   and timeouts run (no new faults) leads within a few rounds to a member that
   can acknowledge commits -- unless the only connected pair is the arbiter
   and a backup that is not active (IRIS: no automatic failover then);
4. no acknowledged commit is lost: a member that can acknowledge holds every
   commit acknowledged so far.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from litemirror.failover import (
    AckTimeout,
    Arbiter,
    ArbiterLost,
    ArbiterRecord,
    ArbiterReport,
    ArbiterRequest,
    AskArbiter,
    BackupCaughtUp,
    Claim,
    Decision,
    Event,
    PeerLost,
    Persisted,
    RecordEpoch,
    State,
    SwitchoverRequested,
    SwitchoverTimeout,
    TakeOverRequested,
    View,
    decide,
    heartbeat,
)

NAMES = ("a", "b")
ARB = "arbiter"
LINKS = ("ab", "a-arbiter", "b-arbiter")
DEPTH = int(os.environ.get("FAILOVER_DEPTH", "8"))
PROGRESS_ROUNDS = 12


class Violation(AssertionError):
    pass


#: The decision function under test; the mutation test swaps in a broken one.
DECIDE: list[Callable[[View, Event], Decision]] = [decide]


@dataclass(frozen=True)
class World:
    views: tuple[View | None, View | None]
    disks: tuple[Persisted, Persisted]
    arbiter: Arbiter
    arbiter_up: bool
    links: frozenset[str]
    missing: tuple[bool, bool]  # lacks an acknowledged commit


def _link(i: int) -> str:
    return f"{NAMES[i]}-arbiter"


def _set(t: tuple[object, object], i: int, x: object) -> tuple[object, object]:
    return (x, t[1]) if i == 0 else (t[0], x)


def _with_view(w: World, i: int, v: View | None) -> World:
    return replace(w, views=_set(w.views, i, v))  # type: ignore[arg-type]


# ---------------------------------------------------------------- the model


def can_ack(w: World, i: int) -> bool:
    v, j = w.views[i], 1 - i
    if v is None:
        return False
    if v.state is State.PRIMARY:
        b = w.views[j]
        return (
            b is not None
            and "ab" in w.links
            and b.state is State.BACKUP_ACTIVE
            and b.epoch == v.epoch
            and b.holder == v.me
        )
    if v.state is State.PRIMARY_ALONE:
        return (
            w.arbiter_up
            and _link(i) in w.links
            and w.arbiter.record == ArbiterRecord(v.epoch, v.me)
        )
    return False


def feed(w: World, i: int, event: Event) -> World:
    """Deliver ``event`` to member ``i`` and run the decision's actions."""
    v = w.views[i]
    assert v is not None
    d = DECIDE[0](v, event)
    if d.view.state is State.TAKING_OVER and v.state is not State.TAKING_OVER:
        bootstrap = v.state is State.WAITING and v.epoch == 0
        if v.state is not State.BACKUP_ACTIVE and not bootstrap:
            raise Violation(f"{v.me} tried to take over from {v.state.name}: {d.reason}")
    disks = w.disks
    for a in d.actions:
        if isinstance(a, RecordEpoch):
            disks = _set(disks, i, Persisted(a.epoch, a.holder))  # type: ignore[assignment]
    return replace(_with_view(w, i, d.view), disks=disks)


def exchange(w: World, i: int) -> tuple[World, object]:
    """The arbiter processes member i's pending request (or heartbeat)."""
    v = w.views[i]
    assert v is not None
    before = w.arbiter.record
    arb, report = w.arbiter.handle(v.me, v.request)
    if (
        isinstance(v.request, Claim)
        and arb.record.holder == v.me
        and before.holder is not None
        and w.missing[i]
    ):
        raise Violation(
            f"the arbiter granted epoch {arb.record.epoch} to {v.me}, which lacks commits"
        )
    return replace(w, arbiter=arb), report


def steps(w: World) -> Iterator[tuple[str, bool, Callable[[], World]]]:
    """Every enabled step as (label, is_fault, thunk)."""
    up = [v is not None for v in w.views]
    for link in LINKS:
        if link in w.links:
            yield f"{link} down", True, lambda link=link: replace(w, links=w.links - {link})
        else:
            yield f"{link} up", True, lambda link=link: replace(w, links=w.links | {link})
    if w.arbiter_up:
        yield (
            "arbiter crash",
            True,
            lambda: replace(w, arbiter_up=False, arbiter=w.arbiter.restarted()),
        )
    else:
        yield "arbiter restart", True, lambda: replace(w, arbiter_up=True)
    for i in (0, 1):
        j, name, v = 1 - i, NAMES[i], w.views[i]
        if w.arbiter_up and name in w.arbiter.in_contact and not (up[i] and _link(i) in w.links):
            yield (
                f"arbiter qos timeout for {name}",
                False,
                lambda i=i: replace(w, arbiter=w.arbiter.lost(NAMES[i])),
            )
        if v is None:
            peer = NAMES[j]
            yield (
                f"{name} restart",
                True,
                lambda i=i, peer=peer: _with_view(w, i, View.start(NAMES[i], peer, w.disks[i])),
            )
            continue
        yield f"{name} crash", True, lambda i=i: _with_view(w, i, None)
        talk = w.arbiter_up and _link(i) in w.links
        if v.request is not None and talk:
            yield (
                f"{name} request, answer lost",
                True,
                lambda i=i: replace(exchange(w, i)[0], links=w.links - {_link(i)}),
            )
            yield (
                f"{name} request, then crash",
                True,
                lambda i=i: _with_view(exchange(w, i)[0], i, None),
            )
        # -- time
        peer_reachable = up[j] and "ab" in w.links
        if v.peer_up and not peer_reachable:
            yield f"{name} qos timeout for peer", False, lambda i=i: feed(w, i, PeerLost())
        if v.arbiter_up and not talk:
            yield f"{name} qos timeout for arbiter", False, lambda i=i: feed(w, i, ArbiterLost())
        if v.state is State.PRIMARY and v.backup_active and not can_ack(w, i):
            yield f"{name} ack timeout", False, lambda i=i: feed(w, i, AckTimeout())
        if v.state is State.SWITCHING_OVER:
            yield f"{name} switchover timeout", False, lambda i=i: feed(w, i, SwitchoverTimeout())
        # -- messages
        if peer_reachable:
            other = w.views[j]
            assert other is not None
            yield (
                f"heartbeat {NAMES[j]}->{name}",
                False,
                lambda i=i, o=other: feed(w, i, heartbeat(o)),
            )
            if (
                v.state
                in (State.PRIMARY, State.PRIMARY_ALONE, State.IN_TROUBLE, State.SWITCHING_OVER)
                and not (v.state is State.PRIMARY and v.backup_active)
                and other.state in (State.BACKUP_CATCHING_UP, State.BACKUP_ACTIVE)
                and other.epoch == v.epoch
                and other.holder == v.me
            ):
                yield (
                    f"{NAMES[j]} caught up with {name}",
                    False,
                    lambda i=i, j=j: feed(
                        replace(w, missing=_set(w.missing, j, w.missing[i])),  # type: ignore[arg-type]
                        i,
                        BackupCaughtUp(),
                    ),
                )
            rec = v.arbiter
            if (
                v.state is State.SWITCHING_OVER
                and rec is not None
                and rec.epoch == v.epoch
                and rec.handover_to == NAMES[j]
            ):
                yield (
                    f"{name} asks {NAMES[j]} to take over",
                    False,
                    lambda j=j, e=v.epoch: feed(w, j, TakeOverRequested(e)),
                )
        if talk:
            yield f"{name} <-> arbiter", False, lambda i=i: _exchange_and_feed(w, i)
        # -- operators and clients
        if v.state is State.PRIMARY:
            yield (
                f"switchover {name}->{NAMES[j]}",
                True,
                lambda i=i, j=j: feed(w, i, SwitchoverRequested(NAMES[j])),
            )
        if can_ack(w, i) and not w.missing[j] and v.state is State.PRIMARY_ALONE:
            yield (
                f"{name} commits alone",
                True,
                lambda j=j: replace(
                    w,
                    missing=_set(w.missing, j, True),  # type: ignore[arg-type]
                ),
            )


def _exchange_and_feed(w: World, i: int) -> World:
    w2, report = exchange(w, i)
    return feed(w2, i, report)  # type: ignore[arg-type]


def show(w: World) -> str:
    """A world in one line: each member's state, epoch, holder; arbiter; links; gaps."""
    parts = []
    for i, v in enumerate(w.views):
        if v is None:
            parts.append(f"{NAMES[i]}: down (disk {w.disks[i].epoch}/{w.disks[i].holder})")
        else:
            req = f" asking {v.request}" if v.request else ""
            parts.append(f"{NAMES[i]}: {v.state.name} e{v.epoch}/{v.holder}{req}")
    r = w.arbiter.record
    arb = f"arbiter{'' if w.arbiter_up else ' (down)'}: {r} sees {sorted(w.arbiter.in_contact)}"
    missing = [NAMES[i] for i in (0, 1) if w.missing[i]]
    return "; ".join([*parts, arb, f"links {sorted(w.links)}", f"missing commits: {missing}"])


# --------------------------------------------------------------- invariants


def check_safety(w: World) -> None:
    ack = [can_ack(w, i) for i in (0, 1)]
    if all(ack):
        raise Violation("two members can acknowledge commits at the same time")
    for i in (0, 1):
        if ack[i] and w.missing[i]:
            raise Violation(f"{NAMES[i]} acknowledges commits but lacks an acknowledged one")
    a, b = w.views
    if a is not None and b is not None and a.can_commit and b.can_commit:
        if a.epoch == b.epoch:
            raise Violation(f"both members may commit at epoch {a.epoch}")
        older = 0 if a.epoch < b.epoch else 1
        if ack[older]:
            raise Violation(f"{NAMES[older]} acknowledges commits at an older epoch")


def _capable_pair(w: World) -> bool:
    """Is some connected pair one that must make progress on its own?"""
    up = [v is not None for v in w.views]
    # A new mirror (nobody ever held an epoch) elects its first primary through the arbiter.
    if up[0] and up[1] and "ab" in w.links and max(d.epoch for d in w.disks) > 0:
        return True
    rec = w.arbiter.record
    for i in (0, 1):
        v = w.views[i]
        if v is None or not w.arbiter_up or _link(i) not in w.links:
            continue
        if rec.holder in (None, v.me):
            return True
        active = v.state in (State.BACKUP_ACTIVE, State.TAKING_OVER) and v.epoch == rec.epoch
        if active and (rec.backup_active or rec.handover_to == v.me):
            return True
    return False


_progress_memo: dict[World, bool] = {}


def check_progress(w: World) -> None:
    if not _capable_pair(w) or w in _progress_memo:
        return
    cur, trail = w, []
    for _ in range(PROGRESS_ROUNDS):
        if can_ack(cur, 0) or can_ack(cur, 1):
            _progress_memo[w] = True
            return
        changed = False
        # round-robin: each step enabled at the start of the round runs once, if still enabled
        for label in [lb for lb, fault, _ in steps(cur) if not fault]:
            thunk = next((t for lb, f, t in steps(cur) if lb == label and not f), None)
            if thunk is not None and (nxt := thunk()) != cur:
                trail.append(label)
                cur, changed = nxt, True
        if not changed:
            break
    if can_ack(cur, 0) or can_ack(cur, 1):
        _progress_memo[w] = True
        return
    raise Violation(f"no progress with two of three connected; settled by {trail} into {show(cur)}")


# -------------------------------------------------------------------- seeds


def _primary(me: str, peer: str, epoch: int, state: State, active: bool) -> View:
    rec = ArbiterRecord(epoch, me, backup_active=active)
    return View(
        me, peer, state, epoch=epoch, holder=me, peer_up=True, arbiter_up=True,
        arbiter=rec, arbiter_sees=frozenset(NAMES), backup_active=active,
    )  # fmt: skip


def _backup(me: str, peer: str, epoch: int, state: State, active: bool) -> View:
    rec = ArbiterRecord(epoch, peer, backup_active=active)
    return View(
        me, peer, state, epoch=epoch, holder=peer, peer_up=True, arbiter_up=True,
        arbiter=rec, arbiter_sees=frozenset(NAMES),
    )  # fmt: skip


def seeds() -> dict[str, World]:
    all_links = frozenset(LINKS)
    steady = World(
        views=(
            _primary("a", "b", 1, State.PRIMARY, True),
            _backup("b", "a", 1, State.BACKUP_ACTIVE, True),
        ),
        disks=(Persisted(1, "a"), Persisted(1, "a")),
        arbiter=Arbiter(ArbiterRecord(1, "a", backup_active=True), frozenset(NAMES)),
        arbiter_up=True,
        links=all_links,
        missing=(False, False),
    )
    alone = World(
        views=(
            _primary("a", "b", 1, State.PRIMARY_ALONE, False),
            _backup("b", "a", 1, State.BACKUP_CATCHING_UP, False),
        ),
        disks=(Persisted(1, "a"), Persisted(1, "a")),
        arbiter=Arbiter(ArbiterRecord(1, "a"), frozenset(NAMES)),
        arbiter_up=True,
        links=all_links,
        missing=(False, True),
    )
    fresh = World(
        views=(View.start("a", "b"), View.start("b", "a")),
        disks=(Persisted(), Persisted()),
        arbiter=Arbiter(),
        arbiter_up=True,
        links=all_links,
        missing=(False, False),
    )
    failed_over = World(
        views=(None, _primary("b", "a", 2, State.PRIMARY_ALONE, False)),
        disks=(Persisted(1, "a"), Persisted(2, "b")),
        arbiter=Arbiter(ArbiterRecord(2, "b"), frozenset({"b"})),
        arbiter_up=True,
        links=all_links,
        missing=(False, False),
    )
    return {"steady": steady, "alone": alone, "fresh": fresh, "failed over": failed_over}


def explore(seed: World, depth: int) -> set[World]:
    visited = {seed}
    frontier = [seed]
    check_safety(seed)
    for _ in range(depth):
        nxt: list[World] = []
        for w in frontier:
            for label, _fault, thunk in steps(w):
                try:
                    w2 = thunk()
                    if w2 in visited:
                        continue
                    check_safety(w2)
                    check_progress(w2)
                except Violation as exc:
                    raise Violation(f"after '{label}' from {show(w)}:\n{exc}") from None
                visited.add(w2)
                nxt.append(w2)
        frontier = nxt
    return visited


def test_every_ordering_keeps_the_invariants() -> None:
    started = time.monotonic()
    explored = {name: explore(w, DEPTH) for name, w in seeds().items()}
    counts = {name: len(ws) for name, ws in explored.items()}
    print(f"explored {counts} = {sum(counts.values())} worlds in {time.monotonic() - started:.1f}s")
    # The search reached the situations the rules are about, not just the calm ones.
    reached = {
        (v.state, v.epoch > 1)
        for ws in explored.values()
        for w in ws
        for v in w.views
        if v is not None
    }
    for wanted in [
        (State.TAKING_OVER, False),
        (State.PRIMARY_ALONE, True),  # a takeover completed
        (State.IN_TROUBLE, False),
        (State.FENCED, True),  # a deposed primary learned the new epoch
        (State.SWITCHING_OVER, False),
        (State.BACKUP_ACTIVE, True),  # the old primary rejoined and caught up
    ]:
        assert wanted in reached, wanted


class CarelessArbiter(Arbiter):
    """Grants any claim to a newer epoch: no contact, flag or over-epoch checks."""

    def handle(self, member: str, request: ArbiterRequest | None) -> tuple[Arbiter, ArbiterReport]:
        if isinstance(request, Claim) and request.epoch > self.record.epoch:
            new = CarelessArbiter(ArbiterRecord(request.epoch, member), self.in_contact | {member})
            return new, new.report(request)
        arb, report = super().handle(member, request)
        return CarelessArbiter(arb.record, arb.in_contact), report

    def lost(self, member: str) -> Arbiter:
        return CarelessArbiter(self.record, self.in_contact - {member})

    def restarted(self) -> Arbiter:
        return CarelessArbiter(self.record)


def reckless(view: View, event: Event) -> Decision:
    """An active backup that claims as soon as it loses the primary, whatever the arbiter saw."""
    if view.state is State.BACKUP_ACTIVE and isinstance(event, PeerLost) and view.arbiter_up:
        c = Claim(view.me, view.epoch + 1, view.epoch)
        v = replace(view, peer_up=False, state=State.TAKING_OVER, request=c)
        return Decision(v, (AskArbiter(c),), "claiming at once", True)
    return decide(view, event)


def test_the_checks_catch_a_backup_taking_over_while_the_primary_commits_alone() -> None:
    seed = seeds()["steady"]
    careless = replace(seed, arbiter=CarelessArbiter(seed.arbiter.record, seed.arbiter.in_contact))
    DECIDE[0] = reckless
    try:
        # Either safeguard alone holds ...
        explore(seed, 6)
        _progress_memo.clear()
        # ... both broken together lose acknowledged commits.
        with pytest.raises(
            Violation, match=r"lacks (an acknowledged one|commits)|at the same time"
        ):
            explore(careless, 6)
    finally:
        DECIDE[0] = decide
        _progress_memo.clear()
    explore(careless, 6)  # the real rules need no help from the arbiter's extra checks
    _progress_memo.clear()


def test_the_checks_fail_on_bad_worlds() -> None:
    steady = seeds()["steady"]
    a = steady.views[0]
    assert a is not None
    both = _with_view(steady, 1, replace(a, me="b", peer="a", state=State.PRIMARY_ALONE))
    both = replace(both, arbiter=Arbiter(ArbiterRecord(1, "b"), frozenset(NAMES)))
    with pytest.raises(Violation, match="both members may commit at epoch 1"):
        check_safety(both)
    stale = replace(steady, missing=(True, True))
    with pytest.raises(Violation, match="lacks an acknowledged one"):
        check_safety(stale)
    # a and the arbiter connected, but a fenced itself for an epoch nobody holds: stuck
    stuck = _with_view(steady, 0, replace(a, state=State.FENCED, epoch=1, holder="b"))
    stuck = replace(stuck, links=frozenset({"a-arbiter"}))
    with pytest.raises(Violation, match="no progress"):
        check_progress(stuck)
