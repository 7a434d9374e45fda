"""The systems under test, each able to start itself and hand out client factories."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litemirror
from litemirror.testing.cluster import Cluster

from .harness import Factory

INSERT_DDL = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, c INTEGER, v TEXT)"


class SQLiteSystem:
    """In-process SQLite, WAL, synchronous=FULL: the single-node floor."""

    name = "sqlite-inproc (sync=FULL)"

    def __init__(self, base: Path) -> None:
        self.path = base / "sqlite" / "bench.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        c = sqlite3.connect(self.path)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(INSERT_DDL)
        c.commit()
        c.close()

    def stop(self) -> None:
        pass

    def insert_factory(self) -> Factory:
        path = self.path

        def make(index: int) -> Callable[[int], None]:
            c = sqlite3.connect(path, timeout=60, isolation_level=None)
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA busy_timeout=60000")

            def step(i: int) -> None:
                c.execute("INSERT INTO t (c, v) VALUES (?, ?)", (index, "x" * 32))

            return step

        return make


class LitemirrorSingle:
    """One litemirror member on loopback; durable = journal fsync before commit."""

    name = "litemirror (1 member)"

    def __init__(self, base: Path, databases: int = 1) -> None:
        self.dbs = ["app"] if databases == 1 else [f"t{i:04d}" for i in range(databases)]
        self.cluster = Cluster(
            base / "lm1", members=[("a", "failover")], databases=self.dbs, name="bench"
        )

    def start(self) -> None:
        self.cluster.start()
        for db in self.dbs[:1] if len(self.dbs) == 1 else self.dbs:
            c = litemirror.connect(self.cluster.url(db), isolation_level=None)
            c.execute(INSERT_DDL)
            c.close()

    def stop(self) -> None:
        self.cluster.stop()

    def process_stats(self) -> dict[str, Any]:
        proc = self.cluster["a"].proc
        assert proc is not None
        pid = proc.pid
        stats: dict[str, Any] = {"pid": pid}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("Threads:", "VmRSS:")):
                    k, v = line.split(":", 1)
                    stats[k.lower()] = v.strip()
        stats["open_files"] = len(os.listdir(f"/proc/{pid}/fd"))
        return stats

    def insert_factory(self) -> Factory:
        urls = [self.cluster.url(db) for db in self.dbs]

        def make(index: int) -> Callable[[int], None]:
            conns: dict[int, Any] = {}

            def conn_for(k: int) -> Any:
                c = conns.get(k)
                if c is None:
                    c = conns[k] = litemirror.connect(urls[k], isolation_level=None)
                return c

            def step(i: int) -> None:
                k = (index + i * 7919) % len(urls) if len(urls) > 1 else 0
                conn_for(k).execute("INSERT INTO t (c, v) VALUES (?, ?)", (index, "x" * 32))

            return step

        return make
