"""One segment file: its header, reading its records, verifying it at start.

The helpers of :mod:`.segments` that touch a single file. A segment is a
40-byte header followed by records (see :mod:`.record`)::

    offset size  field
         0    4  magic b"LMJS"
         4    2  format version (1)
         6    2  reserved (0)
         8    8  segment number (also the file name: 0000000001.lmj)
        16    8  first LSN this segment holds or will hold
        24    8  epoch of the record just before that LSN (0 if none)
        32    4  xxh32 of bytes 0..31
        36    4  padding

A file's validity is decided here: a torn or bad record is tolerated only at
the end of the last segment, and only when no valid record follows it.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import xxhash

from litemirror.errors import DiskFullError, JournalCorruptError, JournalError

from . import record as rec
from .record import Record, RecordError

SEGMENT_MAGIC = b"LMJS"
SEGMENT_VERSION = 1
SUFFIX = ".lmj"
# magic, version, reserved, number, first_lsn, base_epoch, checksum, padding
_SEG_FIELDS = struct.Struct("<4sHHQQQ")
_SEG_HEADER = struct.Struct("<4sHHQQQI4x")
SEGMENT_HEADER_SIZE = _SEG_HEADER.size  # 40
_FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})
fdatasync = getattr(os, "fdatasync", os.fsync)
INDEX_EVERY = 64 * 1024


class End(NamedTuple):
    """Durable end of a segment; replaced whole so readers never see half an update."""

    size: int
    last_lsn: int
    last_epoch: int


@dataclass(slots=True)
class Segment:
    number: int
    path: Path
    first_lsn: int
    base_epoch: int
    end: End
    closed: bool = False
    #: Sparse (lsn, offset) pairs, one per INDEX_EVERY bytes, so a reader tailing
    #: the journal starts near its LSN instead of rescanning the segment each call.
    #: Only appended to (by the writer) except in truncate_after.
    index: list[tuple[int, int]] = field(default_factory=list)

    def note(self, lsn: int, offset: int) -> None:
        """Remember where record ``lsn`` starts, if far enough from the last entry."""
        last = self.index[-1][1] if self.index else SEGMENT_HEADER_SIZE
        if offset - last >= INDEX_EVERY:
            self.index.append((lsn, offset))

    def start_offset(self, lsn: int) -> int:
        """Offset of a record at or before ``lsn``, to start reading from."""
        at = bisect.bisect_right(self.index, lsn, hi=len(self.index), key=_lsn_of) - 1
        return self.index[at][1] if at >= 0 else SEGMENT_HEADER_SIZE


def _lsn_of(entry: tuple[int, int]) -> int:
    return entry[0]


def segment_name(number: int) -> str:
    return f"{number:010d}{SUFFIX}"


def pack_segment_header(number: int, first_lsn: int, base_epoch: int) -> bytes:
    fields = _SEG_FIELDS.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0, number, first_lsn, base_epoch)
    return _SEG_HEADER.pack(
        SEGMENT_MAGIC,
        SEGMENT_VERSION,
        0,
        number,
        first_lsn,
        base_epoch,
        xxhash.xxh32_intdigest(fields),
    )


def unpack_segment_header(data: bytes, path: Path) -> tuple[int, int, int]:
    if len(data) < SEGMENT_HEADER_SIZE:
        raise corrupt(path, 0, f"segment header cut short ({len(data)} bytes)")
    magic, version, _, number, first_lsn, base_epoch, check = _SEG_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC or xxhash.xxh32_intdigest(data[: _SEG_FIELDS.size]) != check:
        raise corrupt(path, 0, "bad segment header (magic or checksum)")
    if version != SEGMENT_VERSION:
        raise corrupt(path, 0, f"unsupported segment format version {version}")
    return number, first_lsn, base_epoch


def corrupt(path: Path, offset: int, what: str) -> JournalCorruptError:
    return JournalCorruptError(
        f"journal file {path} is damaged at offset {offset}: {what}. The journal cannot "
        "be trusted from there on; re-seed this member from a healthy member (a fresh "
        "copy of its databases) and keep the damaged directory for inspection"
    )


def read_records(
    f: BinaryIO, start: int, end: int
) -> Iterator[tuple[int, Record | RecordError, int]]:
    """Yield (offset, record or decode error, next offset) for records in [start, end).

    Reads a record in two reads, header then rest, so memory stays at one
    record however large the file. Stops after the first error.
    """
    pos = start
    f.seek(pos)
    while pos < end:
        data = f.read(min(rec.HEADER_SIZE, end - pos))
        try:
            size = rec.record_size(data)
            if pos + size > end:
                raise rec.TruncatedRecord(
                    f"record at offset {pos} needs {size} bytes, {end - pos} remain"
                )
            data += f.read(size - len(data))
            record, _ = rec.decode_record(data)
        except RecordError as exc:
            yield pos, exc, pos
            return
        yield pos, record, pos + size
        pos += size


def lock_directory(directory: Path) -> int:
    """Hold an exclusive lock so two members (or two Journals) never write one journal."""
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise JournalError(
            f"journal {directory} is already open by another process or Journal; "
            "stop the other member using this data directory first"
        ) from exc
    return fd


def scan_segment(path: Path, previous: Segment | None, is_last: bool) -> tuple[Segment, int]:
    """Verify one segment file; return it and the number of records it holds.

    Cuts a torn tail off the last segment (the returned end is the good end;
    the caller truncates the file); raises JournalCorruptError otherwise.
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        number, first_lsn, base_epoch = unpack_segment_header(f.read(SEGMENT_HEADER_SIZE), path)
        if number != int(path.stem):
            raise corrupt(path, 0, f"header says segment {number}, the file name disagrees")
        if previous is not None:
            if number != previous.number + 1:
                raise corrupt(path, 0, f"segment {segment_name(previous.number + 1)} is missing")
            if first_lsn != previous.end.last_lsn + 1:
                raise corrupt(
                    path,
                    0,
                    f"LSN gap: {previous.path.name} ends at LSN {previous.end.last_lsn}, "
                    f"this segment starts at LSN {first_lsn}",
                )
        seg = Segment(number, path, first_lsn, base_epoch, End(0, 0, 0), closed=not is_last)
        expect, epoch, good_end, count = first_lsn, base_epoch, SEGMENT_HEADER_SIZE, 0
        for offset, item, next_offset in read_records(f, SEGMENT_HEADER_SIZE, size):
            if isinstance(item, RecordError):
                if not is_last:
                    raise corrupt(path, offset, f"{item}, in a closed segment")
                if isinstance(item, rec.BadRecord):
                    f.seek(offset)
                    found = rec.find_next_record(f.read(), 1)
                    if found is not None:
                        raise corrupt(
                            path, offset, f"{item}, yet a valid record follows at {offset + found}"
                        )
                break
            if item.lsn != expect:
                raise corrupt(path, offset, f"LSN gap: expected LSN {expect}, found {item.lsn}")
            if item.epoch < epoch:
                raise corrupt(path, offset, f"epoch goes back from {epoch} to {item.epoch}")
            seg.note(item.lsn, offset)
            expect, epoch, good_end, count = expect + 1, item.epoch, next_offset, count + 1
    seg.end = End(good_end, expect - 1, epoch)
    return seg, count


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:  # never for a regular file, but a loop must not spin
            raise OSError(errno.EIO, "write returned 0 bytes")
        done += n


def os_error(exc: OSError, what: str) -> JournalError | DiskFullError:
    if exc.errno in _FULL_DISK:
        return DiskFullError(f"journal disk full: {what}; free space and retry")
    return JournalError(f"{what}: {exc}")
