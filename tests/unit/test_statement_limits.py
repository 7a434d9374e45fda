"""A job stopped by its time limit (or its client) fails alone; the rest of its group commits.

A real Database (apsw file, real journal and its writer thread). The writer
connection is shared by every session and one worker hop runs several
clients' jobs in turn, so a stop must hit the job that overran and nothing
else — even though SQLite rolls a whole transaction back when it interrupts a
statement that writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from litemirror.errors import OperationalError
from litemirror.journal import Journal
from litemirror.server.storage.database import Database
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.statements import (
    ShutdownFlag,
    StatementGuard,
    StatementReports,
    Stop,
    session_limit,
    shorten,
)
from litemirror.testing.databases import standalone_database

#: Runs until stopped (an endless recursive CTE), as a read and as a write.
ENDLESS_READ = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
)
ENDLESS_WRITE = (
    "UPDATE t SET v = (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
    "SELECT count(*) FROM r)"
)


@asynccontextmanager
async def database(tmp: Path) -> AsyncIterator[tuple[Database, Journal]]:
    loop = asyncio.get_running_loop()
    journal = Journal.open(tmp / "journal")
    jw = JournalWriter(journal, loop)
    pool = ThreadPoolExecutor(2)
    reads = ThreadPoolExecutor(2)
    db = standalone_database(tmp / "app.db", executor=pool, journal=jw, read_executor=reads)
    try:
        await db.open()
        await db.write("exec", "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        await db.write("exec", "INSERT INTO t (v) VALUES ('first')")
        yield db, journal
    finally:
        await db.close()
        jw.close()
        journal.close()
        pool.shutdown()
        reads.shutdown()


async def rows(db: Database) -> list[Any]:
    res = await db.read("SELECT id, v FROM t ORDER BY id", None)
    assert res is not None
    return list(res.rows)


def test_an_interrupted_write_fails_alone_and_its_group_commits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with database(tmp_path) as (db, journal):
            before = journal.last_lsn
            slow = StatementGuard(0.3)
            # Queued together, so they run in one group and one worker hop:
            # the endless UPDATE between two inserts of other clients.
            jobs = [
                asyncio.ensure_future(db.write("exec", "INSERT INTO t (v) VALUES ('a')")),
                asyncio.ensure_future(db.write("exec", ENDLESS_WRITE, guard=slow)),
                asyncio.ensure_future(db.write("exec", "INSERT INTO t (v) VALUES ('c')")),
            ]
            t0 = time.monotonic()
            a, b, c = await asyncio.gather(*jobs, return_exceptions=True)
            assert isinstance(b, OperationalError), b
            assert b.message.startswith("interrupted: the statement ran longer than its time limit")
            assert b.sqlite_errorname == "SQLITE_INTERRUPT" and b.sqlite_code == 9
            assert slow.reason is Stop.TIMEOUT and slow.seconds >= 0.3
            assert not isinstance(a, BaseException) and not isinstance(c, BaseException)
            assert a[1] > before and c[1] > before  # committed, with an LSN
            assert time.monotonic() - t0 < 10
            assert await rows(db) == [(1, "first"), (2, "a"), (3, "c")]
            # Nothing of the stopped job reached the journal.
            payloads = [r.payload for r in journal.read_from(before + 1)]
            assert payloads and all(b"count" not in p for p in payloads)

    asyncio.run(scenario())
    # SQLite did roll the whole group back under the UPDATE; the inserts ran again.
    assert "1 job(s) of it run again" in caplog.text or "2 job(s)" in caplog.text, caplog.text


def test_a_client_interrupt_stops_only_its_own_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with database(tmp_path) as (db, _):
            mine = StatementGuard(0)  # no time limit: only the interrupt stops it
            running = asyncio.ensure_future(db.write("exec", ENDLESS_WRITE, guard=mine))
            other = asyncio.ensure_future(db.write("exec", "INSERT INTO t (v) VALUES ('other')"))
            await asyncio.sleep(0.3)
            assert not running.done()
            mine.cancel(Stop.CLIENT)
            with pytest.raises(OperationalError) as err:
                await running
            assert err.value.message == "interrupted"  # sqlite3's words
            await other
            assert await rows(db) == [(1, "first"), (2, "other")]

    asyncio.run(scenario())


def test_a_stopped_executemany_keeps_nothing_and_others_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with database(tmp_path) as (db, _):
            guard = StatementGuard(0.2)
            many = ([i] for i in range(10**9))  # endless cheap statements: stopped between them
            slow = asyncio.ensure_future(
                db.write("many", "INSERT INTO t (v) VALUES (?)", many=list_like(many), guard=guard)
            )
            fast = asyncio.ensure_future(db.write("exec", "INSERT INTO t (v) VALUES ('fast')"))
            with pytest.raises(OperationalError, match="time limit"):
                await slow
            await fast
            assert await rows(db) == [(1, "first"), (2, "fast")]

    asyncio.run(scenario())


class list_like:
    """An iterable of parameter sets produced lazily (as a large request's are)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __iter__(self) -> Any:
        return iter(self._source)


def test_a_transaction_whose_write_is_stopped_ends_as_in_sqlite(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with database(tmp_path) as (db, _):
            txn = await db.begin()
            await db.txn_execute(txn, "exec", "INSERT INTO t (v) VALUES ('in txn')", None, None)
            # A stopped read leaves the transaction open ...
            with pytest.raises(OperationalError, match="time limit"):
                await db.txn_execute(txn, "exec", ENDLESS_READ, None, None, StatementGuard(0.2))
            assert not txn.finished
            # ... a stopped write ends it: SQLite rolled it back.
            with pytest.raises(OperationalError, match="time limit"):
                await db.txn_execute(txn, "exec", ENDLESS_WRITE, None, None, StatementGuard(0.2))
            assert txn.finished
            await db.write("exec", "INSERT INTO t (v) VALUES ('after')")
            assert await rows(db) == [(1, "first"), (2, "after")]

    asyncio.run(scenario())


def test_a_read_stops_at_its_limit_and_the_reader_serves_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with database(tmp_path) as (db, _):
            with pytest.raises(OperationalError, match=r"time limit of 0\.2 s"):
                await db.read(ENDLESS_READ, None, StatementGuard(0.2))
            shutdown = ShutdownFlag()
            guard = StatementGuard(0, shutdown=shutdown)
            read = asyncio.ensure_future(db.read(ENDLESS_READ, None, guard))
            await asyncio.sleep(0.2)
            shutdown.set = True
            with pytest.raises(OperationalError, match="shutting down") as err:
                await read
            assert err.value.retryable
            assert await rows(db) == [(1, "first")]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("configured", "requested", "limit"),
    [(30, None, 30), (30, 5, 5), (30, 60, 30), (0, 5, 5), (0, None, 0), (30, 0, 30)],
)
def test_a_connection_may_lower_its_limit_never_raise_it(
    configured: float, requested: float | None, limit: float
) -> None:
    assert session_limit(configured, requested) == limit


def test_reports_are_rate_limited_per_user_and_database_and_show_no_parameters() -> None:
    now = [100.0]
    said: list[tuple[str, str, dict[str, Any]]] = []
    reports = StatementReports(
        lambda kind, message, _severity, **data: said.append((kind, message, data)),
        slow_s=1.0,
        clock=lambda: now[0],
    )

    def finished(user: str, reason: Stop | None, seconds: float) -> None:
        guard = StatementGuard(2.0, user=user, database="app", sql="SELECT  ?\n FROM t")
        guard.reason, guard.seconds = reason, seconds
        reports.finished(guard)

    finished("alice", Stop.TIMEOUT, 2.0)
    finished("alice", Stop.TIMEOUT, 2.0)  # within the minute: counted, not said
    finished("bob", Stop.TIMEOUT, 2.0)
    finished("alice", None, 1.5)  # slow: another kind
    finished("alice", None, 0.5)  # fast: nothing
    finished("alice", Stop.CLIENT, 0.5)  # the client's own interrupt: nothing
    now[0] += 61
    finished("alice", Stop.TIMEOUT, 2.0)
    kinds = [(kind, data["user"], data["more"]) for kind, _, data in said]
    assert kinds == [
        ("statement_interrupted", "alice", 0),
        ("statement_interrupted", "bob", 0),
        ("slow_statement", "alice", 0),
        ("statement_interrupted", "alice", 1),
    ]
    assert said[0][2]["sql"] == "SELECT ? FROM t"
    assert "1 more like it" in said[3][1]
    assert shorten("x" * 1000).endswith("...") and len(shorten("x" * 1000)) == 120
