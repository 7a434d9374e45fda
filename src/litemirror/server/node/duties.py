"""The storage side of the failover ports (``server/ha/ports.py``): what leading and
following do to the journal, the databases, the commit hub and the state file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path

import msgspec

from litemirror.journal import Journal, RecordKind
from litemirror.server.storage.horizon import Horizon
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.member_state import MemberState, save_state
from litemirror.server.storage.recovery import recover
from litemirror.server.storage.registry import Registry
from litemirror.server.stream.hub import Hub

log = logging.getLogger("litemirror.transitions")


class MemberDuties:
    """:class:`~litemirror.server.ha.ports.PrimaryDuties` over the journal, the
    databases and the hub."""

    def __init__(
        self,
        *,
        member: str,
        journal: Journal,
        writer: JournalWriter,
        registry: Registry,
        hub: Hub,
        executor: Executor,
        horizon: Horizon,
        databases: Callable[[], Sequence[str]],
        create_database: Callable[[str], Awaitable[int]],
    ) -> None:
        """``databases``: the configured databases a primary creates if missing."""
        self._member = member
        self._journal = journal
        self._jw = writer
        self._registry = registry
        self._hub = hub
        self._executor = executor
        self._horizon = horizon
        self._databases = databases
        self._create_database = create_database

    def journal_epoch(self) -> int:
        return self._journal.last_epoch

    async def apply_journal_tail(self) -> None:
        """Apply every journal record to the databases (this member's journal is the
        mirror's history from here on: it leads). Everything in it is committed
        once the member commits new records after it."""
        if self._horizon.seen >= self._journal.last_lsn:
            return
        await self.replay_journal(self._horizon.current())

    async def replay_journal(self, horizon: int) -> None:
        res = await asyncio.get_running_loop().run_in_executor(
            self._executor, recover, self._journal, self._registry, horizon
        )
        if res.replayed:
            log.info("applied %d journal record(s) before opening writes", res.replayed)
        # Every record now in the journal is in its database.
        self._horizon.applied_through(self._journal.last_lsn)

    async def append_epoch_marker(self, epoch: int) -> None:
        payload = msgspec.msgpack.encode({"epoch_start": epoch, "member": self._member})
        await self._jw.append(epoch, RecordKind.MARKER, "", payload)

    async def create_missing_databases(self) -> None:
        for name in self._databases():
            if not self._registry.exists(name):
                await self._create_database(name)

    def clear_abort(self) -> None:
        self._hub.clear_abort()

    async def set_backup_active(self, wait: bool, why: str) -> None:
        await self._hub.set_backup_active(wait, why)

    def hold(self) -> None:
        self._hub.hold()

    async def abort_waiters(self, error: Exception) -> None:
        await self._hub.abort_waiters(error)

    async def step_down(self, horizon: int) -> None:
        self._hub.drop_all()
        await self._registry.close_all()
        await self._jw.call(lambda _j: None)  # the journal writer is idle from here on
        await asyncio.get_running_loop().run_in_executor(
            self._executor,
            recover,
            self._journal,
            self._registry,
            horizon,
            self._hub.committed_lsn,
        )

    def abort_transactions(self, why: str) -> None:
        self._registry.abort_transactions(why)


class MemberStateFile:
    """:class:`~litemirror.server.ha.ports.StateFile`: the member state file, saved
    on a worker thread."""

    def __init__(self, data_dir: Path, state: MemberState, executor: Executor) -> None:
        self._dir = data_dir
        self._state = state
        self._executor = executor

    def current(self) -> MemberState:
        return self._state

    async def save(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._executor, save_state, self._dir, self._state
        )

    def save_now(self) -> None:
        """Save from this thread (at shutdown, after the loop's work is done)."""
        save_state(self._dir, self._state)
