"""Canary writes: a heartbeat through the whole pipeline, so a stall shows when idle.

Theory of operation
-------------------
Every ``canary.interval_s`` the primary appends a ``MARKER`` journal record
with payload ``{"canary": ts}`` (``ts``: the primary's wall clock) and waits
for it exactly like a commit waits (``hub.wait_for(lsn, mirror.ack)``): the
journal fsync, the stream to the backup and its acknowledgement. When that
returns the primary counts the canary as applied by itself. Replicas count
it when their receiver applies the record, in journal order
(:func:`canary_applied`, called from ``Receiver._apply_one``).

The *canary age* of a member is ``now - ts`` of the newest canary it
applied. The primary also knows every replica's age without asking it: it
remembers the LSN and time of its recent canaries and the LSN each replica
acknowledged as applied, so a replica that is frozen (SIGSTOP, a hung disk)
still shows a growing age on the primary.

Each member watches its own age, and the primary each replica's. Past
``canary.stale_after_s`` it emits ``canary_stale`` (warning) once per
episode and ``canary_recovered`` when a fresh canary arrives. Before the
first canary, the age counts from when the watch started, so a member that
never receives one goes stale too.

Ages across hosts compare wall clocks; keep members' clocks synchronised
(NTP) or read the primary's view of the replicas, which uses one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from litemirror.errors import Error
from litemirror.journal import RecordKind

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer

log = logging.getLogger("litemirror.canary")

#: Recent canaries the primary remembers to date replicas' progress.
KEEP = 512


def decode_canary(payload: bytes) -> float | None:
    """The timestamp of a canary MARKER payload; None for any other marker."""
    try:
        obj = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError:
        return None
    if isinstance(obj, dict):
        ts = obj.get("canary")
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            return float(ts)
    return None


def canary_applied(member: MemberServer, payload: bytes) -> None:
    """A replica applied a MARKER record (any thread): note it when it is a canary."""
    canary: Canary | None = getattr(member, "canary", None)
    ts = decode_canary(payload)
    if canary is not None and ts is not None:
        canary.note(ts)


class _Episode:
    """Stale/recovered state of one member's canary, so each episode is told once."""

    def __init__(self) -> None:
        self.stale = False


class Canary:
    def __init__(self, member: MemberServer) -> None:
        self.m = member
        self.cfg = member.config.canary
        #: Wall-clock time (the primary's) of the newest canary applied here.
        self.last_ts: float | None = None
        self.written = 0
        self._since = time.time()
        self._recent: deque[tuple[int, float]] = deque(maxlen=KEEP)
        self._episodes: dict[str, _Episode] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def enabled(self) -> bool:
        return self.cfg.interval_s > 0

    def start(self) -> None:
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        self._since = time.time()
        self._tasks = [loop.create_task(self._write_loop()), loop.create_task(self._watch_loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def note(self, ts: float) -> None:
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    # ------------------------------------------------------------- ages

    def age_s(self, now: float | None = None) -> float | None:
        """Seconds since the newest canary this member applied; None before the first."""
        if self.last_ts is None:
            return None
        return max(0.0, (now or time.time()) - self.last_ts)

    def replica_ages(self, now: float | None = None) -> dict[str, float | None]:
        """On the primary: each replica's canary age, from the LSN it acknowledged applied."""
        if self.m.role != "primary":
            return {}
        now = now or time.time()
        out: dict[str, float | None] = {}
        for link in list(self.m.hub.links.values()):
            ts = None
            for lsn, when in reversed(self._recent):
                if lsn <= link.applied:
                    ts = when
                    break
            out[link.member] = None if ts is None else round(max(0.0, now - ts), 3)
        return out

    def status(self) -> dict[str, Any]:
        age = self.age_s()
        out: dict[str, Any] = {"canary_age_s": None if age is None else round(age, 3)}
        if self.enabled and self.m.role == "primary":
            out["canary_replica_age_s"] = self.replica_ages()
        return out

    # ------------------------------------------------------------ loops

    async def _write_loop(self) -> None:
        m = self.m
        interval = self.cfg.interval_s
        while True:
            await asyncio.sleep(interval)
            # Checked with no await before the append: a demoted member must
            # not journal at its old epoch.
            if m.role != "primary" or not m.writable:
                continue
            ts = round(time.time(), 3)
            try:
                rec = await m.jw.append(
                    m.epoch, RecordKind.MARKER, "", msgspec.msgpack.encode({"canary": ts})
                )
                self._recent.append((rec.lsn, ts))
                await m.hub.wait_for(rec.lsn, m.config.mirror.ack)
            except Error as exc:
                log.info("canary at %.3f not completed: %s", ts, exc.message)
                continue
            self.written += 1
            self.note(ts)

    async def _watch_loop(self) -> None:
        step = min(self.cfg.interval_s, 1.0)
        while True:
            await asyncio.sleep(step)
            try:
                self.check()
            except Exception:
                log.exception("canary check failed")

    def check(self, now: float | None = None) -> None:
        """Emit ``canary_stale`` / ``canary_recovered`` for this member and (primary) replicas."""
        now = now or time.time()
        own = self.m.me.name
        ref = self.last_ts if self.last_ts is not None else self._since
        self._judge(own, now - ref, "")
        if self.m.role == "primary":
            for name, age in self.replica_ages(now).items():
                if age is not None:
                    self._judge(name, age, f" (seen from primary {own})")

    def _judge(self, who: str, age: float, where: str) -> None:
        ep = self._episodes.setdefault(who, _Episode())
        limit = self.cfg.stale_after_s
        if age > limit and not ep.stale:
            ep.stale = True
            self.m.event(
                "canary_stale",
                f"member {who} has applied no canary for {age:.1f} s (limit {limit:g} s){where}; "
                "the replication pipeline is stalled or the primary cannot write",
                "warning",
                of=who,
                age_s=round(age, 3),
            )
        elif age <= limit and ep.stale:
            ep.stale = False
            self.m.event(
                "canary_recovered",
                f"member {who} applies canaries again (age {age:.1f} s){where}",
                of=who,
                age_s=round(age, 3),
            )


class CanaryCollector(Collector):
    """``litemirror_canary_age_seconds{member,of}``: this member's age, and on the primary
    each replica's."""

    def __init__(self, member: MemberServer) -> None:
        self.m = member

    def collect(self) -> Iterator[Metric]:
        canary: Canary | None = getattr(self.m, "canary", None)
        g = GaugeMetricFamily(
            "litemirror_canary_age_seconds",
            "Seconds since the newest canary write applied (of=this member, or a replica "
            "as seen from the primary).",
            labels=["member", "of"],
        )
        if canary is not None and canary.enabled:
            name = self.m.me.name
            age = canary.age_s()
            if age is not None:
                g.add_metric([name, name], age)
            for replica, rage in canary.replica_ages().items():
                if rage is not None:
                    g.add_metric([name, replica], rage)
        yield g


def status_fields(member: MemberServer) -> dict[str, Any]:
    """Keys :meth:`MemberServer.status` adds: canary ages and notification counters."""
    out: dict[str, Any] = {"canary_age_s": None}
    canary: Canary | None = getattr(member, "canary", None)
    if canary is not None:
        out.update(canary.status())
    notifier = getattr(member, "notifier", None)
    if notifier is not None and notifier.channels:
        out["notify"] = notifier.stats()
    return out
