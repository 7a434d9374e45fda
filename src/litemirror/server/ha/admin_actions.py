"""The failover admin actions (switchover, promote) carried out through the failover agent.

:class:`litemirror.server.front.admin.Admin` is given these through its
``FailoverActions`` port (``front/ports.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from litemirror.config import Member
from litemirror.errors import OperationalError, ProgrammingError
from litemirror.failover import PromoteRequested, State, SwitchoverRequested, SwitchoverTimeout
from litemirror.server.ha.agent import FailoverAgent
from litemirror.server.ha.promotion import Promotion
from litemirror.server.ports import EventSink, RoleView
from litemirror.server.role import Role


class Durable(Protocol):
    """What the primary knows of a replica: the LSN it holds durably."""

    @property
    def durable(self) -> int: ...


class Following(Protocol):
    """What promote reads of the receiver."""

    @property
    def primary_lsn(self) -> int: ...

    @property
    def applied(self) -> int: ...


class FailoverAdminActions:
    """Switchover, promote and forced promote, as admin actions of this member."""

    def __init__(
        self,
        *,
        me: Member,
        peer: Member | None,
        agent: FailoverAgent | None,
        promotion: Promotion,
        role: RoleView,
        primary_address: Callable[[], str | None],
        replica_link: Callable[[str], Durable | None],
        journal_last_lsn: Callable[[], int],
        receiver: Callable[[], Following | None],
        event: EventSink,
    ) -> None:
        self._me = me
        self._peer = peer
        self._agent = agent
        self._promotion = promotion
        self._role = role
        self._primary_address = primary_address
        self._replica_link = replica_link
        self._journal_last_lsn = journal_last_lsn
        self._receiver = receiver
        self._event = event

    async def force_promote(self, confirm: str, dry_run: bool) -> dict[str, Any]:
        return await self._promotion.force_promote(confirm, dry_run)

    async def switchover(self, to: str, timeout: float) -> dict[str, Any]:
        if self._agent is None:
            raise OperationalError(
                "switchover needs an arbiter (mirror.arbiter in the configuration)"
            )
        now = self._role()
        if now.role is not Role.PRIMARY:
            raise OperationalError(
                f"member {self._me.name} is {now.role}; run switchover on the primary",
                primary=self._primary_address(),
            )
        if self._peer is None or to != self._peer.name:
            raise ProgrammingError(
                f"switchover target must be the other failover member "
                f"({self._peer.name if self._peer else 'none configured'})"
            )
        t0 = time.monotonic()
        start_epoch = self._role().epoch
        self._agent.feed(SwitchoverRequested(to))
        if self._agent.state is not State.SWITCHING_OVER:
            raise OperationalError(f"switchover refused: {self._role().reason}")
        told = False
        while time.monotonic() - t0 < timeout:
            v = self._agent.view
            link = self._replica_link(to)
            if (
                not told
                and v.state is State.SWITCHING_OVER
                and link is not None
                and link.durable >= self._journal_last_lsn()
            ):
                # Writes are stopped and the backup holds every record: hand over.
                told = True
                self._agent.backup_caught_up()
            if v.epoch > start_epoch and v.holder == to:
                pause = time.monotonic() - t0
                self._event(
                    "switchover",
                    f"switched over from {self._me.name} to {to} at epoch "
                    f"{v.epoch} in {pause * 1000:.0f} ms",
                )
                return {
                    "from": self._me.name,
                    "to": to,
                    "epoch": v.epoch,
                    "pause_ms": round(pause * 1000, 1),
                }
            await asyncio.sleep(0.01)
        self._agent.feed(SwitchoverTimeout())
        raise OperationalError(
            f"switchover to {to} did not complete within {timeout:g}s: {self._role().reason}"
        )

    async def promote(self, to_primary: bool) -> dict[str, Any]:
        me = self._me
        if self._agent is None:
            raise OperationalError(
                f"member {me.name} ({me.kind}) is not promoted automatically in a mirror "
                "without an arbiter; if the primary is gone for good, run "
                f"`litemirror promote --member {me.name} --force` (it says what may be lost "
                "and asks for confirmation)"
            )
        behind = None
        rcv = self._receiver()
        if rcv is not None:
            behind = max(0, rcv.primary_lsn - rcv.applied)
        seen = self._agent.decision_count
        self._agent.feed(PromoteRequested(to_primary=to_primary, records_behind=behind))
        for _ in range(300):
            if self._agent.state in (
                State.PRIMARY,
                State.PRIMARY_ALONE,
                State.ASYNC,
                State.BACKUP_CATCHING_UP,
            ):
                break
            await asyncio.sleep(0.05)
        return {
            "member": self._me.name,
            "state": self._agent.state.value,
            "reason": self._role().reason,
            "decisions": self._agent.decisions_since(seen),
        }
