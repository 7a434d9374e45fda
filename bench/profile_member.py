"""Measure and profile one litemirror member (or a primary + backup) under load.

A small driver for docs/performance.md, separate from the full matrix in
``bench.run``: it starts the real member processes, runs one or more
workload cells with the shared harness (``bench.harness``; client
processes), repeats each cell and prints the median, and can attach
``py-spy`` to the primary while a cell runs.

    python -m bench.profile_member --members 1 --workload insert --clients 1,16 --repeat 5
    python -m bench.profile_member --members 2 --workload insert --clients 1,16
    python -m bench.profile_member --workload tpcb --clients 16 --pyspy /tmp/tpcb.txt
    python -m bench.profile_member --workload point_select --client-profile
    python -m bench.profile_member --members 2 --clients 1,16 --tls   # TLS everywhere

``--pyspy FILE`` records the primary during the last repeat of each cell
(``.svg`` gives a flame graph, anything else py-spy's "raw" collapsed
stacks, which ``--top`` summarises by function). ``--client-profile`` runs
one extra client in this process under cProfile and prints its top
functions, to see what the driver itself costs.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import litemirror
from bench.harness import CellResult, Factory, run_cell
from bench.systems import SQLITE, make_step
from litemirror.testing.cluster import Cluster


def start(base: Path, members: int, tls: bool = False) -> Cluster:
    names = [("a", "failover")] + ([("b", "failover")] if members > 1 else [])
    cluster = Cluster(base, members=names, databases=["app"], name="prof", tls_require=tls)
    cluster.start()
    if members > 1:
        # Measure the synchronous path only once the backup is active.
        cluster["a"].wait_until(
            lambda st: bool(st.get("backup_active")), timeout=60, what="backup active"
        )
    c = litemirror.connect(cluster.url("app"), isolation_level=None)
    for stmt in SQLITE.schema + SQLITE.prefill:
        c.execute(stmt)
    c.close()
    return cluster


def factory(url: str, workload: str) -> Factory:
    def make(index: int) -> Callable[[int], None]:
        conn = litemirror.connect(url, isolation_level=None if workload != "tpcb" else "")
        return make_step(workload, conn, index, SQLITE)

    return make


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def top_of_raw(path: Path, n: int = 25) -> str:
    """Summarise py-spy raw (collapsed) stacks: self and inclusive share per function."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        self_counts[frames[-1]] += k
        for f in set(frames):
            incl_counts[f] += k
    out = [f"{total} samples"]
    out.append("-- self --")
    out += [f"{100 * v / total:5.1f}%  {f}" for f, v in self_counts.most_common(n)]
    out.append("-- inclusive --")
    out += [f"{100 * v / total:5.1f}%  {f}" for f, v in incl_counts.most_common(n)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--members", type=int, default=1, choices=(1, 2))
    ap.add_argument("--workload", default="insert", help="insert, tpcb, point_select (comma list)")
    ap.add_argument("--clients", default="1,16", help="comma list")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pyspy", type=Path, help="record the primary with py-spy into this file")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument(
        "--gil", action="store_true", help="py-spy --gil: only the thread holding the GIL"
    )
    ap.add_argument("--client-profile", action="store_true")
    ap.add_argument(
        "--tls", action="store_true", help="tls.require: clients and the backup use mutual TLS"
    )
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="lm-prof-"))
    cluster = start(base / "c", args.members, args.tls)
    url = cluster.url("app")
    proc = cluster["a"].proc
    assert proc is not None
    summary: list[str] = []
    try:
        for workload in args.workload.split(","):
            for clients in [int(x) for x in args.clients.split(",")]:
                cells: list[CellResult] = []
                cpu_us: list[float] = []
                for rep in range(args.repeat):
                    spy = None
                    if args.pyspy is not None and rep == args.repeat - 1:
                        out = args.pyspy.with_name(
                            f"{args.pyspy.stem}-{workload}-{clients}c{args.pyspy.suffix}"
                        )
                        fmt = "flamegraph" if out.suffix == ".svg" else "raw"
                        cmd = [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "-p",
                            str(proc.pid),
                        ]
                        cmd += ["-o", str(out), "-f", fmt, "-r", "250", "-d"]
                        cmd += [str(int(args.duration + 1)), "--nonblocking"]
                        cmd += ["--threads"] if fmt == "raw" else []
                        cmd += ["--native"] if args.native else []
                        cmd += ["--gil"] if args.gil else []
                        spy = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL), out)
                    name = f"litemirror {args.members}m"
                    cpu0 = cpu_seconds(proc.pid)
                    cell = run_cell(name, workload, clients, factory(url, workload), args.duration)
                    cpu1 = cpu_seconds(proc.pid)
                    cells.append(cell)
                    # Member CPU per transaction: the cost that bounds throughput
                    # on a small machine, and far less noisy than TPS.
                    n = max(cell.transactions, 1)
                    cpu_us.append(1e6 * (sum(cpu1) - sum(cpu0)) / n)
                    sys_us = 1e6 * (cpu1[1] - cpu0[1]) / n
                    print(
                        f"{workload:12s} {clients:2d}c rep{rep}: {cell.tps:8.1f} TPS  "
                        f"p50 {cell.p50_ms:.3f} ms  p99 {cell.p99_ms:.3f} ms  "
                        f"member CPU {cpu_us[-1]:.0f} us/txn (sys {sys_us:.0f})  err {cell.errors}",
                        flush=True,
                    )
                    if spy is not None:
                        spy[0].wait(60)
                        if spy[1].suffix != ".svg" and spy[1].exists():
                            print(top_of_raw(spy[1]))
                tps = statistics.median(c.tps for c in cells)
                p50 = statistics.median(c.p50_ms for c in cells)
                p99 = statistics.median(c.p99_ms for c in cells)
                summary.append(
                    f"{args.members}m {workload:12s} {clients:2d}c  median TPS {tps:8.1f}  "
                    f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
                    f"CPU {statistics.median(cpu_us):.0f} us/txn  "
                    f"({args.repeat} x {args.duration:g}s)"
                )
                print(summary[-1], flush=True)
            if args.client_profile:
                step = factory(url, workload)(999)
                prof = cProfile.Profile()
                deadline = time.monotonic() + args.duration
                i = 0
                prof.enable()
                while time.monotonic() < deadline:
                    step(i)
                    i += 1
                prof.disable()
                print(f"client profile, {workload}: {i} transactions")
                pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
