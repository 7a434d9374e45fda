"""``make bench``: run the comparison and write bench/results/latest.{json,md}.

Usage: ``python -m bench.run [--quick] [--duration S] [--clients 1,4,16,64]
[--workloads insert,tpcb,point_select,blob] [--no-postgres] [--many-dbs N]``.

Every system is started once, up front, in one temp dir (same disk). The
matrix is interleaved per cell: for each workload, for each client count,
every system runs one after the other, so machine drift hits all alike.
The ratio litemirror / PostgreSQL (sync on) is reported for every cell.
``--quick`` (1 and 16 clients, insert only, 3 s cells) ends with the one-line summary
``ratio_tps_16c_insert=… ratio_p50_1c_insert=… rto_p99_s=…``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

import apsw
import psycopg

import litemirror

from .harness import CellResult, Factory, run_cell
from .postgres import PostgresSyncRep
from .systems import (
    ACCOUNTS,
    BLOB_BYTES,
    BRANCHES,
    WORKLOADS,
    LitemirrorSingle,
    SQLiteSystem,
)

RESULTS = Path(__file__).resolve().parent / "results"
PG_ON = "postgresql (sync on)"
MANY_DBS_CLIENTS = 16


class System(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def factory(self, workload: str) -> Factory: ...
    def empty_blobs(self) -> None: ...


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def _ratios(cells: list[CellResult]) -> list[dict[str, Any]]:
    """litemirror / PostgreSQL (sync on) for every (workload, clients) both ran."""
    out = []
    for lm in cells:
        if lm.system != LitemirrorSingle.name:
            continue
        pg = next(
            (
                c
                for c in cells
                if c.system == PG_ON and c.workload == lm.workload and c.clients == lm.clients
            ),
            None,
        )
        if pg is None:
            continue
        out.append(
            {
                "workload": lm.workload,
                "clients": lm.clients,
                "tps": round(_ratio(lm.tps, pg.tps), 3),
                "p50": round(_ratio(lm.p50_ms, pg.p50_ms), 3),
                "p95": round(_ratio(lm.p95_ms, pg.p95_ms), 3),
                "p99": round(_ratio(lm.p99_ms, pg.p99_ms), 3),
            }
        )
    return out


def _cells_table(cells: list[CellResult]) -> str:
    lines = [
        "| workload | clients | system | TPS | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.workload} | {c.clients} | {c.system} | {c.tps:,.0f} | "
            f"{_ms(c.p50_ms)} | {_ms(c.p95_ms)} | {_ms(c.p99_ms)} | {c.errors} |"
        )
    return "\n".join(lines)


def _ms(v: float) -> str:
    # In-process SQLite reads take microseconds: keep them from printing 0.00.
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"


def _ratio_table(ratios: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | clients | TPS ratio (higher is better) | p50 ratio | p99 ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in ratios:
        lines.append(
            f"| {r['workload']} | {r['clients']} | {r['tps']:.2f} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} |"
        )
    return "\n".join(lines)


def _print_cell(c: CellResult) -> None:
    print(
        f"{c.system:32s} {c.workload:12s} {c.clients:3d} clients  {c.tps:9.1f} TPS  "
        f"p50 {c.p50_ms:7.2f} ms  p99 {c.p99_ms:7.2f} ms  errors {c.errors}",
        flush=True,
    )


def _many_databases(base: Path, count: int, duration: float) -> tuple[CellResult, dict[str, Any]]:
    many = LitemirrorSingle(base / "many", databases=count)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.run")
    ap.add_argument("--quick", action="store_true", help="1 and 16 clients, insert, 3 s cells")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--clients", default=None)
    ap.add_argument("--workloads", default=None, help=f"comma list of {', '.join(WORKLOADS)}")
    ap.add_argument("--many-dbs", type=int, default=1000, help="0 skips the many-databases cell")
    ap.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL (no ratios)")
    args = ap.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 10.0)
    clients = [int(x) for x in (args.clients or ("1,16" if args.quick else "1,4,16,64")).split(",")]
    workloads = (args.workloads or ("insert" if args.quick else ",".join(WORKLOADS))).split(",")
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    signal.signal(signal.SIGTERM, _sigterm)

    base = Path(tempfile.mkdtemp(prefix="litemirror-bench-", dir=os.environ.get("BENCH_DIR")))
    cells: list[CellResult] = []
    extra: dict[str, Any] = {}
    pg_version = ""
    try:
        systems: list[System] = [LitemirrorSingle(base), SQLiteSystem(base)]
        if not args.no_postgres:
            systems += [PostgresSyncRep(base, "on"), PostgresSyncRep(base, "remote_apply")]
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
                        _print_cell(cell)
                        cells.append(cell)
        finally:
            for s in reversed(started):
                s.stop()
        if args.many_dbs:
            cell, extra["many_databases"] = _many_databases(base, args.many_dbs, duration)
            cells.append(cell)
            m = extra["many_databases"]
            print(
                f"{cell.system:32s} insert       {cell.clients:3d} clients  {cell.tps:9.1f} TPS  "
                f"threads {m.get('threads')} open files {m.get('open_files')} "
                f"rss {m.get('vmrss')}",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ratios = _ratios(cells)
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
        "tpcb_rows": {"branches": BRANCHES, "tellers": BRANCHES * 10, "accounts": ACCOUNTS},
        "blob_bytes": BLOB_BYTES,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {"meta": meta, "cells": [c.as_dict() for c in cells], "ratios": ratios, **extra},
            indent=2,
        )
        + "\n"
    )
    (RESULTS / "latest.md").write_text(_markdown(meta, cells, ratios, extra))
    if args.quick:
        print(_summary_line(ratios))
    return 0


def _summary_line(ratios: list[dict[str, Any]]) -> str:
    def pick(clients: int, key: str) -> float:
        r = next((r for r in ratios if r["workload"] == "insert" and r["clients"] == clients), None)
        return float(r[key]) if r else float("nan")

    # The failover figure comes with the failover bench; nan until then.
    return (
        f"ratio_tps_16c_insert={pick(16, 'tps'):.2f} "
        f"ratio_p50_1c_insert={pick(1, 'p50'):.2f} rto_p99_s=nan"
    )


def _markdown(
    meta: dict[str, Any],
    cells: list[CellResult],
    ratios: list[dict[str, Any]],
    extra: dict[str, Any],
) -> str:
    md = [
        f"Measured {meta['date']} on {meta['cores']} cores ({meta['machine']}), "
        f"Python {meta['python']}, SQLite {meta['sqlite']}, litemirror {meta['litemirror']}, "
        f"PostgreSQL {meta['postgresql'] or '(not run)'} with psycopg {meta['psycopg']}; "
        f"{meta['duration_s']:g} s per cell{' (quick mode)' if meta['quick'] else ''}.",
        "",
        "All servers on loopback, data on the same disk. PostgreSQL: primary + one "
        "synchronous standby (pg_basebackup), `fsync=on`, otherwise default settings. "
        "litemirror: one member, `durable` (journal fsync before commit). SQLite: in-process, "
        "WAL, `synchronous=FULL`. tpcb: 10 statements (BEGIN, transfer between two of "
        f"{ACCOUNTS:,} accounts with read-backs, teller and branch of {BRANCHES} branches, "
        "two history rows, COMMIT). blob: 1 MB incompressible BLOB per INSERT.",
    ]
    if ratios:
        md += [
            "",
            "litemirror / PostgreSQL (sync on), same run; TPS above 1 and latency below 1 "
            "favour litemirror:",
            "",
            _ratio_table(ratios),
        ]
    md += ["", _cells_table(cells)]
    if "many_databases" in extra:
        m = extra["many_databases"]
        md += [
            "",
            f"{m['databases']} databases in one member, {m['clients']} clients: "
            f"{m['tps']:,.0f} TPS, "
            f"{m.get('threads')} threads, {m.get('open_files')} open files, RSS {m.get('vmrss')}.",
        ]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    sys.exit(main())
