"""What this member is right now: one frozen snapshot of role, state, epoch, writability, reason.

Every part of the member that needs to know whether it is primary, whether it
may commit, or which epoch it is in reads the current :class:`RoleSnapshot`
through a ``Callable[[], RoleSnapshot]`` it was given; it never sees the
member object. A snapshot is replaced as a whole, so a reader never sees the
role of one moment with the writability of another.

``Role`` is what the member acts as (the word clients and operators see in
``status``); ``state`` is the finer word shown beside it ("active", "fenced",
"catching up", ...). The failover state machine's own states are
:class:`litemirror.failover.machine.State`; :mod:`litemirror.failover.states`
maps them onto a role and writability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

# Defined with the pure failover table that maps failover states onto it.
from litemirror.failover.states import Role

__all__ = ["Role", "RoleCell", "RoleSnapshot"]


@dataclasses.dataclass(frozen=True, slots=True)
class RoleSnapshot:
    role: Role = Role.STARTING
    state: str = "starting"
    epoch: int = 1
    #: True only while this member may accept commits (primary, proven).
    writable: bool = False
    #: Why the member is in this role and state (shown by ``status``).
    reason: str = "starting"

    @property
    def primary(self) -> bool:
        return self.role is Role.PRIMARY


class RoleCell:
    """Holds the current snapshot; replaced whole by :meth:`set`, read by calling the cell."""

    __slots__ = ("_now", "_watchers")

    def __init__(self, initial: RoleSnapshot | None = None) -> None:
        self._now = initial or RoleSnapshot()
        self._watchers: list[Callable[[RoleSnapshot, RoleSnapshot], None]] = []

    def __call__(self) -> RoleSnapshot:
        return self._now

    def set(
        self,
        *,
        role: Role | None = None,
        state: str | None = None,
        epoch: int | None = None,
        writable: bool | None = None,
        reason: str | None = None,
    ) -> RoleSnapshot:
        """Replace the snapshot with one where the given fields changed; returns it."""
        before = self._now
        after = RoleSnapshot(
            role=before.role if role is None else role,
            state=before.state if state is None else state,
            epoch=before.epoch if epoch is None else epoch,
            writable=before.writable if writable is None else writable,
            reason=before.reason if reason is None else reason,
        )
        self._now = after
        for watch in self._watchers:
            watch(before, after)
        return after

    def watch(self, callback: Callable[[RoleSnapshot, RoleSnapshot], None]) -> None:
        """Call ``callback(before, after)`` after every change."""
        self._watchers.append(callback)
