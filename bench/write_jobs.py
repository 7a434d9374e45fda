"""The member's write path in-process: N one-shot INSERT jobs through ``Database``.

No sockets and no client: a real apsw database, the real journal and its
writer thread, and the group commit of :class:`litemirror.server.storage.database.Database`,
driven the way a session drives it. It isolates what the member itself spends
per job (capture, savepoints, group commit, journal), which is where a
per-statement cost such as a time limit would show.

    python -m bench.write_jobs                  # 10,000 jobs, 64 in flight, best of 5
    python -m bench.write_jobs --jobs 10000 --in-flight 1 --repeat 5

Prints the best (and median) jobs per second over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from litemirror.journal import Journal
from litemirror.server.storage.database import Database
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.testing.databases import standalone_database


async def _run(base: Path, jobs: int, in_flight: int) -> float:
    loop = asyncio.get_running_loop()
    journal = Journal.open(base / "journal")
    jw = JournalWriter(journal, loop)
    pool = ThreadPoolExecutor(8)
    db = standalone_database(
        base / "app.db", executor=pool, journal=jw, group_max=512, checkpoint_pages=4000
    )
    try:
        await db.open()
        await db.write("exec", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        sem = asyncio.Semaphore(in_flight)
        # Each job carries a time limit as a session gives it (releases that have
        # statement limits); run against an older tree, jobs go without.
        limits = _guard_factory()

        async def one(i: int) -> None:
            async with sem:
                sql, params = "INSERT INTO t (v) VALUES (?)", [f"value {i}"]
                if limits is None:
                    await db.write("exec", sql, params)
                else:
                    await db.write("exec", sql, params, guard=limits(sql))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(jobs)))
        return jobs / (time.perf_counter() - t0)
    finally:
        await db.close()
        jw.close()
        journal.close()
        pool.shutdown()


def _guard_factory() -> Callable[[str], Any] | None:
    """How a session makes a job's guard, if this tree has statement limits."""
    if "guard" not in inspect.signature(Database.write).parameters:
        return None
    from litemirror.server.storage.statements import ShutdownFlag, StatementGuard

    shutdown = ShutdownFlag()
    return lambda sql: StatementGuard(
        30.0, shutdown=shutdown, user="bench", database="app", sql=sql
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rates = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="lm-write-jobs-") as tmp:
            rates.append(asyncio.run(_run(Path(tmp), args.jobs, args.in_flight)))
    print(
        f"{args.jobs} one-shot INSERT jobs, {args.in_flight} in flight: "
        f"best {max(rates):,.0f} jobs/s, median {statistics.median(rates):,.0f} jobs/s "
        f"({args.repeat} runs)"
    )


if __name__ == "__main__":
    main()
