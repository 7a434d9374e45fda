"""Base copies: making a consistent copy of a database on the primary, installing it on a member.

The copy is taken with SQLite's online backup API from a read snapshot, so
writers are never blocked; the copy's own meta LSN says which records it
already contains, and the receiving member skips those when it applies the
stream. Files travel in chunks; the receiver checks size and an xxh3_64
digest of the whole file before renaming it into place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import xxhash

from litemirror.durable import replace_file
from litemirror.engine import meta
from litemirror.errors import ProtocolError

CHUNK = 1024 * 1024


def make_copy(src: Path, dst: Path) -> int:
    """Copy database ``src`` to ``dst`` (blocking); return the copy's meta LSN."""
    if dst.exists():
        dst.unlink()
    source = apsw.Connection(str(src), flags=apsw.SQLITE_OPEN_READONLY)
    target = apsw.Connection(str(dst))
    try:
        source.set_busy_timeout(5000)
        with target.backup("main", source, "main") as b:
            b.step(-1)
        # A plain rollback-journal file travels best; the member turns WAL on when it opens it.
        target.execute("PRAGMA journal_mode=DELETE")
        return meta.read_lsn(target)
    finally:
        target.close()
        source.close()


def chunks(path: Path) -> Iterator[tuple[int, bytes, bool, int, str]]:
    """Yield (offset, data, last, size, digest); digest and size are set on the last chunk."""
    size = path.stat().st_size
    h = xxhash.xxh3_64()
    offset = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(CHUNK)
            h.update(data)
            last = offset + len(data) >= size
            yield offset, data, last, size if last else 0, h.hexdigest() if last else ""
            offset += len(data)
            if last:
                return


class FileReceiver:
    """Receives one database file in chunks into ``<final>.seeding``."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_suffix(".seeding")
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self._h = xxhash.xxh3_64()
        self.received = 0

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.received:
            self.abort()
            raise ProtocolError(
                f"base copy of {self.final.name}: chunk at offset {offset}, "
                f"expected {self.received}"
            )
        self._f.write(data)
        self._h.update(data)
        self.received += len(data)

    def finish(self, size: int, digest: str) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        if size != self.received or digest != self._h.hexdigest():
            self.tmp.unlink(missing_ok=True)
            raise ProtocolError(
                f"base copy of {self.final.name} is damaged: got {self.received} bytes with "
                f"digest {self._h.hexdigest()}, expected {size} bytes with {digest}"
            )
        for extra in ("-wal", "-shm"):
            Path(str(self.final) + extra).unlink(missing_ok=True)
        replace_file(self.tmp, self.final)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.tmp.unlink(missing_ok=True)
