"""``make bench``: run the comparison and write bench/results/latest.{json,md}.

Usage: ``python -m bench.run [--quick] [--duration S] [--clients 1,4,16,64]
[--workloads insert,tpcb,point_select,blob] [--no-postgres] [--many-dbs N]
[--failover-trials N] [--switchovers N] [--no-failover]``.

Every system is started once, up front, in one temp dir (same disk). The
matrix is interleaved per cell: for each workload, for each client count,
every system runs one after the other, so machine drift hits all alike.
The ratio litemirror primary+backup (durable) / PostgreSQL (sync on) -- the
like-for-like pair, a commit waits for the second server's disk in both -- is
reported for every cell. Then, with the matrix systems stopped, the failover
trials run (bench.failover, bench.pg_failover).

``--quick`` (1 and 16 clients, insert only, 3 s cells, the ratio pair plus the
single-member and SQLite rows, 5 failover trials) writes latest-quick.{json,md}
so the full run's files stay, and ends with the one-line summary
``ratio_tps_16c_insert=… ratio_p50_1c_insert=… rto_p99_s=…``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import apsw
import psycopg

import litemirror

from . import report
from .failover import run_litemirror
from .harness import CellResult, Factory, run_cell
from .pg_failover import run_postgres
from .postgres import PostgresSyncRep
from .systems import ACCOUNTS, BLOB_BYTES, BRANCHES, WORKLOADS, Litemirror, SQLiteSystem

RESULTS = Path(__file__).resolve().parent / "results"
MANY_DBS_CLIENTS = 16


class System(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def factory(self, workload: str) -> Factory: ...
    def empty_blobs(self) -> None: ...


def _many_databases(base: Path, count: int, duration: float) -> tuple[CellResult, dict[str, Any]]:
    many = Litemirror(base / "many", databases=count)
    many.start()
    try:
        factory = many.many_databases_factory(MANY_DBS_CLIENTS)
        cell = run_cell(
            f"litemirror ({count} databases)", "insert", MANY_DBS_CLIENTS, factory, duration
        )
        stats = many.process_stats()
    finally:
        many.stop()
    return cell, {"databases": count, **cell.as_dict(), **stats}


def _sigterm(signum: int, frame: object) -> None:
    # Turn a plain kill into SystemExit so the finally blocks stop the
    # PostgreSQL servers, which pg_ctl detached from us.
    raise SystemExit(128 + signum)


def _systems(base: Path, quick: bool, postgres: bool) -> list[System]:
    """The ratio pair first and side by side, so they run closest in time."""
    out: list[System] = [Litemirror(base, members=2)]
    if postgres:
        out.append(PostgresSyncRep(base, "on"))
    if not quick:
        out.append(Litemirror(base, members=2, arbiter=True))
    out += [Litemirror(base), SQLiteSystem(base)]
    if postgres and not quick:
        out.append(PostgresSyncRep(base, "remote_apply"))
    return out


def _matrix(
    systems: list[System], workloads: list[str], clients: list[int], duration: float
) -> tuple[list[CellResult], list[str], str]:
    cells: list[CellResult] = []
    warnings: list[str] = []
    pg_version = ""
    started: list[System] = []
    try:
        for s in systems:
            s.start()
            started.append(s)
            if isinstance(s, PostgresSyncRep):
                pg_version = s.version
        for workload in workloads:
            for n in clients:
                for s in systems:
                    if workload == "blob":
                        # Each blob cell starts from an empty table, so
                        # disk use stays bounded and cells are alike.
                        s.empty_blobs()
                    cell = run_cell(s.name, workload, n, s.factory(workload), duration)
                    report.print_cell(cell)
                    cells.append(cell)
                    if isinstance(s, Litemirror) and s.backup_active() is False:
                        # The primary committed alone for part of the cell at least.
                        w = f"{s.name} {workload} {n} clients: backup not active after the cell"
                        print(f"WARNING: {w}", file=sys.stderr, flush=True)
                        warnings.append(w)
    finally:
        for s in reversed(started):
            s.stop()
    return cells, warnings, pg_version


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.run")
    ap.add_argument("--quick", action="store_true", help="1 and 16 clients, insert, 3 s cells")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--clients", default=None)
    ap.add_argument("--workloads", default=None, help=f"comma list of {', '.join(WORKLOADS)}")
    ap.add_argument("--many-dbs", type=int, default=None, help="0 skips (default 1000, quick 0)")
    ap.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL (no ratios)")
    ap.add_argument("--failover-trials", type=int, default=None, help="default 20, quick 5")
    ap.add_argument("--switchovers", type=int, default=None, help="default 5, quick 2")
    ap.add_argument("--no-failover", action="store_true", help="skip the failover trials")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    duration = args.duration or (3.0 if args.quick else 10.0)
    clients = [int(x) for x in (args.clients or ("1,16" if args.quick else "1,4,16,64")).split(",")]
    workloads = (args.workloads or ("insert" if args.quick else ",".join(WORKLOADS))).split(",")
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    many_dbs = args.many_dbs if args.many_dbs is not None else (0 if args.quick else 1000)
    fo_trials = 0 if args.no_failover else (args.failover_trials or (5 if args.quick else 20))
    switchovers = args.switchovers if args.switchovers is not None else (2 if args.quick else 5)
    signal.signal(signal.SIGTERM, _sigterm)

    base = Path(tempfile.mkdtemp(prefix="litemirror-bench-", dir=os.environ.get("BENCH_DIR")))
    extra: dict[str, Any] = {}
    try:
        systems = _systems(base, args.quick, not args.no_postgres)
        cells, warnings, pg_version = _matrix(systems, workloads, clients, duration)
        if warnings:
            extra["warnings"] = warnings
        if many_dbs:
            cell, extra["many_databases"] = _many_databases(base, many_dbs, duration)
            cells.append(cell)
            m = extra["many_databases"]
            print(
                f"{cell.system:38s} insert       {cell.clients:3d} clients  {cell.tps:9.1f} TPS  "
                f"threads {m.get('threads')} open files {m.get('open_files')} "
                f"rss {m.get('vmrss')}",
                flush=True,
            )
        if fo_trials:
            fo: dict[str, Any] = {"litemirror": run_litemirror(base, fo_trials, switchovers)}
            if not args.no_postgres:
                fo["postgresql"] = run_postgres(base, fo_trials)
            extra["failover"] = fo
    finally:
        shutil.rmtree(base, ignore_errors=True)

    rts = report.ratios(cells)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "apsw": apsw.apsw_version(),
        "litemirror": litemirror.__version__,
        "postgresql": pg_version or None,
        "psycopg": psycopg.__version__,
        "duration_s": duration,
        "quick": args.quick,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "ratio": f"{report.RATIO_NUM} / {report.RATIO_DEN}",
        "tpcb_rows": {"branches": BRANCHES, "tellers": BRANCHES * 10, "accounts": ACCOUNTS},
        "blob_bytes": BLOB_BYTES,
    }
    stem = "latest-quick" if args.quick else "latest"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(
        json.dumps(
            {"meta": meta, "cells": [c.as_dict() for c in cells], "ratios": rts, **extra},
            indent=2,
        )
        + "\n"
    )
    (RESULTS / f"{stem}.md").write_text(report.markdown(meta, cells, rts, extra))
    print(f"wrote {RESULTS / stem}.json and .md ({meta['elapsed_s']:.0f} s)", flush=True)
    print(report.summary_line(rts, extra.get("failover", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
