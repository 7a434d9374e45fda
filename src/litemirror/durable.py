"""Replacing a file whole and durably: temp file, fsync, rename, directory fsync.

A reader (or a restart after a crash) sees either the old file or the new
one, never a mix: ``rename`` is atomic. Two fsyncs make the outcome survive
power loss: the temp file's, before the rename (else the rename could reach
the disk before the data, leaving an empty or torn file under the final
name), and the directory's, after it (the rename is an entry of the
directory; until that is synced a crash may bring the old entry back).

Used for every small state file (``member.json``, ``arbiter.json``), base
copies received from the primary, new database files, journal segments,
certificates and keys (with their permission bits) and the report of
records rolled back on rejoin.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` (already written and synced) over ``final``, then sync the directory."""
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_atomic(
    path: Path,
    data: bytes,
    *,
    tmp: Path | None = None,
    mode: int | None = None,
    sync: bool = True,
) -> None:
    """Replace ``path`` with ``data`` whole and durably.

    The data goes first to ``tmp`` (default: ``path`` + ``.tmp``, which must
    be on the same file system); that file is removed if anything fails, and
    ``path`` is then left as it was. Two writers of one ``path`` must take
    turns (the second's temp file would replace the first's).

    ``mode`` sets the file's permission bits exactly (a private key's
    ``0o600``), whatever the umask, and before any data is written; without
    it the file is created as ``open()`` would (``0o666`` less the umask).
    ``sync=False`` skips both fsyncs: the rename is still atomic for readers,
    but a crash may lose it (for a journal opened without fsync, in tests).
    """
    tmp = tmp if tmp is not None else path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        with open(fd, "wb") as f:
            if mode is not None:
                # The umask must not widen or narrow what was asked, nor may a
                # leftover temp file keep its old bits; set before the data lands.
                os.fchmod(fd, mode)
            f.write(data)
            f.flush()
            if sync:
                os.fsync(fd)
        if sync:
            replace_file(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
