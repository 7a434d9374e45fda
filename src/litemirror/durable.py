"""Replacing a file whole and durably: temp file, fsync, rename, directory fsync.

A reader (or a restart after a crash) sees either the old file or the new
one, never a mix: ``rename`` is atomic. Two fsyncs make the outcome survive
power loss: the temp file's, before the rename (else the rename could reach
the disk before the data, leaving an empty or torn file under the final
name), and the directory's, after it (the rename is an entry of the
directory; until that is synced a crash may bring the old entry back).

Used for every small state file (``member.json``, ``arbiter.json``), base
copies received from the primary, new database files and journal segments.
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


def write_atomic(path: Path, data: bytes, *, tmp: Path | None = None) -> None:
    """Replace ``path`` with ``data`` whole and durably.

    The data goes first to ``tmp`` (default: ``path`` + ``.tmp``, which must
    be on the same file system); that file is removed if anything fails, and
    ``path`` is then left as it was. Two writers of one ``path`` must take
    turns (the second's temp file would replace the first's).
    """
    tmp = tmp if tmp is not None else path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
