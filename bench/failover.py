"""Failover figures: kill -9 of the primary to the first acknowledged write, and switchover.

Theory of operation (litemirror):

1. One mirror for all trials: members ``a`` and ``b`` (both failover) and an
   arbiter, default ``qos_timeout_ms``/``heartbeat_ms`` and ``ack = durable``,
   with a table ``t (id INTEGER PRIMARY KEY, ...)``.
2. A trial waits until the primary counts its backup active (only an active
   backup may take over), starts a :class:`Writer` (one client, autocommit
   INSERTs with explicit ids through the host-list URL with ``retry=``),
   waits for some acknowledgements, then kill -9s the primary and notes the
   monotonic time. RTO is the time from the kill to the first write
   acknowledged *by the other member*; an answer already on its way from the
   dying member does not count.
3. After some writes on the new primary the writer stops, and every id it saw
   acknowledged must be in the new primary's table (lost = acknowledged but
   absent). The killed member is restarted; it rejoins as backup and the next
   trial kills it in turn.
4. Switchover trials use the same mirror: the admin call ``switchover`` is
   sent to the primary while the writer runs. The server's ``pause_ms`` is
   reported next to the client's view, the longest gap between consecutive
   acknowledged writes.

The PostgreSQL counterpart lives in :mod:`bench.pg_failover`.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import litemirror
from litemirror import errors
from litemirror.cli.control import admin
from litemirror.client.dbapi import Connection
from litemirror.config import load
from litemirror.testing.cluster import Cluster

#: Acknowledged writes before the fault, and on the new primary after it.
WARMUP_ACKS = 200
AFTER_ACKS = 100
#: Give up on a trial whose writes do not resume within this many seconds.
RESUME_TIMEOUT = 60.0

#: Published figures, not measured here: (system, what, figure, source).
PUBLISHED = (
    ("InterSystems IRIS mirroring", "QoS timeout default (failure detection)", "8 s", "IRIS docs"),
    ("Patroni (PostgreSQL)", "typical automatic failover", "20-30 s", "ttl 30 s, loop_wait 10 s"),
    ("pg_auto_failover", "typical automatic failover", "20-30 s", "project docs"),
    ("dqlite", "leader election", "3-6 s", "project docs"),
    ("LiteFS", "primary lease expiry", "<= 10 s", "lease TTL"),
)


@dataclass
class Ack:
    id: int
    at: float
    member: str


@dataclass
class Writer:
    """One client inserting rows one by one and remembering what was acknowledged."""

    url: str
    start_id: int
    acked: list[Ack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _run(self) -> None:
        conn: Connection | None = None
        i = self.start_id
        while not self._stop.is_set():
            i += 1
            try:
                if conn is None:
                    conn = litemirror.connect(self.url, isolation_level=None, connect_timeout=30)
                conn.execute("INSERT INTO t (id, v) VALUES (?, 'x')", (i,))
                self.acked.append(Ack(i, time.monotonic(), str(conn.member)))
            except errors.IntegrityError:
                pass  # a retry whose first attempt had committed: present, never acknowledged
            except errors.Error as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.001)
        if conn is not None:
            conn.close()

    @property
    def last_id(self) -> int:
        return self.acked[-1].id if self.acked else self.start_id

    def wait(self, pred: Any, what: str, timeout: float = RESUME_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"failover bench: {what} not reached within {timeout:g}s; "
                    f"{len(self.acked)} writes acknowledged, last errors: {self.errors[-3:]}"
                )
            time.sleep(0.005)

    def acks_from(self, member: str, since: float) -> list[Ack]:
        return [a for a in list(self.acked) if a.member == member and a.at > since]

    def longest_gap(self) -> float:
        times = [a.at for a in self.acked]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 20 trials p99 is the maximum)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(values, 0.50), 3),
        "p99": round(pct(values, 0.99), 3),
        "max": round(max(values), 3) if values else float("nan"),
        "min": round(min(values), 3) if values else float("nan"),
    }


class LitemirrorFailover:
    """The mirror every litemirror failover and switchover trial runs against."""

    def __init__(self, base: Path, tls: bool = False) -> None:
        self.cluster = Cluster(
            base / "lm-failover",
            members=[("a", "failover"), ("b", "failover")],
            arbiter=True,
            mirror={"ack": "durable"},
            name="benchfo",
            tls_require=tls,
        )
        self.next_id = 0

    def start(self) -> None:
        self.cluster.start()
        self._wait_backup_active()
        c = litemirror.connect(self.cluster.url("app"), isolation_level=None)
        c.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        c.close()

    def stop(self) -> None:
        self.cluster.stop()

    @property
    def url(self) -> str:
        return self.cluster.url("app", retry=5)

    def _wait_backup_active(self) -> str:
        p = self.cluster.primary()
        p.wait_until(lambda s: s.get("backup_active") is True, 120, "backup active")
        return p.name

    def _present(self, member: str) -> set[int]:
        conn = litemirror.connect(self.cluster.url("app", members=[member]), isolation_level=None)
        try:
            return {int(r[0]) for r in conn.execute("SELECT id FROM t")}
        finally:
            conn.close()

    def kill_trial(self) -> dict[str, Any]:
        old = self._wait_backup_active()
        new = "b" if old == "a" else "a"
        with Writer(self.url, self.next_id) as w:
            w.wait(lambda: len(w.acked) >= WARMUP_ACKS, "writes before the kill")
            t_kill = time.monotonic()
            self.cluster[old].kill()
            t_writable = self._writable_at(new)
            w.wait(lambda: len(w.acks_from(new, t_kill)) >= AFTER_ACKS, f"writes on {new}")
        self.next_id = w.last_id + 1
        rto = w.acks_from(new, t_kill)[0].at - t_kill
        lost = self._lost(w, new)
        st = self.cluster[new].status()
        # The killed member comes back and rejoins as backup of the new primary.
        self.cluster[old].start()
        return {
            "from": old,
            "to": new,
            "rto_s": round(rto, 4),
            "writable_s": round(t_writable - t_kill, 4),
            "acked": len(w.acked),
            "lost": lost,
            "client_errors": len(w.errors),
            "epoch": st.get("epoch"),
            "reason": st.get("reason"),
        }

    def _writable_at(self, member: str) -> float:
        """When ``member``'s status first says it is a writable primary (polled every 10 ms).

        Against the client's figure this splits the outage into the members'
        detection and takeover, and the driver finding the new primary.
        """
        mp = self.cluster[member]
        deadline = time.monotonic() + RESUME_TIMEOUT
        while time.monotonic() < deadline:
            try:
                st = mp.status()
                if st.get("role") == "primary" and st.get("writable"):
                    return time.monotonic()
            except errors.Error:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"failover bench: {member} not a writable primary after the kill")

    def switchover_trial(self) -> dict[str, Any]:
        old = self._wait_backup_active()
        new = "b" if old == "a" else "a"
        with Writer(self.url, self.next_id) as w:
            w.wait(lambda: len(w.acked) >= WARMUP_ACKS, "writes before the switchover")
            t0 = time.monotonic()
            info = admin(load(self.cluster.config_path), "switchover", {"to": new, "timeout_s": 30})
            w.wait(lambda: len(w.acks_from(new, t0)) >= AFTER_ACKS, f"writes on {new}")
        self.next_id = w.last_id + 1
        return {
            "from": old,
            "to": new,
            "pause_ms": float(info["pause_ms"]),
            "client_gap_ms": round(w.longest_gap() * 1000, 1),
            "acked": len(w.acked),
            "lost": self._lost(w, new),
            "client_errors": len(w.errors),
        }

    def _lost(self, w: Writer, member: str) -> int:
        present = self._present(member)
        return sum(1 for a in w.acked if a.id not in present)


def run_litemirror(base: Path, trials: int, switchovers: int, tls: bool = False) -> dict[str, Any]:
    """Kill and switchover trials on one mirror; a summary plus every trial.

    ``tls``: every connection (driver, replication, peer link, arbiter) over
    mutual TLS with ``tls.require``.
    """
    lm = LitemirrorFailover(base, tls)
    kills: list[dict[str, Any]] = []
    swaps: list[dict[str, Any]] = []
    lm.start()
    try:
        for n in range(trials):
            r = lm.kill_trial()
            kills.append(r)
            print(
                f"litemirror kill -9 trial {n + 1}/{trials}: {r['from']} -> {r['to']} "
                f"first write after {r['rto_s'] * 1000:.0f} ms (writable after "
                f"{r['writable_s'] * 1000:.0f} ms), lost {r['lost']}",
                flush=True,
            )
        for n in range(switchovers):
            r = lm.switchover_trial()
            swaps.append(r)
            print(
                f"litemirror switchover {n + 1}/{switchovers}: {r['from']} -> {r['to']} "
                f"pause {r['pause_ms']:.0f} ms (server), {r['client_gap_ms']:.0f} ms (client), "
                f"lost {r['lost']}",
                flush=True,
            )
    finally:
        lm.stop()
    return {
        "config": {"qos_timeout_ms": 2000, "heartbeat_ms": 250, "ack": "durable", "tls": tls},
        "rto_s": summary([k["rto_s"] for k in kills]),
        "writable_s": summary([k["writable_s"] for k in kills]),
        "trials": len(kills),
        "lost": sum(k["lost"] for k in kills),
        "switchover": {
            "pause_ms": summary([s["pause_ms"] for s in swaps]),
            "client_gap_ms": summary([s["client_gap_ms"] for s in swaps]),
            "trials": len(swaps),
            "lost": sum(s["lost"] for s in swaps),
        },
        "kill_trials": kills,
        "switchover_trials": swaps,
    }


def markdown(fo: dict[str, Any]) -> str:
    """The failover section of latest.md: measured rows, then the published anchors."""
    lm = fo.get("litemirror")
    pg = fo.get("postgresql")
    lines = [
        "| system | what | trials | p50 | p99 | max | acknowledged writes lost |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    if lm:
        r = lm["rto_s"]
        lines.append(
            "| litemirror primary+backup+arbiter (measured) | kill -9 of the primary to the "
            f"first acknowledged write, automatic | {lm['trials']} | {r['p50']:.2f} s | "
            f"{r['p99']:.2f} s | {r['max']:.2f} s | {lm['lost']} |"
        )
        r = lm["writable_s"]
        lines.append(
            "| litemirror primary+backup+arbiter (measured) | kill -9 of the primary to the "
            f"backup's status saying writable primary (server side) | {lm['trials']} | "
            f"{r['p50']:.2f} s | {r['p99']:.2f} s | {r['max']:.2f} s | - |"
        )
        s = lm["switchover"]
        if s["trials"]:
            lines.append(
                "| litemirror (measured) | planned switchover, writes paused (server pause_ms) | "
                f"{s['trials']} | {s['pause_ms']['p50']:.0f} ms | {s['pause_ms']['p99']:.0f} ms | "
                f"{s['pause_ms']['max']:.0f} ms | {s['lost']} |"
            )
            lines.append(
                "| litemirror (measured) | planned switchover, longest gap between acknowledged "
                f"writes (client) | {s['trials']} | {s['client_gap_ms']['p50']:.0f} ms | "
                f"{s['client_gap_ms']['p99']:.0f} ms | {s['client_gap_ms']['max']:.0f} ms | "
                f"{s['lost']} |"
            )
    if pg:
        r = pg["rto_s"]
        lines.append(
            "| PostgreSQL sync standby (measured, lower bound) | kill -9 of the primary, "
            "promote issued at once by the bench (no detection), to the first acknowledged "
            f"write | {pg['trials']} | {r['p50']:.2f} s | {r['p99']:.2f} s | {r['max']:.2f} s | "
            f"{pg['lost']} |"
        )
    for system, what, figure, source in PUBLISHED:
        lines.append(
            f"| {system} (published, not measured here) | {what} ({source}) | - | {figure} | "
            "- | - | - |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.failover --trials 10 --switchovers 3 [--tls]``: litemirror alone."""
    import argparse
    import json
    import shutil
    import tempfile

    ap = argparse.ArgumentParser(prog="bench.failover")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--switchovers", type=int, default=3)
    ap.add_argument("--tls", action="store_true", help="tls.require: everything over mutual TLS")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="litemirror-failover-"))
    try:
        res = run_litemirror(base, args.trials, args.switchovers, tls=args.tls)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    keep = ("config", "rto_s", "writable_s", "trials", "lost", "switchover")
    print(json.dumps({k: res[k] for k in keep}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
