"""Canary writes: a heartbeat through the whole pipeline, so a stall shows when idle.

Theory of operation
-------------------
Every ``canary.interval_s`` the primary appends a ``MARKER`` journal record
with payload ``{"canary": ts}`` (``ts``: the primary's wall clock) and waits
for it exactly like a commit waits (``append_marker`` then
``wait_replicated``, :class:`~.ports.CanaryPorts`): the journal fsync, the
stream to the backup and its acknowledgement. When that returns the primary
counts the canary as applied by itself. Replicas count it when their receiver
applies the record, in journal order (:meth:`Canary.marker_applied`, given
to the receiver as its ``marker_applied`` port).

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
from collections import deque
from collections.abc import Iterator
from typing import Any

import msgspec
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from litemirror.config import CanarySection
from litemirror.errors import Error
from litemirror.server.ops.notify import Notifier
from litemirror.server.ops.ports import CanaryPorts
from litemirror.server.role import Role

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


class _Episode:
    """Stale/recovered state of one member's canary, so each episode is told once."""

    def __init__(self) -> None:
        self.stale = False


class Canary:
    def __init__(self, config: CanarySection, ports: CanaryPorts) -> None:
        self.cfg = config
        self.p = ports
        #: Wall-clock time (the primary's) of the newest canary applied here.
        self.last_ts: float | None = None
        self.written = 0
        self._since = ports.wall_clock()
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
        self._since = self.p.wall_clock()
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

    def marker_applied(self, payload: bytes) -> None:
        """A replica applied a MARKER record (any thread): note it when it is a canary."""
        ts = decode_canary(payload)
        if ts is not None:
            self.note(ts)

    # ------------------------------------------------------------- ages

    def age_s(self, now: float | None = None) -> float | None:
        """Seconds since the newest canary this member applied; None before the first."""
        if self.last_ts is None:
            return None
        return max(0.0, (now or self.p.wall_clock()) - self.last_ts)

    def replica_ages(self, now: float | None = None) -> dict[str, float | None]:
        """On the primary: each replica's canary age, from the LSN it acknowledged applied."""
        if self.p.role().role is not Role.PRIMARY:
            return {}
        now = now or self.p.wall_clock()
        out: dict[str, float | None] = {}
        for member, applied in dict(self.p.applied_by_replica()).items():
            ts = None
            for lsn, when in reversed(self._recent):
                if lsn <= applied:
                    ts = when
                    break
            out[member] = None if ts is None else round(max(0.0, now - ts), 3)
        return out

    def status(self) -> dict[str, Any]:
        age = self.age_s()
        out: dict[str, Any] = {"canary_age_s": None if age is None else round(age, 3)}
        if self.enabled and self.p.role().role is Role.PRIMARY:
            out["canary_replica_age_s"] = self.replica_ages()
        return out

    # ------------------------------------------------------------ loops

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.interval_s)
            await self.write_once()

    async def write_once(self) -> bool:
        """Write one canary and wait for it as a commit waits; False when not written."""
        # Checked with no await before the append, which is given the epoch of
        # this same snapshot: a demoted member must not journal at its old epoch.
        now = self.p.role()
        if now.role is not Role.PRIMARY or not now.writable:
            return False
        ts = round(self.p.wall_clock(), 3)
        try:
            lsn = await self.p.append_marker(now.epoch, msgspec.msgpack.encode({"canary": ts}))
            self._recent.append((lsn, ts))
            await self.p.wait_replicated(lsn)
        except Error as exc:
            log.info("canary at %.3f not completed: %s", ts, exc.message)
            return False
        self.written += 1
        self.note(ts)
        return True

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
        now = now or self.p.wall_clock()
        own = self.p.member
        ref = self.last_ts if self.last_ts is not None else self._since
        self._judge(own, now - ref, "")
        if self.p.role().role is Role.PRIMARY:
            for name, age in self.replica_ages(now).items():
                if age is not None:
                    self._judge(name, age, f" (seen from primary {own})")

    def _judge(self, who: str, age: float, where: str) -> None:
        ep = self._episodes.setdefault(who, _Episode())
        limit = self.cfg.stale_after_s
        if age > limit and not ep.stale:
            ep.stale = True
            self.p.event(
                "canary_stale",
                f"member {who} has applied no canary for {age:.1f} s (limit {limit:g} s){where}; "
                "the replication pipeline is stalled or the primary cannot write",
                "warning",
                of=who,
                age_s=round(age, 3),
            )
        elif age <= limit and ep.stale:
            ep.stale = False
            self.p.event(
                "canary_recovered",
                f"member {who} applies canaries again (age {age:.1f} s){where}",
                of=who,
                age_s=round(age, 3),
            )


class CanaryCollector(Collector):
    """``litemirror_canary_age_seconds{member,of}``: this member's age, and on the primary
    each replica's."""

    def __init__(self, canary: Canary) -> None:
        self.canary = canary

    def collect(self) -> Iterator[Metric]:
        canary = self.canary
        g = GaugeMetricFamily(
            "litemirror_canary_age_seconds",
            "Seconds since the newest canary write applied (of=this member, or a replica "
            "as seen from the primary).",
            labels=["member", "of"],
        )
        if canary.enabled:
            name = canary.p.member
            age = canary.age_s()
            if age is not None:
                g.add_metric([name, name], age)
            for replica, rage in canary.replica_ages().items():
                if rage is not None:
                    g.add_metric([name, replica], rage)
        yield g


def status_fields(canary: Canary, notifier: Notifier) -> dict[str, Any]:
    """Keys the member's status adds: canary ages and notification counters."""
    out: dict[str, Any] = {"canary_age_s": None}
    out.update(canary.status())
    if notifier.channels:
        out["notify"] = notifier.stats()
    return out
