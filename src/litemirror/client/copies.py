"""Local copies of a mirrored database: ``backup()``, ``iterdump()``, ``serialize()``.

Theory of operation
-------------------
All three start from one consistent copy that the member takes from a read
snapshot and sends in chunks (``Snapshot`` request, see
:mod:`litemirror.server.storage.snapshot`). :class:`CopyFile` writes the chunks to a
temporary file and checks their order, the size and the xxh3_64 digest, so
a damaged or cut transfer never reaches the caller. From that file:

* ``backup(target)`` copies it into a local :mod:`sqlite3` or apsw
  connection with SQLite's backup API (:func:`copy_into`), so ``pages``,
  ``progress`` and ``sleep`` mean what they mean in :mod:`sqlite3`;
* ``iterdump()`` is :mod:`sqlite3`'s own dump of it (:func:`dump_lines`);
* ``serialize()`` is its bytes.

The copy holds the database's schema and rows only: the member leaves its
bookkeeping table out. The temporary file is deleted when the copy has been
used (for ``iterdump``, when the iterator is finished or dropped).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import xxhash

from litemirror import errors
from litemirror.protocol import messages as m

Progress = Callable[[int, int, int], object]


class CopyFile:
    """Receives a ``Snapshot`` answer into a temporary file; ``path`` once complete."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="litemirror-copy-", suffix=".sqlite")
        os.close(fd)
        self.path = Path(name)
        self._received = 0
        self._hash = xxhash.xxh3_64()
        self.lsn = 0
        self.complete = False

    def write(self, chunk: m.FileChunk) -> None:
        if chunk.offset == 0:
            # The first chunk, or the first of a copy sent again after a reconnect.
            self._received = 0
            self._hash = xxhash.xxh3_64()
            self.path.write_bytes(b"")
        if chunk.offset != self._received:
            raise errors.ProtocolError(
                f"database copy: chunk at offset {chunk.offset}, expected {self._received}; "
                "the copy was abandoned"
            )
        with open(self.path, "ab") as f:
            f.write(chunk.data)
        self._hash.update(chunk.data)
        self._received += len(chunk.data)
        if chunk.last:
            if chunk.size != self._received or chunk.digest != self._hash.hexdigest():
                raise errors.ProtocolError(
                    f"database copy: received {self._received} bytes with digest "
                    f"{self._hash.hexdigest()}, the member sent {chunk.size} bytes with "
                    f"digest {chunk.digest}; the copy was abandoned"
                )
            self.lsn = chunk.lsn
            self.complete = True

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def check_target(target: object) -> None:
    """Raise TypeError unless ``target`` is a connection ``copy_into`` can fill."""
    if not isinstance(target, sqlite3.Connection | apsw.Connection):
        raise TypeError(
            f"backup() target must be a sqlite3.Connection or an apsw.Connection, "
            f"not {type(target).__name__}"
        )


def copy_into(
    source: Path,
    target: object,
    *,
    pages: int = -1,
    progress: Progress | None = None,
    sleep: float = 0.250,
) -> None:
    """Copy the database file ``source`` into ``target`` (a sqlite3 or apsw connection)."""
    if isinstance(target, sqlite3.Connection):
        local = sqlite3.connect(source)
        try:
            local.backup(target, pages=pages, progress=progress, sleep=sleep)
        finally:
            local.close()
        return
    if isinstance(target, apsw.Connection):
        reader = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            with target.backup("main", reader, "main") as backup:
                while not backup.done:
                    backup.step(pages if pages > 0 else -1)
                    if progress is not None:
                        status = apsw.SQLITE_DONE if backup.done else apsw.SQLITE_OK
                        progress(status, backup.remaining, backup.page_count)
        finally:
            reader.close()
        return
    check_target(target)


def dump_lines(source: Path) -> Iterator[str]:
    """:mod:`sqlite3`'s ``iterdump()`` of ``source``; the file is deleted after it."""
    local = sqlite3.connect(source)

    def cleanup() -> None:
        local.close()
        source.unlink(missing_ok=True)

    def lines() -> Iterator[str]:
        try:
            yield from local.iterdump()
        finally:
            done()

    dump = lines()
    # Also when the caller drops the iterator unstarted or half read.
    done = weakref.finalize(dump, cleanup)
    return dump


def read_bytes(source: Path) -> bytes:
    try:
        return source.read_bytes()
    finally:
        source.unlink(missing_ok=True)


def unknown_schema(name: Any) -> errors.OperationalError:
    """What sqlite3 says for a schema name other than "main" (we have nothing attached)."""
    return errors.OperationalError(f"unknown database {name}")
