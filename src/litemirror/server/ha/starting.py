"""Taking a role at start, and stepping down without an arbiter: the shell of
:func:`litemirror.failover.start.decide_start`.

A member without a failover agent (no arbiter, or a dr/reporting member) asks
every other member for its status, hands the answers to the pure start
decision, and becomes what it says (or asks again half a second later,
saying once why it waits). A primary without an arbiter then watches for a
member that leads at a newer epoch (an operator force-promoted it while this
one was unreachable) and steps down to follow it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from litemirror.config import Config, Member
from litemirror.failover.start import PeerStatus, StartFacts, StartRole, decide_start
from litemirror.server.ha.ports import StateFile
from litemirror.server.ports import EventSink, RoleView
from litemirror.server.role import Role

log = logging.getLogger("litemirror.member")


class StartTransitions(Protocol):
    """What starting asks of :class:`~.transitions.Transitions`."""

    def note_reason(self, reason: str) -> None: ...

    async def take_start_role(self, role: Role, reason: str) -> None: ...

    async def stop_writes(self, deposed: bool, primary: str | None) -> None: ...

    async def record_epoch(self, epoch: int, holder: str | None) -> None: ...

    async def follow_primary(self, primary: str, epoch: int) -> None: ...


class Starting:
    def __init__(
        self,
        *,
        me: Member,
        peer: Member | None,
        config: Callable[[], Config],
        has_agent: bool,
        role: RoleView,
        state_file: StateFile,
        transitions: StartTransitions,
        status_of: Callable[[Member], Awaitable[dict[str, Any]]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        stopped: Callable[[], bool],
        event: EventSink,
        describe: Callable[[], str],
    ) -> None:
        """``describe``: the one log line said once the member has its role."""
        self._me = me
        self._peer = peer
        self._config = config
        self._has_agent = has_agent
        self._role = role
        self._state_file = state_file
        self._transitions = transitions
        self._status_of = status_of
        self._spawn = spawn
        self._stopped = stopped
        self._event = event
        self._describe = describe

    async def statuses(self) -> tuple[PeerStatus | None, PeerStatus | None]:
        """(what the other failover member says of itself, the member that says it is
        primary at the newest epoch); None where unreachable or nobody."""
        peer: PeerStatus | None = None
        leader: PeerStatus | None = None
        for mb in self._config().members:
            if mb.name == self._me.name or mb.kind == "reporting":
                continue
            st = await self._status_of(mb)
            if st.get("role") in (None, "down"):
                continue
            ps = PeerStatus(str(st.get("role")), int(st.get("epoch") or 0), mb.name)
            if self._peer is not None and mb.name == self._peer.name:
                peer = ps
            if ps.role == "primary" and (leader is None or ps.epoch > leader.epoch):
                leader = ps
        return peer, leader

    async def leader(self) -> PeerStatus | None:
        return (await self.statuses())[1]

    async def take_role(self) -> None:
        said = ""
        config = self._config()
        while not self._stopped():
            peer, leader = await self.statuses()
            decision = decide_start(
                StartFacts(
                    me=self._me.name,
                    kind=self._me.kind,
                    first_failover=config.failover_members[0].name,
                    peer=self._peer.name if self._peer else None,
                    arbiter=self._has_agent,
                    last_role=self._state_file.current().last_role,
                    epoch=self._role().epoch,
                    peer_status=peer,
                    leader=leader,
                )
            )
            self._transitions.note_reason(decision.reason)
            if decision.role is not StartRole.WAITING:
                await self._transitions.take_start_role(Role(decision.role.value), decision.reason)
                log.info("%s", self._describe())
                if decision.role is StartRole.PRIMARY:
                    self.watch_for_newer_primary()
                return
            if decision.reason != said:
                said = decision.reason
                self._event("waiting", decision.reason, "warning")
            await asyncio.sleep(0.5)

    def watch_for_newer_primary(self) -> None:
        """Without an arbiter, a primary steps down when it sees a newer one."""
        if not self._has_agent:
            self._spawn(self._watch())

    async def _watch(self) -> None:
        """Without an arbiter: step down when another member leads at a newer epoch.

        Another member leads at a newer epoch only after an operator promoted it
        (``promote --force``) while this member was unreachable from it; from
        the moment this member hears of it, it stops writing and rejoins as
        backup (its records the new primary never had are rolled back and kept).
        """
        while not self._stopped() and self._role().role is Role.PRIMARY:
            _, lead = await self.statuses()
            epoch = self._role().epoch
            if lead is not None and lead.epoch > epoch:
                reason = (
                    f"demoting myself: {lead.name} is primary at epoch {lead.epoch}, newer "
                    f"than my epoch {epoch}; I will rejoin as its backup"
                )
                self._transitions.note_reason(reason)
                self._event("demoted", reason, "warning")
                await self._transitions.stop_writes(deposed=True, primary=lead.name)
                await self._transitions.record_epoch(lead.epoch, lead.name)
                await self._transitions.follow_primary(lead.name, lead.epoch)
                return
            await asyncio.sleep(self._config().mirror.heartbeat_ms / 1000 * 2)
