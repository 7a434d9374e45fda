"""The taking side of scheduled backups: once per slot, then ``keep``.

The primary owns the schedule (:mod:`litemirror.server.node.backup_scheduler`)
and asks the member that takes a scheduled backup with the ``backup_scheduled``
admin action, giving the slot (the time the backup was due) and ``keep``.
This member first looks for a set of its own taken at or after the slot: if
there is one, the backup was taken already (a new primary repeats the request
of one that died while the backup ran) and that set is the answer. Otherwise it
takes the backup with :class:`~.backups.BackupTaker`. Then it deletes what
``keep`` says (:func:`litemirror.backup.schedule.to_prune`). One scheduled
request runs at a time on a member (a lock), so the check and the backup are
one step.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from litemirror.backup import schedule as sc
from litemirror.errors import ProgrammingError
from litemirror.server.ports import EventSink
from litemirror.server.storage.backups import BackupTaker, list_sets, resolve_target
from litemirror.server.storage.drills import BackupDrill

log = logging.getLogger("litemirror.member")


def remove_sets(target: Path, names: list[str]) -> list[str]:
    """Delete the named sets under ``target``; the names actually removed."""
    removed = []
    for name in names:
        p = target / name
        if p.parent != target or not p.is_dir():
            continue
        shutil.rmtree(p)
        removed.append(name)
    return removed


class ScheduledBackups:
    """The ``backup``, ``backup_list``, ``backup_scheduled`` and ``backup_verify`` admin
    actions of a member."""

    def __init__(
        self,
        *,
        taker: BackupTaker,
        read_executor: Executor,
        event: EventSink,
        drill: BackupDrill | None = None,
    ) -> None:
        self.taker = taker
        self.drill = drill
        self.read_executor = read_executor
        self.event = event
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Future[dict[str, Any]]] = set()

    async def take(self, dbs: list[str] | None, to: str | None) -> dict[str, Any]:
        return await self.taker.take(dbs, to)

    async def list_sets(self, to: str | None) -> dict[str, Any]:
        return await self.taker.list_sets(to)

    async def verify(self, set_dir: str | None) -> dict[str, Any]:
        """A restore drill of ``set_dir`` (None: the newest verified set)."""
        if self.drill is None:
            raise ProgrammingError(f"member {self.taker.member} runs no restore drills")
        return await self.drill.verify(set_dir)

    async def take_scheduled(self, slot: float, keep: int) -> dict[str, Any]:
        """The scheduled backup due at ``slot``, taken once; then ``keep`` applied.

        Shielded: a caller that goes away (the primary that asked was killed)
        does not stop the backup half-way, and the next request for the slot
        waits for it and is answered with its set.
        """
        task = asyncio.ensure_future(self._take_scheduled(slot, keep))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _take_scheduled(self, slot: float, keep: int) -> dict[str, Any]:
        target = resolve_target(self.taker.root, None, self.taker.member) / self.taker.mirror
        loop = asyncio.get_running_loop()
        async with self._lock:
            sets = await loop.run_in_executor(self.read_executor, list_sets, target)
            done = sc.already_taken(sets, slot)
            if done is not None:
                result = {**done, "already_taken": True}
            else:
                result = {**await self.taker.take(None, None), "already_taken": False}
                sets = await loop.run_in_executor(self.read_executor, list_sets, target)
            doomed = sc.to_prune(sets, keep)
            removed: list[str] = []
            if doomed:
                try:
                    removed = await loop.run_in_executor(
                        self.read_executor, remove_sets, target, doomed
                    )
                except OSError as exc:
                    self.event(
                        "backup_prune_failed",
                        f"member {self.taker.member} could not delete old backup sets in "
                        f"{str(target)!r} (keep = {keep}): {exc}; they stay until the next "
                        "scheduled backup tries again",
                        "warning",
                    )
                if removed:
                    log.info("backup keep = %d: removed %s", keep, ", ".join(removed))
        return {**result, "pruned": removed}
