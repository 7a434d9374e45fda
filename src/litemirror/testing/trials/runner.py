"""One fault trial from start to verdict, and a series of them.

A trial: start the mirror, create the schema, run workers, a snapshot reader
and one status monitor per member; carry out the seeded fault schedule; heal
everything; write one marker row until it is acknowledged and wait for every
member to apply it; read the final state of every member; run the checkers
and ``litemirror verify``. A passing trial's directory is removed; a failing
one keeps every process log, ``history.jsonl`` and ``reason.txt``.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import litemirror

from . import checks
from .faults import Injector, make_schedule
from .mirror import TrialMirror
from .workloads import (
    ACCOUNTS,
    INITIAL_BALANCE,
    SCHEMA,
    SEEN_TABLES,
    History,
    Monitor,
    Reader,
    Worker,
    read_bank,
)

MEMBERS = (("a", "failover"), ("b", "failover"), ("r", "reporting"))


@dataclass(frozen=True)
class TrialOptions:
    duration_s: float = 12.0
    workers: int = 4
    #: When failover exists: a fault on the primary must not stop writes for
    #: longer than ``rto_s``. Until then faults on the primary only have to
    #: lose nothing.
    expect_takeover: bool = False
    rto_s: float = 5.0
    converge_timeout_s: float = 90.0
    #: Autocommit writes with ``retry`` on: the driver resends a write whose
    #: connection died after it may have committed (see docs/fault-trials.md).
    autocommit_retry: bool = True
    arbiter: bool = True
    keep: bool = False


@dataclass
class TrialResult:
    seed: int
    directory: Path
    faults: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def acknowledged(self) -> int:
        return self.counts.get("append_ok", 0) + self.counts.get("transfer_ok", 0)

    def line(self) -> str:
        c = self.counts
        verdict = "PASS" if self.ok else f"FAIL: {self.problems[0]}"
        return (
            f"seed {self.seed}: {len(self.faults)} faults, "
            f"{c.get('append_ok', 0)} appends + {c.get('transfer_ok', 0)} transfers acknowledged "
            f"({c.get('append_info', 0) + c.get('transfer_info', 0)} unknown), "
            f"{c.get('read', 0)} snapshot reads, lost {c.get('lost', 0)}, "
            f"{self.seconds:.0f}s — {verdict}"
        )


def _setup(url: str) -> int:
    conn = litemirror.connect(url)
    for sql in SCHEMA:
        conn.execute(sql)
    conn.executemany(
        "INSERT INTO accounts (id, balance) VALUES (?, ?)",
        [(i, INITIAL_BALANCE) for i in range(1, ACCOUNTS + 1)],
    )
    conn.commit()
    conn.close()
    return conn.last_lsn


def _wait_primary_with_databases(m: TrialMirror, timeout: float) -> None:
    """A fresh primary may say "primary" a moment before it has created the
    configured databases; clients would be refused ("no database named ...")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n in m.names:
            with contextlib.suppress(Exception):
                st = m[n].status()
                if st.get("role") == "primary" and st.get("databases", 0) >= 1:
                    return
        time.sleep(0.05)
    raise AssertionError(f"no primary holding the databases within {timeout}s")


def _marker(m: TrialMirror, h: History, timeout: float) -> int:
    """Write one row until acknowledged (proof the healed mirror takes writes); its LSN."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        n += 1
        key = -n
        h.add(type="invoke", f="append", proc=0, value=key, mode="marker")
        try:
            conn = litemirror.connect(m.url(retry=3, connect_timeout=2, timeout=10))
            try:
                conn.execute("INSERT INTO appends (id, proc, mode) VALUES (?, 0, 'marker')", (key,))
                conn.commit()
                h.add(
                    type="ok", f="append", proc=0, value=key, member=conn.member, lsn=conn.last_lsn
                )
                return conn.last_lsn
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
        except Exception as exc:  # retried until the deadline
            h.add(type="info", f="append", proc=0, value=key, error=str(exc)[:300])
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no write acknowledged within {timeout}s after healing: {exc}"
                ) from exc
            time.sleep(0.5)


def _final_ids(m: TrialMirror, name: str, table: str = "appends") -> set[int]:
    conn = litemirror.connect(m.url(members=[name], read_only=True, timeout=30))
    try:
        return {r[0] for r in conn.execute(f"SELECT id FROM {table}")}
    finally:
        conn.close()


def _availability(events: list[dict[str, Any]], rto_s: float) -> list[str]:
    """With takeover expected: every fault on the primary that lasted longer than
    ``rto_s`` saw an acknowledged write before it ended."""
    problems = []
    oks = sorted(e["t"] for e in events if e.get("type") == "ok")
    for e in events:
        if e.get("type") == "nemesis" and "(primary)" in e["what"] and e["held_s"] > rto_s + 1:
            start, end = e["t"] - e["took_s"], e["t"] - e["took_s"] + e["held_s"]
            if not any(start + rto_s <= t <= end for t in oks):
                problems.append(f"availability: no write acknowledged during '{e['what']}'")
    return problems


def run_trial(seed: int, base: Path, opts: TrialOptions = TrialOptions()) -> TrialResult:
    """Run one trial in ``base`` (created); see the module docstring."""
    started = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmpfs_member = rng.choice([n for n, _ in MEMBERS])
    result = TrialResult(seed, base)
    m = TrialMirror(
        base,
        MEMBERS,
        mirror={"qos_timeout_ms": 1000, "heartbeat_ms": 200},
        sections={"journal": {"segment_bytes": 256 * 1024, "max_retain_bytes": 4 * 1024 * 1024}},
        tmpfs_member=tmpfs_member,
        with_arbiter=opts.arbiter,
    )
    h = History(base / "history.jsonl")
    stop = threading.Event()
    # Monitors outlive the workers: the split-brain check needs an observation
    # after the last acknowledgement.
    watching = threading.Event()
    monitors = [Monitor(n, m[n].host, m[n].port, h, watching) for n in m.names]
    threads: list[threading.Thread] = []
    injector = Injector(m)
    try:
        m.start()
        _wait_primary_with_databases(m, 30)
        setup_lsn = _setup(m.url(retry=3))
        # Every member has the accounts before anyone reads them: a snapshot
        # from before the set-up is consistent, but not what the bank checks.
        for n in m.names:
            m[n].wait_applied(setup_lsn, 30)
        url = m.url(retry=3, connect_timeout=2, timeout=5)
        auto_url = url if opts.autocommit_retry else m.url(connect_timeout=2, timeout=5)
        threads = [
            Worker(p, url, auto_url, h, stop, seed * 100 + p) for p in range(1, opts.workers + 1)
        ]
        urls = {
            n: m.url(members=[n], read_only=True, connect_timeout=1, timeout=3) for n in m.names
        }
        threads.append(Reader(urls, h, stop))
        for t in [*monitors, *threads]:
            t.start()
        steps = make_schedule(
            rng,
            m.names,
            duration_s=opts.duration_s,
            tmpfs_member=tmpfs_member if m.tmpfs else None,
            arbiter=m.arbiter_cmd is not None,
        )
        for step in steps:
            time.sleep(max(0.0, step.start_s - h.now()))
            t0 = h.now()
            what = injector.run(step)
            h.add(type="nemesis", what=what, held_s=step.duration_s, took_s=round(h.now() - t0, 3))
            result.faults.append(what)
        time.sleep(max(0.0, opts.duration_s - h.now()))
        injector.heal_all()
        h.add(type="nemesis", what="heal all", held_s=0, took_s=0)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(30)
        lsn = _marker(m, h, opts.converge_timeout_s)
        for n in m.names:
            m[n].wait_applied(lsn, opts.converge_timeout_s)
        final = {n: _final_ids(m, n) for n in m.names}
        # Converged and verified identical below: one member's tables are the end state.
        end_state = {t: _final_ids(m, m.names[0], t) for t in SEEN_TABLES}
        for n in m.names:
            h.add(**read_bank(n, m.url(members=[n], read_only=True, timeout=30)), final=True)
        watching.set()
        for t in monitors:
            t.join(5)
        events = list(h.events)
        result.problems += checks.check_append(events, final)
        result.problems += checks.check_bank(events, ACCOUNTS, ACCOUNTS * INITIAL_BALANCE)
        result.problems += checks.check_seen(events, end_state)
        obs = {t.member: t.observations for t in monitors}
        result.problems += checks.check_split_brain(events, obs)
        if opts.expect_takeover:
            result.problems += _availability(events, opts.rto_s)
        v = m.verify()
        if v.returncode != 0:
            result.problems.append(
                f"verify exited {v.returncode}: {(v.stdout + v.stderr).strip()[-300:]}"
            )
        acked = checks.outcomes(events, "append")["ok"]
        result.counts = checks.summarize(events)
        result.counts["lost"] = max((len(acked - ids) for ids in final.values()), default=0)
    except Exception as exc:  # any harness-level failure fails the trial
        result.problems.append(
            f"trial aborted: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        )
        with contextlib.suppress(Exception):
            (base / "traceback.txt").write_text(_traceback(exc))
        result.counts = checks.summarize(h.events)
    finally:
        stop.set()
        watching.set()
        if not result.ok and m.tmpfs is not None:
            with contextlib.suppress(Exception):
                shutil.copytree(
                    m.tmpfs,
                    base / f"{tmpfs_member}-tmpfs-copy",
                    ignore=shutil.ignore_patterns("ballast"),
                )
        m.close()
        h.close()
    result.seconds = time.monotonic() - started
    if result.ok and not opts.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        (base / "reason.txt").write_text((result.problems[0] if result.problems else "kept") + "\n")
        (base / "summary.json").write_text(
            json.dumps(
                {
                    "seed": seed,
                    "faults": result.faults,
                    "counts": result.counts,
                    "problems": result.problems,
                },
                indent=2,
            )
        )
    return result


def _traceback(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))
