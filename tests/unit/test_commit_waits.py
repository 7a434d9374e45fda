"""A group whose record is not committed is never committed in SQLite.

Component test: a real Database (apsw file, real journal and its writer
thread) whose commits wait on a real Hub, as on the primary. The backup link
is a LinkState whose acknowledgements the test sets, the way the sender does.
The race the test drives is the demotion one: while a group waits for the
backup, the member stops leading (its replication links are dropped) —
which is no proof that it may commit alone, so the group must not commit;
it is rolled back when the waiters are aborted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import apsw
import pytest

from litemirror.errors import CommitUnknownError
from litemirror.journal import Journal
from litemirror.replication.commit import CommitMode
from litemirror.server.storage.database import Database
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.stream.hub import Hub, LinkState
from litemirror.testing.databases import standalone_database


@asynccontextmanager
async def primary(tmp: Path) -> AsyncIterator[tuple[Database, Hub, Journal]]:
    loop = asyncio.get_running_loop()
    journal = Journal.open(tmp / "journal")
    jw = JournalWriter(journal, loop)
    # An arbiter decides on an ack timeout; the test plays it.
    hub = Hub(
        backup="b",
        qos_timeout=30.0,
        last_lsn=lambda: journal.last_lsn,
        on_ack_timeout=lambda: None,
    )
    jw.on_durable(hub.records_durable)
    pool = ThreadPoolExecutor(2)
    path = tmp / "app.db"
    db = standalone_database(
        path, executor=pool, journal=jw, group_max=8, readers=1, replicate=hub.wait_for
    )
    try:
        await db.open()
        await hub.set_backup_active(False, "start alone")
        await db.write("exec", "CREATE TABLE t (x)")
        hub.connected(LinkState(member="b", kind="failover", state="streaming"))
        hub.connected(LinkState(member="r", kind="reporting", state="streaming"))
        await hub.acked("b", journal.last_lsn, journal.last_lsn, journal.last_lsn)
        assert hub.mode is CommitMode.WITH_BACKUP
        yield db, hub, journal
    finally:
        await db.close()
        jw.close()
        pool.shutdown()


def rows(path: Path) -> list[int]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]
    finally:
        conn.close()


async def _demotion(tmp: Path) -> None:
    async with primary(tmp) as (db, hub, journal):
        write = asyncio.ensure_future(db.write("exec", "INSERT INTO t VALUES (1)"))
        while journal.last_lsn < 2:  # the group's record is durable locally, not acked
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert not write.done()
        # Demotion drops the links: the backup is no longer active, but nothing
        # proves this member may commit alone.
        hub.drop_all()
        # Anything that wakes the waiters (here an acknowledgement still on the
        # wire from a reporting member) must not let the group through.
        await hub.acked("r", 2, 2, 2)
        await asyncio.sleep(0.3)
        assert not write.done(), "the group went on without proof"
        assert rows(db.path) == []
        assert hub.committed_lsn < 2
        # The failover agent aborts what waits: the group is rolled back.
        await hub.abort_waiters(CommitUnknownError("deposed"))
        with pytest.raises(CommitUnknownError):
            await write
        assert rows(db.path) == []
        assert journal.last_lsn == 2  # in the journal, for the rejoin to roll back


def test_demotion_never_commits_a_waiting_group(tmp_path: Path) -> None:
    asyncio.run(_demotion(tmp_path))


async def _proofs(tmp: Path) -> None:
    async with primary(tmp) as (db, hub, journal):
        # 1. The backup acknowledges: committed.
        write = asyncio.ensure_future(db.write("exec", "INSERT INTO t VALUES (1)"))
        while journal.last_lsn < 2:
            await asyncio.sleep(0.01)
        assert not write.done()
        await hub.acked("b", 2, 2, 2)
        await write
        assert rows(db.path) == [1] and hub.committed_lsn == 2
        # 2. The arbiter recorded the backup inactive: go on alone.
        write = asyncio.ensure_future(db.write("exec", "INSERT INTO t VALUES (2)"))
        while journal.last_lsn < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert not write.done() and rows(db.path) == [1]
        await hub.set_backup_active(False, "the arbiter recorded b inactive")
        await write
        assert rows(db.path) == [1, 2] and hub.committed_lsn == 3
        # 3. Alone, records commit as they become durable.
        await db.write("exec", "INSERT INTO t VALUES (3)")
        assert hub.committed_lsn == 4
        # 4. Deposed while alone: held, nothing more commits.
        hub.hold()
        write = asyncio.ensure_future(db.write("exec", "INSERT INTO t VALUES (4)"))
        while journal.last_lsn < 5:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert not write.done() and hub.committed_lsn == 4
        await hub.abort_waiters(CommitUnknownError("deposed"))
        with pytest.raises(CommitUnknownError):
            await write
        assert rows(db.path) == [1, 2, 3]


def test_only_proof_commits(tmp_path: Path) -> None:
    asyncio.run(_proofs(tmp_path))
