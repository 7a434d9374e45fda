"""The Mirror Monitor: its page (package data beside this file) and the view it shows.

The page is served by one member but shows the whole mirror. ``GET /mirror``
builds that view here from :class:`~litemirror.server.ops.ports.HttpPorts`:
this member's own status is read through its status source; the other
members and the arbiter are asked over the control protocol
(:mod:`litemirror.client.control`, blocking, so in threads, in parallel), and
the members that run an HTTP server are asked for their recent events. A
member that does not answer is shown as down with the reason, never hidden.

With ``[tls]`` this member asks the others with its own certificate, which
they answer as they answer an admin: the view is complete, and
``http_api`` filters it for whoever is looking
(:mod:`litemirror.security.visibility`). Without ``[tls]`` a member with
``auth.require`` shows the others only what a load balancer may see (role,
state, epoch) and no events of theirs: there is nothing a member could prove
itself with.

Raw statuses differ by role (a primary knows every replica's lag, a replica
only its own), so :func:`member_row` turns each into one flat row with the
same keys, preferring what the primary measured.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

import aiohttp
import msgspec

from litemirror.client import control
from litemirror.config import Member
from litemirror.failover.readiness import failover_readiness
from litemirror.protocol import messages as m
from litemirror.server.ops.ports import Following, HttpPorts
from litemirror.server.ports import RoleView
from litemirror.server.role import Role

REPLICA_ROLES = (Role.BACKUP, Role.DR, Role.REPORTING)
#: How long a member's list of databases is reused before asking again.
DATABASES_TTL_S = 5.0
#: A /mirror answer is reused for this long, so many open pages cost one round.
VIEW_TTL_S = 0.5
HISTORY_POINTS = 300


def asset(name: str) -> bytes:
    """A file of the page (``monitor.html``, ``monitor.js``, ...), from the package."""
    return resources.files(__name__).joinpath(name).read_bytes()


def member_row(
    cfg: Member, st: dict[str, Any], primary: dict[str, Any] | None, lag_ms: float | None
) -> dict[str, Any]:
    """One member as the Monitor and ``status --watch`` show it."""
    role = str(st.get("role", "down"))
    rep = st.get("replication") or {}
    row: dict[str, Any] = {
        "member": cfg.name,
        "kind": cfg.kind,
        "address": cfg.address,
        "http": cfg.http,
        "role": role,
        "state": st.get("state", "unreachable"),
        "epoch": st.get("epoch"),
        "lsn": st.get("lsn"),
        "applied_lsn": rep.get("applied_lsn", st.get("lsn")),
        "lag_records": rep.get("lag_records"),
        "lag_seconds": None,
        "lag_bytes": None,
        "lag_ms": lag_ms,
        "last_contact_s": rep.get("last_contact_s"),
        "databases": st.get("databases"),
        "connections": st.get("connections"),
        "writable": st.get("writable", False),
        "reason": st.get("reason"),
        "error": st.get("error"),
        "uptime_s": st.get("uptime_s"),
    }
    if role == "primary":
        row.update(lag_records=0, lag_seconds=0.0, lag_bytes=0, lag_ms=0.0, applied_lsn=st["lsn"])
    elif primary is not None:
        for link in primary.get("replicas") or []:
            if link.get("member") == cfg.name:
                lag = link.get("lag") or {}
                row.update(
                    applied_lsn=link.get("applied_lsn"),
                    lag_records=lag.get("records"),
                    lag_seconds=lag.get("seconds"),
                    lag_bytes=lag.get("bytes"),
                    link_state=link.get("state"),
                    seed_progress=link.get("seed_progress"),
                )
    return row


class LagTracker:
    """How stale a replica's data may be, in milliseconds.

    A replica that has applied all the primary announced was up to date as
    of its last contact with the primary, so its staleness is the time since
    that contact (heartbeats keep it under ``heartbeat_ms`` while streaming).
    A replica that is behind has been stale since it was last caught up.
    """

    def __init__(
        self,
        role: RoleView,
        following: Callable[[], Following | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.role = role
        self.following = following
        self.clock = clock
        self.caught_up_at = clock()

    def lag_ms(self) -> float | None:
        now = self.clock()
        if self.role().role is Role.PRIMARY:
            # Up to date by definition; a primary that becomes a replica
            # counts its staleness from the moment it stopped leading.
            self.caught_up_at = now
            return 0.0
        rs = self.following()
        if rs is None:
            return None
        if rs.lag_records == 0 and rs.last_contact_s is not None:
            self.caught_up_at = now - rs.last_contact_s
        return round((now - self.caught_up_at) * 1000, 1)


class MirrorView:
    """Builds (and briefly caches) the mirror-wide view behind ``GET /mirror``."""

    def __init__(self, ports: HttpPorts, lag: LagTracker) -> None:
        self.p = ports
        self.lag = lag
        #: Lag samples as this member sees them: replica -> [[unix_ts, lag_ms, records]].
        self.history: dict[str, deque[list[float]]] = {}
        self._dbs: dict[str, tuple[float, list[str] | None]] = {}
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    def sample(self) -> None:
        """Record one point of lag history (called every second)."""
        p = self.p
        ts = round(time.time(), 3)
        points: dict[str, tuple[float, float]] = {}
        following = p.following()
        if p.role().role is Role.PRIMARY:
            for rep in p.replicas(int(ts * 1000)):
                points[rep.member] = (float(rep.lag_seconds) * 1000, float(rep.lag_records))
        elif following is not None:
            # Caught up counts as no lag here; the staleness bound is for /replica.
            behind = float(following.lag_records)
            own = (self.lag.lag_ms() or 0.0) if behind else 0.0
            points[p.me.name] = (own, behind)
        for name, (ms, records) in points.items():
            series = self.history.setdefault(name, deque(maxlen=HISTORY_POINTS))
            series.append([ts, round(ms, 1), records])

    async def get(self) -> dict[str, Any]:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < VIEW_TTL_S:
                return self._cached[1]
            view = await self._build()
            self._cached = (time.monotonic(), view)
            return view

    @property
    def _tls(self) -> ssl.SSLContext | None:
        """The context that presents this member's certificate (None without [tls])."""
        return self.p.tls.client if self.p.tls is not None else None

    async def _databases(self, mb: Member, reachable: bool) -> list[str] | None:
        if mb.name == self.p.me.name:
            return self.p.databases.names()
        if not reachable:
            self._dbs.pop(mb.name, None)
            return None
        at, names = self._dbs.get(mb.name, (0.0, None))
        if time.monotonic() - at > DATABASES_TTL_S:
            try:
                info = await asyncio.to_thread(
                    control.call,
                    mb.host,
                    mb.port,
                    m.AdminRequest(id=1, action="databases", args={}),
                    timeout=1.0,
                    context=self._tls,
                )
                names = [str(x) for x in info.get("databases", [])]
            except Exception:
                names = None
            self._dbs[mb.name] = (time.monotonic(), names)
        return names

    async def _events(self, session: aiohttp.ClientSession, mb: Member) -> list[dict[str, Any]]:
        if mb.name == self.p.me.name:
            return [msgspec.to_builtins(ev) for ev in list(self.p.recent_events())[-50:]]
        if mb.http is None:
            return []
        scheme = "https" if self._tls is not None else "http"
        try:
            async with session.get(
                f"{scheme}://{mb.http}/events?limit=50", ssl=self._tls or True
            ) as resp:
                if resp.status != 200:
                    return []
                body = await resp.json()
                return list(body.get("events", []))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return []

    async def _build(self) -> dict[str, Any]:
        p = self.p
        cfg = p.config()
        me = p.me.name
        others = [mb for mb in cfg.members if mb.name != me]
        asked = [
            asyncio.to_thread(control.member_status, mb, 1.0, context=self._tls) for mb in others
        ]
        arbiter = (
            asyncio.to_thread(control.arbiter_status, cfg.mirror.arbiter, 1.0)
            if cfg.mirror.arbiter is not None
            else None
        )
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            answers = await asyncio.gather(
                *asked,
                *(self._events(session, mb) for mb in cfg.members),
                *([arbiter] if arbiter is not None else []),
            )
        statuses = {me: p.status.status()}
        statuses.update({mb.name: st for mb, st in zip(others, answers, strict=False)})
        event_lists = answers[len(others) : len(others) + len(cfg.members)]
        arb = answers[-1] if arbiter is not None else None

        primary = next((st for st in statuses.values() if st.get("role") == "primary"), None)
        rows = []
        for mb in cfg.members:
            st = statuses[mb.name]
            own_lag = self.lag.lag_ms() if mb.name == me else None
            rows.append(member_row(mb, st, primary, own_lag))
        held: dict[str, list[str] | None] = {}
        for mb in cfg.members:
            reachable = statuses[mb.name].get("role") != "down"
            held[mb.name] = await self._databases(mb, reachable)
        databases = []
        for db in sorted({db for lst in held.values() for db in lst or []}):
            per = {
                name: "unknown" if lst is None else "present" if db in lst else "missing"
                for name, lst in held.items()
            }
            if p.importing(db):
                per[me] = "importing"
            databases.append({"name": db, "members": per})
        events = sorted(
            (ev for lst in event_lists for ev in lst), key=lambda ev: float(ev.get("ts", 0))
        )
        fo = (primary or statuses[me]).get("failover") or statuses[me].get("failover")
        decision = None
        if fo and fo.get("decisions"):
            decision = fo["decisions"][-1]
        elif primary is not None:
            decision = primary.get("reason")
        mode = None
        if cfg.mirror.arbiter is not None:
            ready, sentence = failover_readiness(
                {"members": list(statuses.values()), "arbiter": arb or {}}
            )
            mode = {"ready": ready, "sentence": sentence}
        return {
            "mirror": cfg.mirror.name,
            "via": me,
            "failover_mode": mode,
            "generated_at": round(time.time(), 3),
            "primary": primary.get("member") if primary else None,
            "writable": bool(primary and primary.get("writable")),
            "epoch": max((int(st.get("epoch") or 0) for st in statuses.values()), default=0),
            "failover": fo,
            "decision": decision,
            "arbiter": arb,
            "members": rows,
            "databases": databases,
            "events": events[-60:],
            "lag_history": {
                "seen_by": me,
                "series": {k: list(v) for k, v in self.history.items()},
            },
        }
