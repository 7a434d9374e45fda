"""Reading a journal archive: closed segment files copied from members' journals.

The archive of a mirror is ``<dir>/<mirror>/<member>/NNNNNNNNNN.lmj``, each
file a byte-for-byte copy of a closed segment of that member's journal. A
restore may be pointed at the archive root, at the mirror's directory or at
one member's directory; every member directory found is read, since members
cut their segments at different LSNs and together may cover more.

Files are read with the journal's own code (:mod:`litemirror.journal.segfile`
and the record decoder): a header, then records whose checksums, LSN
continuity and epoch order are checked. An archived segment is closed, so any
bad or cut-short record is damage: the restore stops and names the file.
Files of other names (an archiver's temporary files) are ignored. A sealed
segment (``[archive] encrypt_key_file``) is opened with the key of the id its
header names, from the keys given to restore; without it the restore stops
naming the file and the key id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litemirror.errors import JournalError, RestoreError
from litemirror.journal import Record, RecordError, RecordKind
from litemirror.journal import segfile as sf

from .plan import ArchivedSegment, Barrier, Read
from .sealed import Key, SealedError, is_sealed
from .sealed_io import SealedReader

_SEGMENT = re.compile(r"^\d{10}\.lmj$")
_BARRIERS = (RecordKind.CREATE_DB, RecordKind.IMPORT_DB, RecordKind.DROP_DB)


@dataclass
class ArchiveIndex:
    """What a scan of the archive found that a restore of one database needs."""

    segments: list[ArchivedSegment] = field(default_factory=list)
    barriers: list[Barrier] = field(default_factory=list)
    #: Commit time of the record at the copy's LSN, when the archive holds it.
    copy_ts_ms: int | None = None
    paths: dict[tuple[str, str], Path] = field(default_factory=dict)
    #: The keys sealed segments are opened with, by key id.
    keys: dict[str, Key] = field(default_factory=dict)

    def path(self, seg: ArchivedSegment) -> Path:
        return self.paths[(seg.source, seg.name)]


def _has_segments(d: Path) -> bool:
    return any(_SEGMENT.match(p.name) for p in d.iterdir() if p.is_file())


def member_dirs(archive: Path, mirror: str) -> list[Path]:
    """The directories of segment files under ``archive`` for ``mirror``."""
    if not archive.is_dir():
        raise RestoreError(
            f"archive {archive} is not a directory; give the archive directory "
            "([archive] dir of the config), its <mirror> directory or one member's"
        )
    if _has_segments(archive):
        return [archive]
    base = archive / mirror if (archive / mirror).is_dir() else archive
    found = sorted(d for d in base.iterdir() if d.is_dir() and _has_segments(d))
    if not found:
        raise RestoreError(
            f"no archived journal segments (NNNNNNNNNN.lmj) in {archive}, in {archive / mirror} "
            "or in their member directories; check the --archive path"
        )
    return found


def scan(
    archive: Path, mirror: str, db: str, copy_lsn: int, keys: dict[str, Key] | None = None
) -> ArchiveIndex:
    """Read every archived segment once: its LSN and time span, and the barriers of ``db``."""
    index = ArchiveIndex(keys=keys or {})
    for directory in member_dirs(archive, mirror):
        for path in sorted(p for p in directory.iterdir() if _SEGMENT.match(p.name)):
            first: Record | None = None
            last: Record | None = None
            for r in _records(path, index.keys):
                first = first or r
                last = r
                if r.lsn == copy_lsn:
                    index.copy_ts_ms = r.ts_ms
                if r.kind in _BARRIERS and r.db == db and r.lsn > copy_lsn:
                    index.barriers.append(Barrier(r.lsn, r.ts_ms, r.kind))
            if first is None or last is None:
                continue  # an empty segment holds nothing to replay
            seg = ArchivedSegment(
                directory.name, path.name, first.lsn, last.lsn, first.ts_ms, last.ts_ms
            )
            index.segments.append(seg)
            index.paths[(seg.source, seg.name)] = path
    return index


def records(index: ArchiveIndex, read: Read) -> Iterator[Record]:
    """The records ``read.from_lsn`` .. ``read.to_lsn`` of one archived segment."""
    for r in _records(index.path(read.segment), index.keys):
        if r.lsn > read.to_lsn:
            return
        if r.lsn >= read.from_lsn:
            yield r


def _records(path: Path, keys: dict[str, Key]) -> Iterator[Record]:
    """Every record of the archived segment ``path``, checked as the journal checks them."""
    try:
        with path.open("rb") as raw:
            size = path.stat().st_size
            f: Any = raw
            if is_sealed(raw.read(8)):
                raw.seek(0)
                try:
                    f = SealedReader(raw, keys, str(path), size)
                except SealedError as exc:
                    raise RestoreError(f"{exc.message}. Nothing was restored") from exc
                size = f.size
            else:
                raw.seek(0)
            try:
                number, expect, epoch = sf.unpack_segment_header(
                    f.read(sf.SEGMENT_HEADER_SIZE), path
                )
            except JournalError as exc:
                raise _damaged(path, 0, "its segment header is not valid") from exc
            if number != int(path.stem):
                raise _damaged(path, 0, f"its header says segment {number}")
            for offset, item, _ in sf.read_records(f, sf.SEGMENT_HEADER_SIZE, size):
                if isinstance(item, RecordError):
                    raise _damaged(path, offset, str(item))
                if item.lsn != expect:
                    raise _damaged(path, offset, f"LSN {item.lsn} where LSN {expect} belongs")
                if item.epoch < epoch:
                    raise _damaged(path, offset, f"epoch goes back from {epoch} to {item.epoch}")
                expect, epoch = expect + 1, item.epoch
                yield item
    except SealedError as exc:
        raise _damaged(path, 0, exc.message) from exc
    except OSError as exc:
        raise RestoreError(f"cannot read archived segment {path}: {exc}") from exc


def _damaged(path: Path, offset: int, what: str) -> RestoreError:
    return RestoreError(
        f"archived journal segment {path} is damaged at offset {offset}: {what}. Nothing was "
        "restored; restore to an earlier point, or replace the file with the same segment "
        "from another member's archive or journal"
    )
