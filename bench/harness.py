"""The client harness shared by every system: N client processes, one timed loop each.

Each client process connects on its own, waits at a barrier, runs the
workload for the measured duration and reports every latency. The parent
merges them: TPS is transactions over the wall-clock window, latencies are
percentiles over every transaction of every client. Processes (not threads)
keep the Python client from being the bottleneck.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

#: make(client_index) -> step(i) that runs one transaction.
Factory = Callable[[int], Callable[[int], None]]


@dataclass
class CellResult:
    system: str
    workload: str
    clients: int
    tps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    transactions: int
    errors: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def _client(
    factory: Factory, index: int, barrier: Any, start_at: Any, duration: float, out: Any
) -> None:
    # The parent may turn SIGTERM into SystemExit; a client just dies.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    step = factory(index)
    lat: list[float] = []
    errors = 0
    barrier.wait()
    # The parent sets the start time only once the barrier has released it,
    # so a client can get here first: wait for the value, then for the time.
    while start_at.value == 0.0:
        time.sleep(0.001)
    while time.time() < start_at.value:
        time.sleep(0.001)
    end = start_at.value + duration
    i = 0
    while True:
        t0 = time.perf_counter()
        if time.time() >= end:
            break
        try:
            step(i)
        except Exception:
            # A failed transaction is neither throughput nor a latency sample.
            errors += 1
        else:
            lat.append(time.perf_counter() - t0)
        i += 1
    out.put((lat, errors))


def run_cell(
    system: str, workload: str, clients: int, factory: Factory, duration: float
) -> CellResult:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    start_at = ctx.Value("d", 0.0)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(factory, i, barrier, start_at, duration, out))
        for i in range(clients)
    ]
    try:
        for p in procs:
            p.start()
        barrier.wait(timeout=120)
        start_at.value = time.time() + 0.2
        results = [out.get(timeout=duration + 120) for _ in procs]
        for p in procs:
            p.join(30)
    finally:
        # On an error or an interrupt, clients left running would keep the
        # parent from exiting (multiprocessing joins them at exit).
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
    lat = sorted(x for r in results for x in r[0])
    errs = sum(r[1] for r in results)
    n = len(lat)
    return CellResult(
        system=system,
        workload=workload,
        clients=clients,
        tps=round(n / duration, 1),
        p50_ms=round(_pct(lat, 0.50) * 1000, 3),
        p95_ms=round(_pct(lat, 0.95) * 1000, 3),
        p99_ms=round(_pct(lat, 0.99) * 1000, 3),
        transactions=n,
        errors=errs,
        seconds=duration,
    )


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
