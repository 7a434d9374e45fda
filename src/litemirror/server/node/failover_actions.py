"""The failover admin actions (switchover, promote) as the member carries them out.

:class:`litemirror.server.front.admin.Admin` is given these through its
``FailoverActions`` port; they drive the member's failover agent, which is
why they live beside the member rather than in the front.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from litemirror.errors import OperationalError, ProgrammingError
from litemirror.failover import PromoteRequested, State, SwitchoverRequested, SwitchoverTimeout

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer


class MemberFailoverActions:
    """Switchover and promotion through the member's failover agent."""

    def __init__(self, member: MemberServer) -> None:
        self.m = member

    async def force_promote(self, confirm: str, dry_run: bool) -> dict[str, Any]:
        from litemirror.server.ha.promotion import force_promote

        return await force_promote(self.m, confirm, dry_run)

    async def switchover(self, to: str, timeout: float) -> dict[str, Any]:
        m = self.m
        if m.agent is None:
            raise OperationalError(
                "switchover needs an arbiter (mirror.arbiter in the configuration)"
            )
        if m.role != "primary":
            raise OperationalError(
                f"member {m.me.name} is {m.role}; run switchover on the primary",
                primary=m.primary_address,
            )
        if m.peer is None or to != m.peer.name:
            raise ProgrammingError(
                f"switchover target must be the other failover member "
                f"({m.peer.name if m.peer else 'none configured'})"
            )
        t0 = time.monotonic()
        start_epoch = m.epoch
        m.agent.feed(SwitchoverRequested(to))
        if m.agent.state is not State.SWITCHING_OVER:
            raise OperationalError(f"switchover refused: {m.role_reason}")
        told = False
        while time.monotonic() - t0 < timeout:
            v = m.agent.view
            link = m.hub.links.get(to)
            if (
                not told
                and v.state is State.SWITCHING_OVER
                and link is not None
                and link.durable >= m.journal.last_lsn
            ):
                # Writes are stopped and the backup holds every record: hand over.
                told = True
                m.agent.backup_caught_up()
            if v.epoch > start_epoch and v.holder == to:
                pause = time.monotonic() - t0
                m.event(
                    "switchover",
                    f"switched over from {m.me.name} to {to} at epoch "
                    f"{v.epoch} in {pause * 1000:.0f} ms",
                )
                return {
                    "from": m.me.name,
                    "to": to,
                    "epoch": v.epoch,
                    "pause_ms": round(pause * 1000, 1),
                }
            await asyncio.sleep(0.01)
        m.agent.feed(SwitchoverTimeout())
        raise OperationalError(
            f"switchover to {to} did not complete within {timeout:g}s: {m.role_reason}"
        )

    async def promote(self, to_primary: bool) -> dict[str, Any]:
        m = self.m
        if m.agent is None:
            raise OperationalError(
                f"member {m.me.name} ({m.me.kind}) is not promoted automatically in a mirror "
                "without an arbiter; if the primary is gone for good, run "
                f"`litemirror promote --member {m.me.name} --force` (it says what may be lost "
                "and asks for confirmation)"
            )
        behind = None
        if m.receiver is not None:
            behind = max(0, m.receiver.primary_lsn - m.receiver.applied)
        seen = m.agent.decision_count
        m.agent.feed(PromoteRequested(to_primary=to_primary, records_behind=behind))
        for _ in range(300):
            if m.agent.state in (
                State.PRIMARY,
                State.PRIMARY_ALONE,
                State.ASYNC,
                State.BACKUP_CATCHING_UP,
            ):
                break
            await asyncio.sleep(0.05)
        return {
            "member": m.me.name,
            "state": m.agent.state.value,
            "reason": m.role_reason,
            "decisions": m.agent.decisions_since(seen),
        }
