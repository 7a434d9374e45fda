"""The member's answers to the failover ports (``server/ha/ports.py``).

Storage, the commit hub and the member state file are opened in
``MemberServer.start``; these adapters reach them through the member at call
time, which is always after start (the failover agent and the start decision
run only then).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from litemirror.journal import RecordKind
from litemirror.server.storage.member_state import MemberState, save_state
from litemirror.server.storage.recovery import recover

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer

log = logging.getLogger("litemirror.transitions")


class MemberDuties:
    """:class:`~litemirror.server.ha.ports.PrimaryDuties` over the member's journal,
    databases and hub."""

    def __init__(self, member: MemberServer) -> None:
        self.m = member

    def journal_epoch(self) -> int:
        return self.m.journal.last_epoch

    async def apply_journal_tail(self) -> None:
        await self.m.apply_journal_tail()

    async def replay_journal(self, horizon: int) -> None:
        m = self.m
        res = await asyncio.get_running_loop().run_in_executor(
            m.executor, recover, m.journal, m.registry, horizon
        )
        if res.replayed:
            log.info("applied %d journal record(s) before opening writes", res.replayed)
        # Every record now in the journal is in its database.
        m._seen_lsn = max(m._seen_lsn, m.journal.last_lsn)

    async def append_epoch_marker(self, epoch: int) -> None:
        payload = msgspec.msgpack.encode({"epoch_start": epoch, "member": self.m.me.name})
        await self.m.jw.append(epoch, RecordKind.MARKER, "", payload)

    async def create_missing_databases(self) -> None:
        for name in self.m.config.mirror.databases:
            if not self.m.registry.exists(name):
                await self.m.create_database(name)

    def clear_abort(self) -> None:
        self.m.hub.clear_abort()

    async def set_backup_active(self, wait: bool, why: str) -> None:
        await self.m.hub.set_backup_active(wait, why)

    def hold(self) -> None:
        self.m.hub.hold()

    async def abort_waiters(self, error: Exception) -> None:
        await self.m.hub.abort_waiters(error)

    async def step_down(self, horizon: int) -> None:
        m = self.m
        m.hub.drop_all()
        await m.registry.close_all()
        await m.jw.call(lambda _j: None)  # the journal writer is idle from here on
        await asyncio.get_running_loop().run_in_executor(
            m.executor, recover, m.journal, m.registry, horizon, m.hub.committed_lsn
        )

    def abort_transactions(self, why: str) -> None:
        self.m.registry.abort_transactions(why)


class MemberStateFile:
    """:class:`~litemirror.server.ha.ports.StateFile` over the member's state file."""

    def __init__(self, member: MemberServer) -> None:
        self.m = member

    def current(self) -> MemberState:
        return self.m.state_file

    async def save(self) -> None:
        m = self.m
        await asyncio.get_running_loop().run_in_executor(
            m.executor, save_state, m.me.data_dir, m.state_file
        )
