"""Consistent copies of a database for a client (``Connection.backup()``, ``iterdump()``).

Theory of operation
-------------------
A client's ``Snapshot`` request is answered with the database as it was at
one instant: the copy is taken with SQLite's online backup API from a read
transaction (:func:`~.seeding.make_copy`, the same copy a new member is
seeded from), so writers are never blocked and the copy holds exactly the
transactions committed when it began. The member's bookkeeping table
(``_litemirror_meta``) is dropped from the copy: the client gets its own
schema and rows, nothing else. The copy is written to a file under
``data_dir/snapshots`` and sent in chunks with its size and xxh3_64 digest,
then deleted.

Bounds, because a copy costs the member disk space and a worker thread:

* at most :data:`MAX_IN_FLIGHT` copies exist at a time on a member (a
  further request gets a retryable ``OperationalError``);
* a copy is refused when it would leave less than :func:`reserve` bytes
  free on the member's disk (the journal must never run out of room for a
  copy someone asked for);
* a client that stops reading for :data:`STALL_S` seconds is disconnected
  and its copy deleted.

Files are named after the member process that made them, so copies left by
a member that was killed are recognised and deleted by the next request.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import apsw

from litemirror.engine.meta import META_TABLE
from litemirror.errors import OperationalError
from litemirror.server.stream.seeding import make_copy

#: Folder under the member's data_dir that holds copies being sent.
FOLDER = "snapshots"
#: Copies that may exist at once on one member.
MAX_IN_FLIGHT = 2
#: Seconds a client may leave a chunk unread before it is disconnected.
STALL_S = 60.0
#: Files made by this process start with this; any other file there is a left-over.
_RUN = f"{os.getpid()}-{time.time_ns()}"


def reserve(total: int) -> int:
    """Bytes that must stay free on a disk of ``total`` bytes after a copy: 5 %, ≥ 64 MiB."""
    return max(64 * 1024 * 1024, total // 20)


def claim(folder: Path, source: Path) -> Path:
    """Reserve the file for a new copy of ``source``, or raise OperationalError (nothing made).

    Each copy gets a directory of its own, which exists from the claim until
    :func:`release`, so the count of copies in flight never depends on the
    copy's file (the backup API replaces it). Runs on the event loop without
    awaiting, so two requests cannot both see the last free place.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ours = []
    for entry in folder.iterdir():
        if entry.name.startswith(_RUN):
            ours.append(entry)
        else:
            _remove(entry)  # left by an earlier run of the member
    if len(ours) >= MAX_IN_FLIGHT:
        raise OperationalError(
            f"{len(ours)} copies of databases are being sent by this member already; "
            "retry backup() in a moment",
            retryable=True,
        )
    need = sum(p.stat().st_size for p in (source, Path(f"{source}-wal")) if p.exists())
    usage = shutil.disk_usage(folder)
    keep = reserve(usage.total)
    if usage.free - need < keep:
        raise OperationalError(
            f"not enough free disk on the member for a copy of {source.stem!r}: it needs "
            f"up to {need} bytes and {keep} bytes must stay free, {usage.free} are free; "
            "nothing was copied. Free space on the member or copy the file there"
        )
    place = folder / f"{_RUN}-{uuid.uuid4().hex}"
    place.mkdir()
    return place / "copy.sqlite"


def release(copy: Path) -> None:
    """Delete a claimed copy and its place (also when it was never made)."""
    _remove(copy.parent)


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def make_snapshot(source: Path, copy: Path) -> int:
    """Copy ``source`` into ``copy`` without the meta table (blocking); return its LSN."""
    lsn = make_copy(source, copy)
    conn = apsw.Connection(str(copy))
    try:
        conn.execute(f"DROP TABLE IF EXISTS main.{META_TABLE}")
    finally:
        conn.close()
    return lsn
