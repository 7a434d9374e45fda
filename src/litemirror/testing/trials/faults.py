"""Faults: a seeded schedule (pure) and the injector that carries it out.

:func:`make_schedule` turns a ``random.Random`` into a list of
:class:`FaultStep` — which fault, on which member, when, for how long — and
nothing else, so a seed always gives the same schedule. :class:`Injector`
applies one step to a :class:`~.mirror.TrialMirror` and returns the one-line
description that goes into the history; every fault has a heal, and
:meth:`Injector.heal_all` undoes anything still in force.

Faults, one at a time with a quiet gap between them:

``kill``       SIGKILL, down for ``duration``, restart
``pause``      SIGSTOP for ``duration``, SIGCONT
``partition``  blackhole every link between the target and the other members
               (and the arbiter); with ``clients`` also the clients' links
``cut``        reset every open connection to and from the target
``slow``       delay each direction of the target's links
``bandwidth``  cap the target's links in bytes per second
``disk``       fill the target's tmpfs data directory, then free it
``torn``       SIGKILL, damage the newest journal segment's tail, restart:
               a non-primary loses its last bytes (it must fetch them again);
               the primary gets a partial record appended (a crash mid-write
               of a record that was never acknowledged)
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litemirror.testing.proxy import ANY, PASS, Rule

from .mirror import CLIENT_IP, TrialMirror

KINDS = ("kill", "pause", "partition", "cut", "slow", "bandwidth", "disk", "torn")
ARBITER_KINDS = ("kill", "pause", "partition")


@dataclass(frozen=True)
class FaultStep:
    kind: str
    target: str
    start_s: float
    duration_s: float
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind} {self.target} for {self.duration_s:.1f}s {extra}".strip()


def make_schedule(
    rng: random.Random,
    members: list[str],
    *,
    duration_s: float,
    tmpfs_member: str | None,
    kinds: tuple[str, ...] = KINDS,
    arbiter: bool = False,
) -> list[FaultStep]:
    """A seeded list of non-overlapping faults that fits in ``duration_s``.

    With ``arbiter``, kill, pause and partition may also hit the arbiter.
    """
    steps: list[FaultStep] = []
    t = rng.uniform(0.3, 1.0)
    usable = [k for k in kinds if k != "disk" or tmpfs_member is not None]
    while True:
        kind = rng.choice(usable)
        targets = [*members, "arbiter"] if arbiter and kind in ARBITER_KINDS else members
        target = tmpfs_member if kind == "disk" and tmpfs_member else rng.choice(targets)
        dur = round(rng.uniform(0.5, 3.0), 2)
        params: dict[str, Any] = {}
        if kind == "partition":
            params["clients"] = rng.random() < 0.3
        elif kind == "slow":
            params["delay_ms"] = rng.choice((5, 20, 50, 150))
        elif kind == "bandwidth":
            params["bytes_per_s"] = rng.choice((20_000, 100_000, 500_000))
        elif kind == "torn":
            params["bytes"] = rng.randint(1, 64)
        elif kind == "cut":
            dur = 0.0
        if t + dur > duration_s:
            return steps
        steps.append(FaultStep(kind, target, round(t, 2), dur, params))
        t += dur + rng.uniform(0.5, 2.0)


def newest_segment(data_dir: Path) -> Path | None:
    segs = sorted((data_dir / "journal").glob("*.lmj"))
    return segs[-1] if segs else None


class Injector:
    """Carries out :class:`FaultStep` s on a mirror; records what it did."""

    def __init__(self, mirror: TrialMirror) -> None:
        self.m = mirror
        self.applied: list[str] = []
        self.skipped: list[str] = []

    # ------------------------------------------------------------ one step

    def run(self, step: FaultStep) -> str:
        """Apply ``step``, hold it for its duration, heal it; return what happened."""
        fn = self._arbiter if step.target == "arbiter" else getattr(self, f"_{step.kind}")
        said: str = fn(step)
        self.applied.append(said)
        return said

    def _role(self, name: str) -> str:
        try:
            return str(self.m[name].status().get("role"))
        except Exception:  # a dead or paused member has no role to report
            return "unknown"

    def _arbiter(self, step: FaultStep) -> str:
        proc = self.m.arbiter_proc
        if proc is None:
            return "arbiter fault skipped: no arbiter"
        if step.kind == "kill":
            proc.kill()
            proc.wait(10)
            time.sleep(step.duration_s)
            self.m.start_arbiter()
            return f"kill -9 arbiter, restarted after {step.duration_s}s"
        if step.kind == "pause":
            proc.send_signal(signal.SIGSTOP)
            try:
                time.sleep(step.duration_s)
            finally:
                proc.send_signal(signal.SIGCONT)
            return f"SIGSTOP arbiter for {step.duration_s}s"
        self.m.proxy.set_rule("arbiter", ANY, Rule(mode="blackhole"))
        time.sleep(step.duration_s)
        self.m.proxy.heal()
        return f"partition arbiter from every member for {step.duration_s}s"

    def _kill(self, step: FaultStep) -> str:
        mp = self.m[step.target]
        role = self._role(step.target)
        mp.kill()
        time.sleep(step.duration_s)
        mp.start(wait=False)
        return f"kill -9 {step.target} ({role}), restarted after {step.duration_s}s"

    def _pause(self, step: FaultStep) -> str:
        mp = self.m[step.target]
        role = self._role(step.target)
        mp.pause()
        try:
            time.sleep(step.duration_s)
        finally:
            mp.resume()
        return f"SIGSTOP {step.target} ({role}) for {step.duration_s}s"

    def _links(self, target: str, rule: Rule, clients: bool = False) -> None:
        me = self.m.host_of(target)
        for other in self.m.names:
            if other != target:
                self.m.proxy.set_rule(target, self.m.host_of(other), rule)
                self.m.proxy.set_rule(other, me, rule)
        if self.m.arbiter_cmd is not None:
            self.m.proxy.set_rule("arbiter", me, rule)
        if clients:
            self.m.proxy.set_rule(target, CLIENT_IP, rule)

    def _partition(self, step: FaultStep) -> str:
        clients = bool(step.params.get("clients"))
        role = self._role(step.target)
        self._links(step.target, Rule(mode="blackhole"), clients)
        time.sleep(step.duration_s)
        self.m.proxy.heal()
        who = "everyone" if clients else "the other members"
        return f"partition {step.target} ({role}) from {who} for {step.duration_s}s"

    def _cut(self, step: FaultStep) -> str:
        n = self.m.proxy.cut(route=step.target)
        n += self.m.proxy.cut(source=self.m.host_of(step.target))
        return f"reset {n} connection(s) of {step.target}"

    def _slow(self, step: FaultStep) -> str:
        d = step.params["delay_ms"] / 1000
        self._links(step.target, Rule(delay_up_s=d, delay_down_s=d), clients=True)
        time.sleep(step.duration_s)
        self.m.proxy.heal()
        return f"delay {step.params['delay_ms']}ms on {step.target}'s links for {step.duration_s}s"

    def _bandwidth(self, step: FaultStep) -> str:
        bps = int(step.params["bytes_per_s"])
        self._links(step.target, Rule(bytes_per_s=bps), clients=True)
        time.sleep(step.duration_s)
        self.m.proxy.heal()
        return f"cap {step.target}'s links at {bps} B/s for {step.duration_s}s"

    def _disk(self, step: FaultStep) -> str:
        if self.m.tmpfs is None:
            self.skipped.append("disk: no tmpfs (mount needs root)")
            return "disk full skipped: no tmpfs"
        ballast = self.m.tmpfs / "ballast"
        filled = fill(ballast)
        try:
            time.sleep(step.duration_s)
        finally:
            with contextlib.suppress(OSError):
                ballast.unlink()
        return f"disk of {step.target} full ({filled} bytes of ballast) for {step.duration_s}s"

    def _torn(self, step: FaultStep) -> str:
        mp = self.m[step.target]
        role = self._role(step.target)
        mp.kill()
        seg = newest_segment(mp.data_dir)
        n = int(step.params["bytes"])
        what = "no segment"
        if seg is not None:
            size = seg.stat().st_size
            if role == "primary":
                with open(seg, "ab") as f:
                    f.write(random.Random(n).randbytes(n))
                what = f"appended {n} torn bytes to {seg.name}"
            else:
                # Never cut into the 40-byte segment header: that is not a torn write.
                keep = max(40, size - n)
                os.truncate(seg, keep)
                what = f"cut {size - keep} bytes off {seg.name}"
        time.sleep(step.duration_s)
        mp.start(wait=False)
        return f"torn journal on {step.target} ({role}): {what}, restarted"

    # ---------------------------------------------------------------- heal

    def heal_all(self, timeout: float = 60.0) -> None:
        """Every link passes, every member runs and answers, the disk has room."""
        self.m.proxy.heal()
        for name in self.m.names:
            self.m.proxy.set_rule(name, ANY, PASS)
        if self.m.tmpfs is not None:
            with contextlib.suppress(OSError):
                (self.m.tmpfs / "ballast").unlink()
        for name in self.m.names:
            mp = self.m[name]
            mp.resume()
            if not mp.running:
                mp.start(wait=False)
        arb = self.m.arbiter_proc
        if arb is not None:
            arb.send_signal(signal.SIGCONT)
            if arb.poll() is not None:
                self.m.start_arbiter()
        for name in self.m.names:
            self.m[name].wait_ready(timeout)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; return bytes written."""
    written = 0
    size = 1 << 20
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(b"\0" * size) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if size <= 512:
                    return written
                size //= 8
