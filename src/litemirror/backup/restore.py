"""``litemirror restore``: one database from a backup set and the journal archive.

Order of work, so that bad input is refused before anything is written:

1. read the set's manifest (a directory named ``.*`` or without a manifest is
   not a backup; a failed backup is refused); an encrypted set needs the key
   of the id its manifest names among the ``--key-file`` keys;
2. check the stored file's size and sha256 against the manifest;
3. scan the archive and decide the replay (:mod:`.plan`): a target outside
   the restorable range is refused with the range;
4. decrypt (sealed copies) and decompress into a temporary file next to ``--out``,
   checking the raw
   sha256 and that the copy holds the LSN the manifest says;
5. replay the chosen records of the database with
   :func:`litemirror.engine.apply.apply_record`, the code crash recovery and
   every member use (DDL and VACUUM records included);
6. checkpoint, switch the file to rollback-journal mode (one plain file) and
   move it over ``--out`` atomically.

Any failure removes the temporary file; ``--out`` is left as it was.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import zstandard

from litemirror.durable import replace_file
from litemirror.engine import apply as engine_apply
from litemirror.engine import meta
from litemirror.errors import BackupError, Error, RestoreError

from . import archive as arch
from .manifest import MANIFEST_FILE, DatabaseCopy, Manifest, decode, key_id
from .plan import ByLsn, ByTime, Latest, Plan, Refusal, Step, Target, plan, restorable, step
from .sealed import Key, SealedError
from .sealed_io import SealedReader

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Outcome:
    db: str
    out: Path
    copy_lsn: int
    #: The mirror LSN whose state the file holds.
    lsn: int
    #: Commit time of the last record replayed, or None when none was.
    ts_ms: int | None
    replayed: int
    tables: int
    rows: int
    seconds: float

    def sentence(self) -> str:
        when = f", last commit {show_time(self.ts_ms)}" if self.ts_ms is not None else ""
        return (
            f"restored database {self.db} to LSN {self.lsn}{when}: the copy at LSN "
            f"{self.copy_lsn} + {self.replayed} record(s) replayed; {self.tables} table(s), "
            f"{self.rows} row(s) in {self.out} ({self.seconds:.1f} s)"
        )


def show_time(ts_ms: int) -> str:
    """``2026-12-06T14:03:00.250Z``: how times are shown and accepted."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def parse_time(text: str) -> int:
    """An ISO 8601 time with a zone (``Z`` or ``+02:00``) as milliseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RestoreError(
            f"--at {text!r} is not an ISO 8601 time; write e.g. 2026-12-06T14:03:00Z"
        ) from exc
    if moment.tzinfo is None:
        raise RestoreError(
            f"--at {text!r} has no time zone; add Z for UTC or an offset such as +01:00"
        )
    return round(moment.timestamp() * 1000)


def read_set(directory: Path) -> Manifest:
    """The manifest of the backup set ``directory``, or a RestoreError saying why not."""
    if directory.name.startswith("."):
        raise RestoreError(
            f"{directory} is a backup still being written or one that was interrupted "
            "(its name starts with '.'); choose a complete backup set"
        )
    path = directory / MANIFEST_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise RestoreError(
            f"{directory} is not a backup set: it has no {MANIFEST_FILE} (an interrupted "
            "backup never gets one); choose a complete backup set"
        ) from exc
    except OSError as exc:
        raise RestoreError(f"cannot read {path}: {exc}") from exc
    try:
        return decode(data, where=str(path))
    except BackupError as exc:
        raise RestoreError(f"{exc.message}. Nothing was restored") from exc


def choose(manifest: Manifest, directory: Path, db: str) -> DatabaseCopy:
    if manifest.status != "verified":
        raise RestoreError(
            f"backup {directory} failed its verification ({manifest.problem or 'no reason'}); "
            "restore from another backup set"
        )
    copy = next((d for d in manifest.databases if d.name == db), None)
    if copy is None:
        held = ", ".join(d.name for d in manifest.databases) or "none"
        raise RestoreError(f"backup {directory} holds no database {db!r} (it holds: {held})")
    return copy


def check_stored(path: Path, copy: DatabaseCopy) -> None:
    """The stored file exists with the size and sha256 the manifest gives."""
    try:
        size = path.stat().st_size
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise RestoreError(f"cannot read backup file {path}: {exc}") from exc
    if size != copy.stored_bytes or digest.hexdigest() != copy.sha256:
        raise RestoreError(
            f"backup file {path} is damaged: {size} bytes with sha256 {digest.hexdigest()}, "
            f"the manifest says {copy.stored_bytes} bytes with sha256 {copy.sha256}. Nothing "
            "was restored; restore from another backup set"
        )


def check_key(manifest: Manifest, directory: Path, keys: dict[str, Key]) -> None:
    """An encrypted set's key is among ``keys``, or a RestoreError naming the id it needs."""
    kid = key_id(manifest)
    if kid is None or kid in keys:
        return
    given = ", ".join(sorted(keys)) or "none"
    raise RestoreError(
        f"backup {directory} is encrypted with key id {kid}; the key file(s) given have "
        f"id(s): {given}. Give the key with id {kid} (--key-file FILE; old keys must be kept "
        "to restore the sets taken with them). Nothing was restored"
    )


def decide(
    manifest: Manifest,
    copy: DatabaseCopy,
    archive: Path | None,
    target: Target,
    keys: dict[str, Key] | None = None,
) -> tuple[Plan, arch.ArchiveIndex]:
    """Scan the archive and plan the replay, or refuse with the restorable range."""
    index = (
        arch.scan(archive, manifest.mirror, copy.name, copy.lsn, keys)
        if archive is not None
        else arch.ArchiveIndex()
    )
    # Without the record of the copy's LSN, the copy is known to hold every
    # commit up to the end of the backup, not earlier.
    copy_ts = (
        index.copy_ts_ms if index.copy_ts_ms is not None else round(manifest.finished_at * 1000)
    )
    span = restorable(copy.lsn, copy_ts, index.segments, index.barriers)
    decision = plan(copy.name, target, span, show_time)
    if isinstance(decision, Refusal):
        raise RestoreError(decision.reason + ". Nothing was restored")
    return decision, index


def restore(
    backup: Path,
    db: str,
    out: Path,
    *,
    archive: Path | None = None,
    target: Target | None = None,
    force: bool = False,
    keys: dict[str, Key] | None = None,
) -> Outcome:
    """Restore ``db`` of the backup set ``backup`` into ``out``; see the module doc.

    ``keys``: the keys (by key id) encrypted sets and archived segments are opened with.
    """
    keys = keys or {}
    started = time.monotonic()
    target = target if target is not None else Latest()
    manifest = read_set(backup)
    copy = choose(manifest, backup, db)
    check_key(manifest, backup, keys)
    if out.is_dir():
        raise RestoreError(f"--out {out} is a directory; give a file name")
    in_the_way = [p for p in (out, *_sidecars(out)) if p.exists()]
    if in_the_way and not force:
        names = ", ".join(str(p) for p in in_the_way)
        verb = "already exists" if len(in_the_way) == 1 else "already exist"
        raise RestoreError(f"{names} {verb}; remove it or give --force to replace it")
    if not out.parent.is_dir():
        raise RestoreError(f"directory {out.parent} of --out does not exist")
    stored = backup / copy.file
    check_stored(stored, copy)
    decision, index = decide(manifest, copy, archive, target, keys)
    tmp = out.with_name(f".{out.name}.restoring")
    try:
        # A killed earlier restore may have left a WAL that SQLite would apply
        # to the new file: start clean.
        _remove(tmp, *_sidecars(tmp))
        _decompress(stored, tmp, copy, keys if manifest.encryption is not None else None)
        lsn, ts_ms, replayed = _replay(tmp, decision, index)
        tables, rows = _finish(tmp)
        # Likewise a WAL or rollback journal of the file being replaced (--force)
        # would be applied to the restored one when it is next opened.
        _remove(*_sidecars(out))
        replace_file(tmp, out)
    except BaseException:
        _remove(tmp, *_sidecars(tmp))
        raise
    return Outcome(
        db, out, copy.lsn, lsn, ts_ms, replayed, tables, rows, time.monotonic() - started
    )


def _sidecars(path: Path) -> tuple[Path, ...]:
    """The files SQLite keeps next to database ``path``."""
    return tuple(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _decompress(stored: Path, tmp: Path, copy: DatabaseCopy, keys: dict[str, Key] | None) -> None:
    """Decompress (after decrypting, with ``keys``) ``stored`` into ``tmp``, checked."""
    digest = hashlib.sha256()
    size = 0
    try:
        with stored.open("rb") as src, tmp.open("wb") as dst:
            plain: Any = src
            if keys is not None:
                plain = SealedReader(src, keys, str(stored), stored.stat().st_size)
            reader = zstandard.ZstdDecompressor().stream_reader(plain)
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except SealedError as exc:
        raise RestoreError(f"backup file {exc.message}. Nothing was restored") from exc
    except zstandard.ZstdError as exc:
        raise RestoreError(f"backup file {stored} does not decompress: {exc}") from exc
    except OSError as exc:
        raise RestoreError(f"cannot write {tmp}: {exc}; nothing was restored") from exc
    if size != copy.bytes or digest.hexdigest() != copy.raw_sha256:
        raise RestoreError(
            f"backup file {stored} decompresses to {size} bytes with sha256 "
            f"{digest.hexdigest()}, not the {copy.bytes} bytes with sha256 {copy.raw_sha256} "
            "the manifest gives; restore from another backup set"
        )


def _replay(tmp: Path, decision: Plan, index: arch.ArchiveIndex) -> tuple[int, int | None, int]:
    """Apply the plan's records; return the LSN reached, the last commit time, the count."""
    conn = engine_apply.open_apply_connection(str(tmp))
    try:
        held = meta.read_lsn(conn)
        if held != decision.copy_lsn:
            raise RestoreError(
                f"the backup copy of {decision.db} holds LSN {held}, the manifest says "
                f"{decision.copy_lsn}; this backup set cannot be trusted"
            )
        reached, ts_ms, replayed = decision.copy_lsn, None, 0
        for read in decision.reads:
            for r in arch.records(index, read):
                action = step(decision, r.lsn, r.ts_ms, r.kind, r.db)
                if action is Step.STOP:
                    return reached, ts_ms, replayed
                if action is Step.APPLY:
                    try:
                        engine_apply.apply_record(conn, r.lsn, r.payload)
                    except Error as exc:
                        raise RestoreError(
                            f"replaying LSN {r.lsn} (archived in {index.path(read.segment)}) "
                            f"failed: {exc.message}; nothing was restored"
                        ) from exc
                    replayed += 1
                    ts_ms = r.ts_ms
                reached = r.lsn
        return reached, ts_ms, replayed
    finally:
        conn.close()


def _finish(tmp: Path) -> tuple[int, int]:
    """Make ``tmp`` one plain, durable SQLite file; count its tables and rows."""
    try:
        conn = apsw.Connection(str(tmp))
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' AND name != ? "
                    "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%'",
                    (meta.META_TABLE,),
                )
            ]
            rows = 0
            for name in names:
                quoted = '"' + name.replace('"', '""') + '"'
                for (count,) in conn.execute(f"SELECT count(*) FROM main.{quoted}"):
                    rows += int(count)
        finally:
            conn.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
    except apsw.Error as exc:
        raise RestoreError(f"cannot finish the restored file {tmp}: {exc}") from exc
    return len(names), rows


__all__ = ["ByLsn", "ByTime", "Latest", "Outcome", "parse_time", "restore", "show_time"]
