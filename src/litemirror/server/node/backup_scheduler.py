"""Scheduled backups: the primary runs the schedule, the chosen member takes the backup.

Exactly one member runs the schedule at a time: the primary (a mirror has one;
a new primary takes the schedule over after a failover, a demoted one drops
it). When the next backup may be due, it asks every member it reaches for the
mirror's backup sets (``backup_list``; its own directly) and computes the due
time from the newest (:func:`litemirror.backup.schedule.next_due`), so a new
primary goes on from the sets the old one had made, without repeating one.
When due, it picks the member (``[backup] at``, from its own status: a
caught-up standby by default) and asks it to take the backup of that slot
(``backup_scheduled``). That member takes it only if it holds no set taken at
or after the slot (:mod:`litemirror.server.storage.scheduled_backups`): a
request repeated by a new primary after the old one died mid-backup gives no
second set. A request that fails is tried again after ``retry_s``.

It runs as a background task of the member; every call to another member runs
on a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from litemirror.backup import schedule as sc
from litemirror.config import BackupSection, Member
from litemirror.errors import Error
from litemirror.server.ports import EventSink
from litemirror.server.storage.scheduled_backups import ScheduledBackups

log = logging.getLogger("litemirror.member")

#: Calls ``action`` with ``args`` on another member (admin, over the control path).
CallMember = Callable[[Member, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class BackupScheduler:
    """Runs ``[backup] every``/``cron`` while this member is primary."""

    def __init__(
        self,
        *,
        settings: BackupSection,
        me: Member,
        members: Callable[[], tuple[Member, ...]],
        is_primary: Callable[[], bool],
        primary_status: Callable[[], dict[str, Any]],
        local: ScheduledBackups,
        call_member: CallMember,
        event: EventSink,
        clock: Callable[[], float] = time.time,
        retry_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.every_s = settings.every_s
        self.me = me
        self.members = members
        self.is_primary = is_primary
        self.primary_status = primary_status
        self.local = local
        self.call_member = call_member
        self.event = event
        self.clock = clock
        self.retry_s = min(retry_s, self.every_s) if self.every_s else retry_s
        self._since: float | None = None  # when this member took the schedule over
        self._check_at: float | None = None  # no need to look before this time
        self.next_due: float | None = None
        self.last_good: dict[str, Any] | None = None
        self.last_result: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                await self.tick()
            except Exception:  # the schedule must outlive one bad pass
                log.exception("backup schedule pass failed")

    async def tick(self) -> None:
        """One look: drop or take the schedule, and take the backup when it is due."""
        if not self.is_primary():
            if self._since is not None:
                log.info("backup schedule: member %s is no longer primary; dropped", self.me.name)
            # What this member knew as primary goes stale now: the new primary shows it.
            self._since = self._check_at = self.next_due = None
            self.last_good = self.last_result = None
            return
        now = self.clock()
        if self._since is None:
            self._since = now
            log.info("backup schedule: member %s (primary) runs it", self.me.name)
        if self._check_at is not None and now < self._check_at:
            return
        sets = await self._all_sets()
        good = sc.newest_verified(sets)
        if good is not None:
            self.last_good = good
        due = sc.next_due(
            every_s=self.every_s,
            cron=self.settings.cron,
            newest=sc.newest_taken(sets),
            since=self._since,
        )
        self.next_due = due
        if now < due:
            self._check_at = due
            return
        taker, reason = sc.choose_taker(self.settings.at, self.primary_status())
        log.info("scheduled backup due at %.3f: %s", due, reason)
        try:
            if taker == self.me.name:
                result = await self.local.take_scheduled(due, self.settings.keep)
            else:
                target = next((mb for mb in self.members() if mb.name == taker), None)
                if target is None:
                    raise Error(f"member {taker} is not in the config")
                result = await self.call_member(
                    target, "backup_scheduled", {"slot": due, "keep": self.settings.keep}
                )
        except (Error, OSError) as exc:
            msg = getattr(exc, "message", None) or str(exc)
            self.last_error, self.last_error_at = f"{taker}: {msg}", now
            self._check_at = now + self.retry_s
            self.event(
                "backup_schedule_failed",
                f"the scheduled backup due at {_utc(due)} could not be taken on member "
                f"{taker}: {msg}; trying again in {self.retry_s:g} s",
                "error",
                member=taker,
            )
            return
        self.last_result = {
            "member": taker,
            "set": result.get("set"),
            "status": result.get("status"),
            "taken_at": result.get("taken_at"),
            "already_taken": result.get("already_taken"),
            "pruned": result.get("pruned", []),
        }
        if result.get("status") == "verified":
            self.last_good = result
        self._check_at = None  # the next pass computes the next due time from the sets

    async def _all_sets(self) -> list[dict[str, Any]]:
        """Every readable set of the mirror on the members that answer (self included)."""
        found: list[dict[str, Any]] = list((await self.local.list_sets(None))["sets"])
        others = [mb for mb in self.members() if mb.name != self.me.name]
        answers = await asyncio.gather(
            *(self.call_member(mb, "backup_list", {}) for mb in others), return_exceptions=True
        )
        for ans in answers:
            if isinstance(ans, dict):
                found.extend(ans.get("sets") or [])
        return found

    def status(self) -> dict[str, Any]:
        """The ``backup_schedule`` block of the status."""
        now = self.clock()
        good = self.last_good
        good_at = None if good is None else good.get("finished_at") or good.get("taken_at")
        return {
            "every": self.settings.every,
            "cron": self.settings.cron,
            "keep": self.settings.keep,
            "at": self.settings.at,
            "runs_here": self._since is not None,
            "next_due": self.next_due,
            "last_good": None
            if good is None
            else {"set": good.get("set"), "member": good.get("member"), "finished_at": good_at},
            "last_good_age_s": None if good_at is None else round(now - float(good_at), 3),
            "last_result": self.last_result,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class BackupScheduleCollector(Collector):
    """``litemirror_backup_last_success_timestamp_seconds`` and the next due time.

    Shown by the member that runs the schedule (the primary): it knows the
    mirror's sets on every member it reaches.
    """

    def __init__(self, member: str, scheduler: BackupScheduler) -> None:
        self.member = member
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        st = self.scheduler.status()
        last = GaugeMetricFamily(
            "litemirror_backup_last_success_timestamp_seconds",
            "When the newest verified backup set of the mirror was finished (unix seconds).",
            labels=["member"],
        )
        due = GaugeMetricFamily(
            "litemirror_backup_next_due_timestamp_seconds",
            "When the next scheduled backup is due (unix seconds).",
            labels=["member"],
        )
        if st["runs_here"] and st["last_good"] is not None:
            last.add_metric([self.member], float(st["last_good"]["finished_at"]))
        if st["runs_here"] and st["next_due"] is not None:
            due.add_metric([self.member], float(st["next_due"]))
        yield last
        yield due


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
