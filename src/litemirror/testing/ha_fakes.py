"""In-memory fakes of the failover ports (``server/ha/ports.py``) for component tests.

Every fake appends what it was asked to one shared :class:`Trail`, so a test
can check the order across them ("the epoch marker was durable before writes
opened"). :func:`transitions` builds a real
:class:`~litemirror.server.ha.transitions.Transitions` on fakes; the role cell
it writes is a real :class:`~litemirror.server.role.RoleCell` whose changes
are on the trail too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from litemirror.config import Member
from litemirror.failover import State
from litemirror.server.ha.hooks import HookResult
from litemirror.server.ha.ports import Streams
from litemirror.server.ha.transitions import Transitions
from litemirror.server.role import RoleCell, RoleSnapshot
from litemirror.server.storage.member_state import MemberState
from litemirror.testing.fakes import EventRecorder


@dataclass
class Trail:
    """What the fakes were asked, in order: one short line per call."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def index(self, line: str) -> int:
        return self.lines.index(line)

    def __contains__(self, line: str) -> bool:
        return line in self.lines


class FakeDuties:
    """:class:`~litemirror.server.ha.ports.PrimaryDuties` that only records."""

    def __init__(self, trail: Trail, journal_epoch: int = 0) -> None:
        self.trail = trail
        self.epoch_in_journal = journal_epoch
        self.aborted: list[Exception] = []

    def journal_epoch(self) -> int:
        return self.epoch_in_journal

    async def apply_journal_tail(self) -> None:
        self.trail.add("apply journal tail")

    async def replay_journal(self, horizon: int) -> None:
        self.trail.add(f"replay journal above {horizon}")

    async def append_epoch_marker(self, epoch: int) -> None:
        await asyncio.sleep(0)  # durable only when the writer thread says so
        self.epoch_in_journal = epoch
        self.trail.add(f"epoch {epoch} durable in journal")

    async def create_missing_databases(self) -> None:
        self.trail.add("create missing databases")

    def clear_abort(self) -> None:
        self.trail.add("clear abort")

    async def set_backup_active(self, wait: bool, why: str) -> None:
        self.trail.add(f"backup active {wait}")

    def hold(self) -> None:
        self.trail.add("hold")

    async def abort_waiters(self, error: Exception) -> None:
        self.aborted.append(error)
        self.trail.add("abort waiters")

    async def step_down(self, horizon: int) -> None:
        self.trail.add(f"step down at {horizon}")

    def abort_transactions(self, why: str) -> None:
        self.trail.add("abort transactions")


class FakeReplica:
    """:class:`~litemirror.server.ha.ports.ReplicaLink`: following is a flag."""

    def __init__(self, trail: Trail, following: bool = False) -> None:
        self.trail = trail
        self.following = following

    def start(self) -> None:
        self.following = True
        self.trail.add("start following")

    async def stop(self) -> None:
        if self.following:
            self.trail.add("stop following")
        self.following = False


class FakeVip:
    """:class:`~litemirror.server.ha.ports.VipActions`; ``refuse`` makes take() fail."""

    def __init__(self, trail: Trail, held: bool = False, refuse: str | None = None) -> None:
        self.trail = trail
        self.held = held
        self.refuse = refuse

    async def take(self) -> None:
        if self.refuse is not None:
            raise OSError(self.refuse)
        self.held = True
        self.trail.add("take vip")

    async def release(self) -> None:
        if self.held:
            self.trail.add("release vip")
        self.held = False


class FakeStateFile:
    """:class:`~litemirror.server.ha.ports.StateFile` kept in memory; ``saved`` holds a
    copy of each save (what a crash right after it would find)."""

    def __init__(self, trail: Trail, state: MemberState) -> None:
        self.trail = trail
        self.state = state
        self.saved: list[MemberState] = []

    def current(self) -> MemberState:
        return self.state

    async def save(self) -> None:
        await asyncio.sleep(0)
        copy = msgspec.structs.replace(self.state)
        self.saved.append(copy)
        self.trail.add(f"state file saved at epoch {copy.epoch} as {copy.last_role}")


class FakeHooks:
    """:class:`~litemirror.server.ha.ports.HookRunner`: each point says yes unless listed."""

    def __init__(self, trail: Trail, refuse: frozenset[str] = frozenset()) -> None:
        self.trail = trail
        self.refuse = refuse

    async def run(
        self,
        point: str,
        *,
        mirror: str,
        member: str,
        epoch: int,
        error: str | BaseException | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> HookResult:
        ok = point not in self.refuse
        self.trail.add(f"hook {point} {'yes' if ok else 'no'}")
        return HookResult(ok, f"{point} said {'yes' if ok else 'no'}", point, ran=True)


class FakeActions:
    """:class:`~litemirror.server.ha.ports.FailoverActions` that only records (for the agent)."""

    def __init__(self, trail: Trail, fail: Mapping[str, str] | None = None) -> None:
        self.trail = trail
        #: Action name -> the error it raises.
        self.fail = dict(fail or {})
        self.reason = ""
        self.states: list[State] = []

    def _do(self, line: str) -> None:
        self.trail.add(line)
        name = line.split()[0]
        if name in self.fail:
            raise OSError(self.fail[name])

    async def record_epoch(self, epoch: int, holder: str | None) -> None:
        self._do(f"record_epoch {epoch} {holder}")

    async def prepare_to_lead(self, epoch: int) -> None:
        self._do(f"prepare_to_lead {epoch}")

    async def open_writes(self, epoch: int, wait_for_backup: bool) -> None:
        self._do(f"open_writes {epoch} wait={wait_for_backup}")

    async def stop_writes(self, deposed: bool, primary: str | None) -> None:
        self._do(f"stop_writes deposed={deposed} {primary}")

    async def follow_primary(self, primary: str, epoch: int) -> None:
        self._do(f"follow_primary {primary} {epoch}")

    def notify_hook(self, point: str, epoch: int, error: str | None = None) -> None:
        self.trail.add(f"notify_hook {point} {epoch}")

    def failover_state_changed(self, state: State) -> None:
        self.states.append(state)

    def note_reason(self, reason: str) -> None:
        self.reason = reason


async def refusing_dialer(host: str, port: int, member: Member | None, timeout: float) -> Streams:
    """A :class:`~litemirror.server.ha.ports.Dialer` for a member with nobody to reach."""
    raise ConnectionRefusedError(f"nothing listens at {host}:{port}")


def member(name: str, kind: str = "failover", port: int = 7001) -> Member:
    """A configured member (its data_dir is never touched by the fakes)."""
    return Member(
        name=name,
        host="127.0.0.1",
        port=port,
        data_dir=Path("/nonexistent") / name,
        kind=kind,  # type: ignore[arg-type]
        http=None,
    )


@dataclass
class TransitionsRig:
    """A real Transitions on fakes, and the fakes to look at."""

    transitions: Transitions
    trail: Trail
    cell: RoleCell
    duties: FakeDuties
    replica: FakeReplica
    state_file: FakeStateFile
    hooks: FakeHooks
    vip: FakeVip | None
    events: EventRecorder
    tasks: list[asyncio.Task[Any]]


def transitions(
    *,
    me: str = "b",
    kind: str = "failover",
    others: tuple[str, ...] = ("a",),
    snapshot: RoleSnapshot | None = None,
    journal_epoch: int = 0,
    following: bool = False,
    vip: bool = True,
    vip_held: bool = False,
    refuse_hooks: frozenset[str] = frozenset(),
    horizon: int = 0,
) -> TransitionsRig:
    """Build Transitions for member ``me`` with every port faked."""
    trail = Trail()
    cell = RoleCell(snapshot)

    def watch(before: RoleSnapshot, after: RoleSnapshot) -> None:
        if after.writable != before.writable:
            trail.add(f"writable {after.writable}")

    cell.watch(watch)
    mine = member(me, kind)
    members = [mine, *(member(n, port=7002 + i) for i, n in enumerate(others))]
    duties = FakeDuties(trail, journal_epoch)
    replica = FakeReplica(trail, following)
    state_file = FakeStateFile(trail, MemberState(mirror="m", member=me))
    hooks = FakeHooks(trail, refuse_hooks)
    fake_vip = FakeVip(trail, held=vip_held) if vip else None
    events = EventRecorder()
    tasks: list[asyncio.Task[Any]] = []
    t = Transitions(
        me=mine,
        mirror="m",
        members=lambda: members,
        cell=cell,
        duties=duties,
        replica=replica,
        state_file=state_file,
        hooks=hooks,
        vip=fake_vip,
        event=events,
        current_horizon=lambda: horizon,
        keep=tasks.append,
    )
    return TransitionsRig(
        t, trail, cell, duties, replica, state_file, hooks, fake_vip, events, tasks
    )
