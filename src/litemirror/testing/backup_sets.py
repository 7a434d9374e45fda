"""Building a backup set from database files, in the format restore reads.

For tests of the restore: a set made from a member's real database files
(copied with SQLite's backup API, which gives a consistent snapshot of a
file in WAL mode while the member keeps writing), compressed with zstd,
with the manifest of :mod:`litemirror.backup.manifest` written last and the
directory renamed into place, as the backup command does.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

import apsw
import zstandard

from litemirror.backup.manifest import (
    MANIFEST_FILE,
    DatabaseCopy,
    Manifest,
    copy_file_name,
    encode,
    partial_name,
    set_name,
)
from litemirror.durable import fsync_dir, write_atomic
from litemirror.engine import meta
from litemirror.engine.checksum import table_checksums


def _copy(source: Path, dest: Path) -> tuple[int, dict[str, str], str]:
    """Copy ``source`` to ``dest`` with the backup API; its meta LSN, checksums, integrity."""
    src = apsw.Connection(
        f"file:{source}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    dst = apsw.Connection(str(dest))
    try:
        with dst.backup("main", src, "main") as b:
            while not b.done:
                b.step(-1)
    finally:
        src.close()
    try:
        dst.execute("PRAGMA journal_mode=DELETE")
        lsn = meta.read_lsn(dst)
        tables = table_checksums(dst)
        integrity = "\n".join(str(r[0]) for r in dst.execute("PRAGMA integrity_check"))
    finally:
        dst.close()
    return lsn, tables, integrity


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
        raw = partial / f"{db}.db.raw"
        copy_lsn, tables, integrity = _copy(source, raw)
        data = raw.read_bytes()
        raw.unlink()
        stored = zstandard.ZstdCompressor(level=3).compress(data)
        file = copy_file_name(db)
        write_atomic(partial / file, stored)
        copies.append(
            DatabaseCopy(
                name=db,
                file=file,
                lsn=copy_lsn,
                bytes=len(data),
                stored_bytes=len(stored),
                sha256=hashlib.sha256(stored).hexdigest(),
                raw_sha256=hashlib.sha256(data).hexdigest(),
                tables=tables,
                integrity=integrity,
            )
        )
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
