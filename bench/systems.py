"""The systems under test and the workloads every one of them runs.

Every system can start itself, create the same schema, and hand out a client
factory per workload. The workloads are written once, against the DB-API
surface that sqlite3, litemirror's driver and psycopg share (``execute``,
``commit``, ``rollback``), so the client side does the same work everywhere:

- ``insert``: one single-row INSERT, its own transaction.
- ``tpcb``: a pgbench-like read-write transaction of 10 statements (BEGIN, a
  transfer between two accounts with a read-back of each, teller and branch
  totals, two history rows, COMMIT). Rows are locked in one global order
  (accounts by ascending id, then teller, then branch) so PostgreSQL's row
  locks cannot deadlock; SQLite has a single writer anyway.
- ``point_select``: SELECT one account by primary key.
- ``blob``: INSERT of a 1 MB incompressible BLOB.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litemirror
from litemirror.testing.cluster import Cluster

from .harness import Factory

WORKLOADS = ("insert", "tpcb", "point_select", "blob")

#: pgbench's shape (10 tellers per branch) with more branches than scale 1 so
#: that 64 clients do not all queue on one branch row in PostgreSQL.
BRANCHES = 64
TELLERS = BRANCHES * 10
ACCOUNTS = 100_000
BLOB_BYTES = 1 << 20

INSERT_DDL = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, c INTEGER, v TEXT)"

SINGLE = "litemirror (1 member)"
MIRROR = "litemirror primary+backup (durable)"
MIRROR_ARBITER = "litemirror primary+backup+arbiter"


@dataclass(frozen=True)
class Dialect:
    """The few places where SQLite and PostgreSQL SQL differ."""

    name: str
    schema: tuple[str, ...]
    #: Run before each blob cell so every one starts from an empty table.
    empty_blobs: tuple[str, ...]
    prefill: tuple[str, ...]
    qmark: bool

    def sql(self, query: str) -> str:
        # Queries are written with qmark placeholders; psycopg wants %s.
        return query if self.qmark else query.replace("?", "%s")


def _sqlite_range(n: int) -> str:
    return f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) "


SQLITE = Dialect(
    name="sqlite",
    schema=(
        INSERT_DDL,
        "CREATE TABLE IF NOT EXISTS branches (bid INTEGER PRIMARY KEY, bbalance INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS tellers "
        "(tid INTEGER PRIMARY KEY, bid INTEGER NOT NULL, tbalance INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS accounts "
        "(aid INTEGER PRIMARY KEY, bid INTEGER NOT NULL, abalance INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS history "
        "(tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime REAL)",
        "CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, c INTEGER, b BLOB)",
    ),
    # DROP, not DELETE: litemirror would journal every deleted megabyte.
    empty_blobs=(
        "DROP TABLE IF EXISTS blobs",
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, c INTEGER, b BLOB)",
    ),
    prefill=(
        _sqlite_range(BRANCHES) + "INSERT INTO branches SELECT x, 0 FROM s",
        _sqlite_range(TELLERS)
        + f"INSERT INTO tellers SELECT x, (x - 1) % {BRANCHES} + 1, 0 FROM s",
        _sqlite_range(ACCOUNTS)
        + f"INSERT INTO accounts SELECT x, (x - 1) % {BRANCHES} + 1, 0 FROM s",
    ),
    qmark=True,
)

POSTGRES = Dialect(
    name="postgres",
    schema=(
        "CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, c integer, v text)",
        "CREATE TABLE IF NOT EXISTS branches (bid integer PRIMARY KEY, bbalance bigint NOT NULL)",
        "CREATE TABLE IF NOT EXISTS tellers "
        "(tid integer PRIMARY KEY, bid integer NOT NULL, tbalance bigint NOT NULL)",
        "CREATE TABLE IF NOT EXISTS accounts "
        "(aid integer PRIMARY KEY, bid integer NOT NULL, abalance bigint NOT NULL)",
        # Like pgbench_history: no primary key.
        "CREATE TABLE IF NOT EXISTS history "
        "(tid integer, bid integer, aid integer, delta integer, mtime double precision)",
        "CREATE TABLE IF NOT EXISTS blobs (id bigserial PRIMARY KEY, c integer, b bytea)",
    ),
    empty_blobs=("TRUNCATE blobs",),
    prefill=(
        f"INSERT INTO branches SELECT g, 0 FROM generate_series(1, {BRANCHES}) g",
        f"INSERT INTO tellers SELECT g, (g - 1) % {BRANCHES} + 1, 0 "
        f"FROM generate_series(1, {TELLERS}) g",
        f"INSERT INTO accounts SELECT g, (g - 1) % {BRANCHES} + 1, 0 "
        f"FROM generate_series(1, {ACCOUNTS}) g",
        "VACUUM ANALYZE",
    ),
    qmark=False,
)


def make_step(workload: str, conn: Any, index: int, d: Dialect) -> Callable[[int], None]:
    """One transaction of ``workload`` on ``conn``, as the harness calls it.

    ``conn`` must be in autocommit mode for the one-statement workloads and
    open transactions implicitly on DML for ``tpcb`` (litemirror's default
    isolation level, psycopg's default, sqlite3's default).
    """
    rng = random.Random(index)
    if workload == "insert":
        q = d.sql("INSERT INTO t (c, v) VALUES (?, ?)")
        payload = "x" * 32

        def insert(i: int) -> None:
            conn.execute(q, (index, payload))

        return _loud(insert, d.name, workload)
    if workload == "point_select":
        q = d.sql("SELECT abalance FROM accounts WHERE aid = ?")

        def point_select(i: int) -> None:
            row = conn.execute(q, (rng.randint(1, ACCOUNTS),)).fetchone()
            if row is None:
                raise RuntimeError("point select found no row: the accounts table is not filled")

        return _loud(point_select, d.name, workload)
    if workload == "blob":
        q = d.sql("INSERT INTO blobs (c, b) VALUES (?, ?)")
        blob = os.urandom(BLOB_BYTES)

        def blob_insert(i: int) -> None:
            conn.execute(q, (index, blob))

        return _loud(blob_insert, d.name, workload)
    if workload == "tpcb":
        return _loud(_tpcb_step(conn, rng, d), d.name, workload)
    raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")


def _tpcb_step(conn: Any, rng: random.Random, d: Dialect) -> Callable[[int], None]:
    upd_acc = d.sql("UPDATE accounts SET abalance = abalance + ? WHERE aid = ?")
    sel_acc = d.sql("SELECT abalance FROM accounts WHERE aid = ?")
    upd_tel = d.sql("UPDATE tellers SET tbalance = tbalance + ? WHERE tid = ?")
    upd_br = d.sql("UPDATE branches SET bbalance = bbalance + ? WHERE bid = ?")
    ins_hist = d.sql("INSERT INTO history (tid, bid, aid, delta, mtime) VALUES (?, ?, ?, ?, ?)")

    def tpcb(i: int) -> None:
        a1, a2 = sorted(rng.sample(range(1, ACCOUNTS + 1), 2))
        tid = rng.randint(1, TELLERS)
        bid = (tid - 1) % BRANCHES + 1
        delta = rng.randint(-5000, 5000)
        now = time.time()
        try:
            # The first DML opens the transaction (statement 1, BEGIN).
            conn.execute(upd_acc, (delta, a1))
            conn.execute(sel_acc, (a1,)).fetchone()
            conn.execute(upd_acc, (-delta, a2))
            conn.execute(sel_acc, (a2,)).fetchone()
            conn.execute(upd_tel, (delta, tid))
            conn.execute(upd_br, (delta, bid))
            conn.execute(ins_hist, (tid, bid, a1, delta, now))
            conn.execute(ins_hist, (tid, bid, a2, -delta, now))
            conn.commit()
        except BaseException:
            # Leave the connection usable for the next transaction.
            try:
                conn.rollback()
            except Exception:
                pass
            raise

    return tpcb


def _loud(step: Callable[[int], None], system: str, workload: str) -> Callable[[int], None]:
    """Print the first error of each client: the harness only counts them."""
    seen = False

    def wrapped(i: int) -> None:
        nonlocal seen
        try:
            step(i)
        except Exception as exc:
            if not seen:
                seen = True
                print(f"[{system} {workload}] first error: {exc!r}", file=sys.stderr, flush=True)
            raise

    return wrapped


class SQLiteSystem:
    """In-process SQLite, WAL, synchronous=FULL: the single-node floor."""

    name = "sqlite-inproc (sync=FULL)"

    def __init__(self, base: Path) -> None:
        self.path = base / "sqlite" / "bench.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        c = sqlite3.connect(self.path, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        for stmt in SQLITE.schema + SQLITE.prefill:
            c.execute(stmt)
        c.close()

    def stop(self) -> None:
        pass

    def empty_blobs(self) -> None:
        c = sqlite3.connect(self.path, isolation_level=None)
        for stmt in SQLITE.empty_blobs:
            c.execute(stmt)
        c.close()

    def insert_factory(self) -> Factory:
        return self.factory("insert")

    def factory(self, workload: str) -> Factory:
        path = self.path

        def make(index: int) -> Callable[[int], None]:
            # Default isolation level for tpcb so DML opens the transaction,
            # as with the other drivers; its first statement is a write, so
            # the deferred BEGIN takes the write lock at once.
            if workload == "tpcb":
                c = sqlite3.connect(path, timeout=60, isolation_level="DEFERRED")
            else:
                c = sqlite3.connect(path, timeout=60, isolation_level=None)
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA busy_timeout=60000")
            return make_step(workload, c, index, SQLITE)

        return make


class Litemirror:
    """litemirror members on loopback, started by the bench; clients use a host-list URL.

    ``members=1``: one member, ``durable`` = journal fsync before commit.
    ``members=2``: primary + backup (two failover members), commits wait until
    the backup has the record fsynced (``ack = "durable"``); with
    ``arbiter=True`` an arbiter runs too, so automatic failover is on.
    """

    def __init__(
        self,
        base: Path,
        databases: int = 1,
        *,
        members: int = 1,
        arbiter: bool = False,
        mirror: dict[str, Any] | None = None,
    ) -> None:
        self.dbs = ["app"] if databases == 1 else [f"t{i:04d}" for i in range(databases)]
        self.members = members
        if members == 1:
            self.name, sub = SINGLE, "lm1"
        elif arbiter:
            self.name, sub = MIRROR_ARBITER, "lm-pba"
        else:
            self.name, sub = MIRROR, "lm-pb"
        names = [("a", "failover"), ("b", "failover")][:members]
        self.cluster = Cluster(
            base / sub,
            members=names,
            databases=self.dbs,
            name="bench",
            arbiter=arbiter,
            mirror={"ack": "durable", **(mirror or {})},
        )

    def start(self) -> None:
        self.cluster.start()
        if self.members > 1:
            # Until the backup is active the primary commits alone: measure
            # only once every commit waits for the backup.
            self.cluster.primary().wait_until(
                lambda s: s.get("backup_active") is True, 60, "backup active"
            )
        if len(self.dbs) == 1:
            c = litemirror.connect(self.cluster.url(self.dbs[0]), isolation_level=None)
            for stmt in SQLITE.schema + SQLITE.prefill:
                c.execute(stmt)
            c.close()
            return
        # The many-databases cell only runs the insert workload.
        for db in self.dbs:
            c = litemirror.connect(self.cluster.url(db), isolation_level=None)
            c.execute(INSERT_DDL)
            c.close()

    def stop(self) -> None:
        self.cluster.stop()

    def empty_blobs(self) -> None:
        c = litemirror.connect(self.cluster.url(self.dbs[0]), isolation_level=None)
        for stmt in SQLITE.empty_blobs:
            c.execute(stmt)
        c.close()

    def backup_active(self) -> bool | None:
        """Whether the primary still counts its backup active (None: single member)."""
        if self.members == 1:
            return None
        return bool(self.cluster.primary().status().get("backup_active"))

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

    def factory(self, workload: str) -> Factory:
        if len(self.dbs) > 1:
            raise ValueError("the many-databases system runs many_databases_factory() only")
        url = self.cluster.url(self.dbs[0])

        def make(index: int) -> Callable[[int], None]:
            if workload == "tpcb":
                c = litemirror.connect(url)
            else:
                c = litemirror.connect(url, isolation_level=None)
            return make_step(workload, c, index, SQLITE)

        return make

    def insert_factory(self) -> Factory:
        return self.factory("insert")

    def many_databases_factory(self, clients: int) -> Factory:
        """Single-row inserts spread over every database.

        Client ``i`` owns databases ``i, i + clients, ...`` and keeps one
        connection open to each, round-robin, like an application with a
        connection per tenant database: the member sees one connection per
        database in all, within its connection limit, instead of every
        client reaching every database.
        """
        urls = [self.cluster.url(db) for db in self.dbs]

        def make(index: int) -> Callable[[int], None]:
            conns = [
                litemirror.connect(urls[k], isolation_level=None)
                for k in range(index, len(urls), clients)
            ]
            steps = [make_step("insert", c, index, SQLITE) for c in conns]

            def insert(i: int) -> None:
                steps[i % len(steps)](i)

            return insert

        return make
