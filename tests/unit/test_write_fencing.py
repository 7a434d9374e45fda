"""A group that started at one epoch never reaches the journal after the member stopped writing.

A real Database (apsw file, real journal and its writer thread); the member's
writable flag and epoch are plain variables, flipped the way a demotion flips
them while an interactive transaction waits on its client.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from litemirror.errors import NotPrimaryError, TransactionAbortedError
from litemirror.journal import Journal
from litemirror.server.storage.database import Database, open_writer
from litemirror.server.storage.jobs import TxnCommand
from litemirror.server.storage.journal_writer import JournalWriter


class Member:
    writable = True
    epoch = 1


async def _scenario(tmp: Path, abort_first: bool) -> tuple[BaseException, list[int]]:
    loop = asyncio.get_running_loop()
    journal = Journal.open(tmp / "journal")
    jw = JournalWriter(journal, loop)
    pool = ThreadPoolExecutor(2)
    me = Member()
    reg_path = tmp / "app.db"
    open_writer(str(reg_path)).close()
    db = Database(
        "app",
        reg_path,
        executor=pool,
        journal=jw,
        epoch=lambda: me.epoch,
        group_max=8,
        readers=1,
        txn_idle_timeout=30,
        checkpoint_pages=1000,
        on_commit=lambda _n, _l: None,
        writable=lambda: me.writable,
    )
    try:
        await db.open()
        await db.write("exec", "CREATE TABLE t (x)")
        txn = await db.begin()
        await db.txn_execute(txn, "exec", "INSERT INTO t VALUES (1)", None, None)
        # Deposed while the client thinks: a newer epoch, writes closed.
        me.writable, me.epoch = False, 2
        if abort_first:
            db.abort_transaction("the transaction was rolled back: demoted")
        cmd = TxnCommand(kind="commit", future=loop.create_future())
        if txn.finished:
            error: BaseException = TransactionAbortedError(txn.abort_reason or "")
        else:
            txn.commands.put_nowait(cmd)
            assert cmd.future is not None
            with pytest.raises((NotPrimaryError, TransactionAbortedError)) as ei:
                await cmd.future
            error = ei.value
        epochs = [r.epoch for r in journal.read_from(1)]
        return error, epochs
    finally:
        await db.close()
        jw.close()
        pool.shutdown()


@pytest.mark.parametrize("abort_first", [False, True])
def test_no_record_after_the_member_stopped_writing(tmp_path: Path, abort_first: bool) -> None:
    error, epochs = asyncio.run(_scenario(tmp_path, abort_first))
    assert "nothing was committed" in str(error) or "rolled back" in str(error)
    # Only the CREATE TABLE, at epoch 1: the transaction's insert is nowhere, and
    # nothing carries epoch 2.
    assert epochs == [1]
