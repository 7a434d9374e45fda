"""What the failover part of the member is given instead of the member itself.

:class:`~.transitions.Transitions` carries out failover actions through
these; :class:`~.agent.FailoverAgent` reaches the other members through a
:class:`Dialer` and runs its actions on :class:`FailoverActions`. The wiring
(``server/node/``) answers each with the member's storage, hub and receiver;
component tests answer them with :mod:`litemirror.testing.ha_fakes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from litemirror.config import Member
from litemirror.failover import State
from litemirror.server.ha.hooks import HookResult
from litemirror.server.storage.member_state import MemberState

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PrimaryDuties(Protocol):
    """Leading, as the member's journal, databases and commit hub carry it out."""

    def journal_epoch(self) -> int:
        """The newest epoch in the journal."""
        ...

    async def apply_journal_tail(self) -> None:
        """Apply what the databases miss of the journal (already leading: after a restart)."""
        ...

    async def replay_journal(self, horizon: int) -> None:
        """Apply every journal record above ``horizon`` to its database: from now on this
        member's journal is the mirror's history."""
        ...

    async def append_epoch_marker(self, epoch: int) -> None:
        """Journal the start of ``epoch``; returns once the record is durable."""
        ...

    async def create_missing_databases(self) -> None:
        """Create (journalled) the configured databases that do not exist yet."""
        ...

    def clear_abort(self) -> None:
        """Let commits wait for the backup again (after :meth:`hold`)."""
        ...

    async def set_backup_active(self, wait: bool, why: str) -> None:
        """Whether commits wait for the backup's acknowledgement from now on."""
        ...

    def hold(self) -> None:
        """Fence: nothing more commits, nothing more is sent to the backups."""
        ...

    async def abort_waiters(self, error: Exception) -> None:
        """Fail the commits waiting for the backup with ``error``."""
        ...

    async def step_down(self, horizon: int) -> None:
        """Stop leading: drop the backups' links, close the databases, idle the journal
        writer, and keep unapplied what the backup did not acknowledge."""
        ...

    def abort_transactions(self, why: str) -> None:
        """Roll back every open client transaction, telling its client ``why``."""
        ...


class ReplicaLink(Protocol):
    """Following a primary: the receiver, started and stopped as the role changes."""

    @property
    def following(self) -> bool: ...

    def start(self) -> None:
        """Start following (the receiver finds the primary itself)."""
        ...

    async def stop(self) -> None:
        """Stop following; returns once nothing more is written to the journal by it."""
        ...


class VipActions(Protocol):
    """The mirror's virtual IP on this member's interface."""

    async def take(self) -> None:
        """Hold the address (raises when it cannot: the takeover is aborted)."""
        ...

    async def release(self) -> None:
        """Make sure the address is not held here (never raises: failures are events)."""
        ...


class StateFile(Protocol):
    """The member state file (``storage/member_state.py``), changed then saved durably."""

    def current(self) -> MemberState: ...

    async def save(self) -> None: ...


class HookRunner(Protocol):
    """The configured hooks (``ha/hooks.py: Hooks.run``)."""

    async def run(
        self,
        point: str,
        *,
        mirror: str,
        member: str,
        epoch: int,
        error: str | BaseException | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> HookResult: ...


class Dialer(Protocol):
    """Opens a connection to another member (``member``) or, when None, the arbiter,
    from this member's own address, with its TLS identity."""

    async def __call__(
        self, host: str, port: int, member: Member | None, timeout: float
    ) -> Streams: ...


class FailoverActions(Protocol):
    """The role changes the failover agent's decisions ask for (``Transitions``)."""

    async def record_epoch(self, epoch: int, holder: str | None) -> None: ...

    async def prepare_to_lead(self, epoch: int) -> None: ...

    async def open_writes(self, epoch: int, wait_for_backup: bool) -> None: ...

    async def stop_writes(self, deposed: bool, primary: str | None) -> None: ...

    async def follow_primary(self, primary: str, epoch: int) -> None: ...

    def notify_hook(self, point: str, epoch: int, error: str | None = None) -> None: ...

    def failover_state_changed(self, state: State) -> None: ...

    def note_reason(self, reason: str) -> None: ...
