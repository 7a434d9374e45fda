"""Once a second: save the horizon and commit point, close idle databases, flush
the event log, start a journal archive pass, and delete journal segments nobody
needs any more (and, with an archive, that are archived).

Which segments may go is the pure :func:`litemirror.replication.purge.plan_purge`;
this shell gathers its inputs (what every other member holds, as the primary
knows it; what this member applied) and deletes through the journal's one
writer (the journal writer thread while leading, the receiver's while
following).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from litemirror.config import Config, Member
from litemirror.errors import Error
from litemirror.journal import Journal
from litemirror.replication.purge import plan_purge
from litemirror.server.ha.ports import StateFile
from litemirror.server.node.position import Position
from litemirror.server.ops.event_log import EventLog
from litemirror.server.ports import RoleView
from litemirror.server.role import Role
from litemirror.server.storage.archiver import Archiver
from litemirror.server.storage.horizon import Horizon

log = logging.getLogger("litemirror.member")

#: Roles in which the journal may be purged (not while starting or deciding).
_PURGING = (Role.PRIMARY, Role.BACKUP, Role.DR, Role.REPORTING)


class Housekeeping:
    def __init__(
        self,
        *,
        me: Member,
        config: Callable[[], Config],
        role: RoleView,
        journal: Journal,
        horizon: Horizon,
        position: Position,
        state_file: StateFile,
        sweep: Callable[[], Awaitable[None]],
        events: EventLog,
        durable_elsewhere: Callable[[str], int],
        purge_with_writer: Callable[[int], Awaitable[Any]],
        purge_with_receiver: Callable[[], Executor | None],
        archiver: Archiver | None = None,
    ) -> None:
        """``durable_elsewhere(member)``: the LSN the primary knows ``member`` holds;
        ``purge_with_writer(lsn)``: delete segments below ``lsn`` on the journal
        writer; ``purge_with_receiver()``: the receiver's journal thread while
        following (the journal's writer then), else None; ``archiver``: the journal
        archive (``[archive]``), whose passes start here and which the purge waits for."""
        self._me = me
        self._config = config
        self._role = role
        self._journal = journal
        self._horizon = horizon
        self._position = position
        self._state_file = state_file
        self._sweep = sweep
        self._events = events
        self._durable_elsewhere = durable_elsewhere
        self._purge_with_writer = purge_with_writer
        self._purge_with_receiver = purge_with_receiver
        self._archiver = archiver

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
            await self.once()

    async def once(self) -> None:
        h = self._horizon.current()
        c = self._position.confirmed_lsn()
        st = self._state_file.current()
        if h != self._horizon.saved or c != st.confirmed:
            self._horizon.saved = h
            st.horizon = h
            st.confirmed = c
            try:
                await self._state_file.save()
            except OSError as exc:
                log.warning("could not save member state: %s", exc)
        await self._sweep()
        self._events.flush()
        if self._archiver is not None:
            self._archiver.poke()  # a pass on the archiver's thread, unless one runs
        try:
            await self._purge_journal()
        except Error as exc:
            log.warning("journal purge failed: %s", exc.message)

    def purge_plan(self) -> int:
        """The LSN below which closed journal segments may be deleted (0: none)."""
        return plan_purge(
            self._journal.segments(),
            primary=self._role().role is Role.PRIMARY,
            others_durable=[
                self._durable_elsewhere(mb.name)
                for mb in self._config().members
                if mb.name != self._me.name
            ],
            last_lsn=self._journal.last_lsn,
            applied_lsn=self._position.applied_lsn,
            limit_bytes=self._config().journal.max_retain_bytes,
            archived_lsn=None if self._archiver is None else self._archiver.archived_lsn(),
        )

    async def _purge_journal(self) -> None:
        if self._role().role not in _PURGING:
            return
        keep_from = self.purge_plan()
        if keep_from <= (self._journal.first_lsn or 0):
            return
        thread = self._purge_with_receiver()
        if thread is not None:
            removed = await asyncio.get_running_loop().run_in_executor(
                thread, self._journal.purge_before, keep_from
            )
        else:
            removed = await self._purge_with_writer(keep_from)
        if removed:
            self._events.emit(
                "journal_purged", f"purged {len(removed)} journal segment(s) below LSN {keep_from}"
            )
