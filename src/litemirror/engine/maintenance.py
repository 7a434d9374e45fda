"""The statements that run outside any transaction: VACUUM and WAL checkpoints.

The member runs them between group commits, on the writer connection in
autocommit mode. VACUUM is journalled (a record of its own, see
:mod:`litemirror.engine.ops`) and every member runs :func:`vacuum` at the
same point of the history; :func:`checkpoint` is local to the member's file
and journals nothing (each member checkpoints its own WAL).
"""

from __future__ import annotations

from typing import Any

import apsw

from litemirror.engine.meta import read_lsn, write_lsn
from litemirror.engine.ops import VACUUM_SQL
from litemirror.engine.policy import CHECKPOINT_MODES
from litemirror.engine.sqlerrors import translate


def vacuum(conn: apsw.Connection, lsn: int) -> bool:
    """Apply a VACUUM record: VACUUM, then store ``lsn``; False if applied before.

    VACUUM cannot run inside a transaction, so the LSN is stored after it in
    one of its own. A crash in between runs it again on replay, which
    changes nothing more: VACUUM of a freshly vacuumed database leaves every
    row, rowids included, where it was.
    """
    try:
        if read_lsn(conn) >= lsn:
            return False
        conn.execute(VACUUM_SQL, can_cache=False)
        conn.execute("BEGIN IMMEDIATE", can_cache=False)
        write_lsn(conn, lsn)
        conn.execute("COMMIT", can_cache=False)
    except BaseException as exc:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK", can_cache=False)
        if isinstance(exc, apsw.Error):
            raise translate(exc) from exc
        raise
    return True


def checkpoint(conn: apsw.Connection, mode: str) -> list[tuple[Any, ...]]:
    """``PRAGMA wal_checkpoint(mode)``: its one row (busy, log, checkpointed)."""
    mode = mode if mode in CHECKPOINT_MODES else "PASSIVE"
    try:
        return [tuple(r) for r in conn.execute(f"PRAGMA main.wal_checkpoint({mode})")]
    except apsw.Error as exc:
        raise translate(exc) from exc
