"""Building a backup set from database files, in the format restore reads.

For tests of the restore: a set made from a member's real database files
(copied with SQLite's backup API, which gives a consistent snapshot of a
file in WAL mode while the member keeps writing), compressed with zstd,
with the manifest of :mod:`litemirror.backup.manifest` written last and the
directory renamed into place, as the backup command does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from litemirror.backup.manifest import (
    MANIFEST_FILE,
    Manifest,
    encode,
    partial_name,
    set_name,
)
from litemirror.durable import fsync_dir, write_atomic
from litemirror.server.storage.backup_copy import copy_database
from litemirror.server.storage.statements import ShutdownFlag


def write_backup_set(
    root: Path,
    mirror: str,
    member: str,
    *,
    epoch: int,
    lsn: int,
    databases: Mapping[str, Path],
) -> Path:
    """Write a complete backup set of ``databases`` (name -> file); return its directory."""
    taken_at = time.time()
    name = set_name(time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(taken_at)), member, lsn)
    parent = root / mirror
    parent.mkdir(parents=True, exist_ok=True)
    partial = parent / partial_name(name)
    partial.mkdir()
    copies = []
    for db, source in databases.items():
        # The members' own copy: backup API, checks, zstd, sha256s.
        result = copy_database(db, source, partial, ShutdownFlag())
        assert result.problem is None, result.problem
        copies.append(result.copy)
    manifest = Manifest(
        mirror=mirror,
        member=member,
        epoch=epoch,
        lsn=lsn,
        taken_at=taken_at,
        finished_at=time.time(),
        status="verified",
        databases=copies,
    )
    write_atomic(partial / MANIFEST_FILE, encode(manifest))
    final = parent / name
    os.rename(partial, final)
    fsync_dir(parent)
    return final


def archive_closed_segments(journal_dir: Path, dest: Path) -> list[Path]:
    """Copy the closed segments of a member's journal to ``dest``, byte for byte.

    Every segment but the newest (the open one) is closed: the member never
    writes it again. Call it after ``journal switch`` for all records so far.
    """
    dest.mkdir(parents=True, exist_ok=True)
    segments = sorted(journal_dir.glob("*.lmj"))
    copied = []
    for seg in segments[:-1]:
        target = dest / seg.name
        write_atomic(target, seg.read_bytes())
        copied.append(target)
    return copied
