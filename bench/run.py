"""``make bench``: run the comparison and write bench/results/latest.{json,md}.

Usage: ``python -m bench.run [--quick] [--duration S] [--clients 1,4,16,64]``.
Systems are interleaved per cell (litemirror, then SQLite, for each client
count) so machine drift hits both alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import apsw

import litemirror

from .harness import CellResult, run_cell
from .systems import LitemirrorSingle, SQLiteSystem

RESULTS = Path(__file__).resolve().parent / "results"


def _table(cells: list[CellResult]) -> str:
    lines = [
        "| system | workload | clients | TPS | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.system} | {c.workload} | {c.clients} | {c.tps:,.0f} | "
            f"{c.p50_ms:.2f} | {c.p95_ms:.2f} | {c.p99_ms:.2f} | {c.errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.run")
    ap.add_argument("--quick", action="store_true", help="short run, finishes in ~1 minute")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--clients", default=None)
    ap.add_argument("--many-dbs", type=int, default=1000)
    args = ap.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 10.0)
    clients = [int(x) for x in (args.clients or ("1,16" if args.quick else "1,4,16,64")).split(",")]

    base = Path(tempfile.mkdtemp(prefix="litemirror-bench-", dir=os.environ.get("BENCH_DIR")))
    cells: list[CellResult] = []
    extra: dict[str, Any] = {}
    try:
        lm = LitemirrorSingle(base)
        sq = SQLiteSystem(base)
        lm.start()
        sq.start()
        try:
            for n in clients:
                for system in (lm, sq):
                    cell = run_cell(system.name, "insert", n, system.insert_factory(), duration)
                    print(
                        f"{cell.system:32s} insert  {n:3d} clients  {cell.tps:9.1f} TPS  "
                        f"p50 {cell.p50_ms:.2f} ms  p99 {cell.p99_ms:.2f} ms",
                        flush=True,
                    )
                    cells.append(cell)
        finally:
            lm.stop()
        if args.many_dbs:
            many = LitemirrorSingle(base / "many", databases=args.many_dbs)
            many.start()
            try:
                cell = run_cell(
                    f"litemirror ({args.many_dbs} databases)",
                    "insert",
                    16,
                    many.insert_factory(),
                    duration,
                )
                stats = many.process_stats()
            finally:
                many.stop()
            cells.append(cell)
            extra["many_databases"] = {"databases": args.many_dbs, **cell.as_dict(), **stats}
            print(
                f"{cell.system:32s} insert   16 clients  {cell.tps:9.1f} TPS  "
                f"threads {stats.get('threads')} open files {stats.get('open_files')} "
                f"rss {stats.get('vmrss')}",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "apsw": apsw.apsw_version(),
        "litemirror": litemirror.__version__,
        "duration_s": duration,
        "quick": args.quick,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(
        json.dumps({"meta": meta, "cells": [c.as_dict() for c in cells], **extra}, indent=2) + "\n"
    )
    md = [
        f"Measured {meta['date']} on {meta['cores']} cores, Python {meta['python']}, "
        f"SQLite {meta['sqlite']}, {duration:g} s per cell.",
        "",
        _table(cells),
    ]
    if "many_databases" in extra:
        m = extra["many_databases"]
        md += [
            "",
            f"{m['databases']} databases in one member, 16 clients: {m['tps']:,.0f} TPS, "
            f"{m['threads']} threads, {m['open_files']} open files, RSS {m['vmrss']}.",
        ]
    (RESULTS / "latest.md").write_text("\n".join(md) + "\n")
    lm16 = next(
        (c for c in cells if c.system.startswith("litemirror (1") and c.clients == 16), None
    )
    sq16 = next((c for c in cells if c.system.startswith("sqlite") and c.clients == 16), None)
    if lm16 and sq16:
        print(f"ratio_tps_16c_insert_vs_sqlite={lm16.tps / sq16.tps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
