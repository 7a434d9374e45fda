"""Copying one database into a backup set: snapshot, copy, verify, compress (worker thread).

One read transaction on the member's database is the snapshot everything
is taken from: its meta LSN and table checksums are read in it, and
SQLite's online backup API copies the pages *in the same transaction*
(``sqlite3_backup_step`` reuses a read transaction the source connection
already holds), so the copy is exactly that snapshot while writers go on
(WAL: a reader does not block them). The copy is then opened on its own:
its meta LSN and table checksums must equal the snapshot's, and
``PRAGMA integrity_check`` must say "ok"; a copy that disagrees is kept,
described, and the set is marked failed by the caller.

The stored file is the copy compressed with zstd and, with a key, sealed
(:mod:`litemirror.backup.sealed`) as it is written: no compressed file is
ever written in clear. The sha256 of both the raw copy and the stored file go
into the manifest. The raw copy is a temporary file beside the stored one and
is removed once compressed.

The raw copy must be a plain SQLite file while it is checked (SQLite opens
it). With a key it is therefore made in ``work_dir``, a directory of the
member's data_dir, which holds the same databases in clear anyway, never in
the backup directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import apsw
import zstandard

from litemirror.backup.manifest import INTEGRITY_OK, DatabaseCopy, copy_file_name
from litemirror.backup.sealed import SALT_BYTES, Key, Sealer
from litemirror.engine import meta
from litemirror.engine.checksum import table_checksums
from litemirror.server.storage.statements import PROGRESS_STEPS, ShutdownFlag

_CHUNK = 1024 * 1024
#: zstd level 3 (its default): fast enough to keep up with a disk, about 3x on typical data.
_LEVEL = 3


@dataclass(frozen=True)
class CopyResult:
    """One database's copy, and why it failed verification (None: it verified)."""

    copy: DatabaseCopy
    problem: str | None


def _guard(conn: apsw.Connection, stopping: ShutdownFlag) -> None:
    conn.set_progress_handler(lambda: stopping.set, PROGRESS_STEPS)


def copy_database(
    name: str,
    source: Path,
    dest_dir: Path,
    stopping: ShutdownFlag,
    key: Key | None = None,
    work_dir: Path | None = None,
) -> CopyResult:
    """Copy database ``name`` at ``source`` into ``dest_dir`` as ``<name>.db.zst``, verified
    (``<name>.db.zst.enc``, sealed with ``key``, when a key is given). The raw copy is
    made in ``work_dir`` (default ``dest_dir``) and removed."""
    raw = (work_dir or dest_dir) / (name + ".db")
    try:
        return _copy(name, source, raw, dest_dir, stopping, key)
    finally:
        for p in (raw, Path(f"{raw}-journal"), Path(f"{raw}-wal"), Path(f"{raw}-shm")):
            p.unlink(missing_ok=True)


def _copy(
    name: str, source: Path, raw: Path, dest_dir: Path, stopping: ShutdownFlag, key: Key | None
) -> CopyResult:
    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        _guard(src, stopping)
        src.set_busy_timeout(5000)
        src.execute("BEGIN")
        try:
            # First read: this fixes the snapshot the copy is taken from.
            lsn = meta.read_lsn(src)
            expected = table_checksums(src)
            dst = apsw.Connection(str(raw))
            try:
                with dst.backup("main", src, "main") as step:
                    while not step.done:
                        if stopping.set:
                            raise apsw.InterruptError("the member is shutting down")
                        step.step(1024)
            finally:
                dst.close()
        finally:
            src.execute("COMMIT")
    finally:
        src.close()
    copy_lsn, tables, integrity = _check_copy(raw, stopping)
    problems: list[str] = []
    if integrity != INTEGRITY_OK:
        problems.append(f"integrity_check of the copy says: {integrity}")
    if copy_lsn != lsn:
        problems.append(f"the copy holds LSN {copy_lsn}, the member's snapshot LSN {lsn}")
    differ = sorted(t for t in expected.keys() | tables.keys() if expected.get(t) != tables.get(t))
    if differ:
        problems.append(
            f"table checksums differ from the member's at LSN {lsn}: {', '.join(differ)}"
        )
    stored = dest_dir / copy_file_name(name, encrypted=key is not None)
    size, raw_sha, stored_size, stored_sha = _compress(raw, stored, key)
    copy = DatabaseCopy(
        name=name,
        file=stored.name,
        lsn=copy_lsn,
        bytes=size,
        stored_bytes=stored_size,
        sha256=stored_sha,
        raw_sha256=raw_sha,
        tables=tables,
        integrity=integrity,
    )
    return CopyResult(copy, f"{name}: " + "; ".join(problems) if problems else None)


def _check_copy(raw: Path, stopping: ShutdownFlag) -> tuple[int, dict[str, str], str]:
    """(meta LSN, table checksums, integrity_check) of the copy, read on its own."""
    conn = apsw.Connection(str(raw))
    try:
        _guard(conn, stopping)
        # The copy carries the member's WAL mode; a rollback journal leaves no
        # -wal/-shm beside it, so the raw file alone is the whole copy.
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
        integrity = "\n".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))
        return meta.read_lsn(conn), table_checksums(conn), integrity
    finally:
        conn.close()


def _compress(raw: Path, stored: Path, key: Key | None) -> tuple[int, str, int, str]:
    """Compress ``raw`` into ``stored`` (sealed with ``key`` if given; fsynced).

    Returns (raw size, raw sha256, stored size, stored sha256).
    """
    raw_hash = hashlib.sha256()
    stored_hash = hashlib.sha256()
    size = raw.stat().st_size
    stored_size = 0
    compressor = zstandard.ZstdCompressor(level=_LEVEL, write_checksum=True).compressobj(size)
    sealer = Sealer(key, os.urandom(SALT_BYTES)) if key is not None else None
    with raw.open("rb") as fin, stored.open("wb") as fout:

        def put(out: bytes) -> None:
            nonlocal stored_size
            if sealer is not None:
                out = sealer.update(out)
            stored_hash.update(out)
            fout.write(out)
            stored_size += len(out)

        while chunk := fin.read(_CHUNK):
            raw_hash.update(chunk)
            put(compressor.compress(chunk))
        put(compressor.flush())
        if sealer is not None:
            out = sealer.finish()
            stored_hash.update(out)
            fout.write(out)
            stored_size += len(out)
        fout.flush()
        os.fsync(fout.fileno())
    return size, raw_hash.hexdigest(), stored_size, stored_hash.hexdigest()
