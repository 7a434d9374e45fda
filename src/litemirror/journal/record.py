"""Journal record format: bytes in, records out; records in, bytes out (pure).

Theory of operation
-------------------
A record is what the journal stores and what replication streams verbatim, so
a backup appends the very bytes the primary wrote, under the same LSN. All
integers are little-endian::

    offset size  field
         0    4  magic b"LMJR"
         4    1  format version (1)
         5    1  kind (RecordKind)
         6    1  flags (0; reserved, e.g. for compression)
         7    1  db name length in bytes (<= 255, so the field cannot exceed it)
         8    4  payload length (<= 1 GiB)
        12    8  lsn   (>= 1)
        20    8  epoch
        28    8  ts_ms (milliseconds since the Unix epoch)
        36    4  header checksum: xxh32 of bytes 0..35
        40    n  db name, UTF-8
         .    m  payload (opaque; the engine encodes its changes into it)
         .    8  record checksum: xxh3_64 of everything before it

Why two checksums: the lengths must be trusted *before* they are used. A bit
flip that enlarges a length in the middle of a file would otherwise make the
record look cut short ("torn"), and recovery would throw away every good
record behind it. With the header checksum, "torn" is only ever said about a
record whose header is intact (or incomplete) and whose body runs past the end
of the bytes we have; everything else is "bad". xxh3_64 is used for the body
because it is several times faster than crc32 on large payloads and its 64
bits make an undetected random corruption negligible even for 1 GiB records.

The decoder never raises anything but :class:`TruncatedRecord` or
:class:`BadRecord` (both :class:`RecordError`), whatever the input; ``scan``
never raises at all. This module does no I/O and reads no clock.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import xxhash

MAGIC = b"LMJR"
FORMAT_VERSION = 1
MAX_DB_NAME = 255
MAX_PAYLOAD = 1 << 30
_U64_MAX = (1 << 64) - 1

# magic, version, kind, flags, db_len, payload_len, lsn, epoch, ts_ms
_FIELDS = struct.Struct("<4sBBBBIQQQ")
_HEADER_CHECK = struct.Struct("<I")
_TRAILER = struct.Struct("<Q")
HEADER_SIZE = _FIELDS.size + _HEADER_CHECK.size  # 40
TRAILER_SIZE = _TRAILER.size  # 8

Buffer = bytes | bytearray | memoryview


class RecordKind(enum.IntEnum):
    CHANGES = 1  # one group commit of captured changes
    CREATE_DB = 2
    DROP_DB = 3
    IMPORT_DB = 4
    MARKER = 5  # epoch start, canary, no-op


_KINDS = frozenset(int(k) for k in RecordKind)


@dataclass(frozen=True, slots=True)
class Record:
    lsn: int
    epoch: int
    kind: RecordKind
    db: str
    ts_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record before the journal gives it an LSN."""

    epoch: int
    kind: RecordKind
    db: str
    ts_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ScanResult:
    records: list[Record]
    #: Offset just past the last good record: where a torn tail would be cut.
    good_end: int
    #: None when the buffer ended exactly on a record boundary.
    problem: str | None


class RecordError(Exception):
    """A record could not be decoded (internal; the journal translates it)."""


class TruncatedRecord(RecordError):
    """Not enough bytes: the record is cut short (a torn write at a file's end)."""


class BadRecord(RecordError):
    """Bad magic, version, kind, length or checksum: the bytes are corrupt."""


def _header_checksum(fields: Buffer) -> int:
    return xxhash.xxh32_intdigest(fields)


def _pack_header(
    kind: int, db_len: int, payload_len: int, lsn: int, epoch: int, ts_ms: int, flags: int = 0
) -> bytes:
    fields = _FIELDS.pack(
        MAGIC, FORMAT_VERSION, kind, flags, db_len, payload_len, lsn, epoch, ts_ms
    )
    return fields + _HEADER_CHECK.pack(_header_checksum(fields))


def encode_record(r: Record) -> bytes:
    """Return the bytes of ``r``. Raises ValueError if a field is out of range."""
    db = r.db.encode("utf-8")
    if len(db) > MAX_DB_NAME:
        raise ValueError(f"database name {r.db!r} is {len(db)} bytes; the limit is {MAX_DB_NAME}")
    if len(r.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(r.payload)} bytes exceeds the limit of {MAX_PAYLOAD}")
    if int(r.kind) not in _KINDS:
        raise ValueError(f"unknown record kind {r.kind!r}")
    if not 1 <= r.lsn <= _U64_MAX:
        raise ValueError(f"lsn {r.lsn} out of range 1..2**64-1")
    for name, value in (("epoch", r.epoch), ("ts_ms", r.ts_ms)):
        if not 0 <= value <= _U64_MAX:
            raise ValueError(f"{name} {value} out of range 0..2**64-1")
    header = _pack_header(int(r.kind), len(db), len(r.payload), r.lsn, r.epoch, r.ts_ms)
    h = xxhash.xxh3_64()
    h.update(header)
    h.update(db)
    h.update(r.payload)
    return b"".join((header, db, r.payload, _TRAILER.pack(h.intdigest())))


def record_size(buf: Buffer, offset: int = 0) -> int:
    """Validate the header at ``offset`` and return the whole record's size.

    Raises TruncatedRecord if fewer than HEADER_SIZE bytes are there, BadRecord
    if the header is not one we wrote. Lets a reader fetch a record in two
    reads (header, then the rest) without loading a whole file.
    """
    view = memoryview(buf)[offset:]
    have = len(view)
    # A short prefix that already disagrees with the magic is garbage, not a torn record.
    if bytes(view[: min(have, len(MAGIC))]) != MAGIC[: min(have, len(MAGIC))]:
        raise BadRecord(f"bad magic at offset {offset}")
    if have < HEADER_SIZE:
        raise TruncatedRecord(
            f"record header at offset {offset} cut short: {have} of {HEADER_SIZE} bytes"
        )
    (stored,) = _HEADER_CHECK.unpack_from(view, _FIELDS.size)
    if _header_checksum(view[: _FIELDS.size]) != stored:
        raise BadRecord(f"header checksum mismatch at offset {offset}")
    _, version, kind, flags, db_len, payload_len, lsn, _, _ = _FIELDS.unpack_from(view)
    if version != FORMAT_VERSION:
        raise BadRecord(f"unsupported record format version {version} at offset {offset}")
    if kind not in _KINDS:
        raise BadRecord(f"unknown record kind {kind} at offset {offset}")
    if flags != 0:
        raise BadRecord(f"unsupported record flags {flags:#x} at offset {offset}")
    if payload_len > MAX_PAYLOAD:
        raise BadRecord(f"payload length {payload_len} over the limit at offset {offset}")
    if lsn == 0:
        raise BadRecord(f"lsn 0 at offset {offset}")
    return int(HEADER_SIZE + db_len + payload_len + TRAILER_SIZE)


def decode_record(buf: Buffer, offset: int = 0) -> tuple[Record, int]:
    """Decode the record at ``offset``; return it and the offset just past it."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    size = record_size(buf, offset)
    view = memoryview(buf)[offset:]
    if len(view) < size:
        raise TruncatedRecord(f"record at offset {offset} cut short: {len(view)} of {size} bytes")
    body_end = size - TRAILER_SIZE
    (stored,) = _TRAILER.unpack_from(view, body_end)
    if xxhash.xxh3_64_intdigest(view[:body_end]) != stored:
        raise BadRecord(f"record checksum mismatch at offset {offset}")
    _, _, kind, _, db_len, _, lsn, epoch, ts_ms = _FIELDS.unpack_from(view)
    try:
        db = str(view[HEADER_SIZE : HEADER_SIZE + db_len], "utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(f"database name is not UTF-8 at offset {offset}") from exc
    payload = bytes(view[HEADER_SIZE + db_len : body_end])
    record = Record(lsn, epoch, RecordKind(kind), db, ts_ms, payload)
    return record, offset + size


def scan(buf: Buffer) -> ScanResult:
    """Decode consecutive records from the start of ``buf``; stop at the first problem."""
    records: list[Record] = []
    offset = 0
    while offset < len(buf):
        try:
            record, offset_next = decode_record(buf, offset)
        except TruncatedRecord as exc:
            return ScanResult(records, offset, f"torn: {exc}")
        except BadRecord as exc:
            return ScanResult(records, offset, f"corrupt: {exc}")
        records.append(record)
        offset = offset_next
    return ScanResult(records, offset, None)


def find_next_record(buf: Buffer, start: int = 0) -> int | None:
    """Offset of the first complete, valid record at or after ``start``, or None.

    Used after a bad record to tell a corrupt tail (nothing valid follows: a
    crash mid-write) from corruption in the middle (valid data follows: the
    file was damaged, and cutting it would lose committed records).
    """
    data = bytes(buf) if isinstance(buf, memoryview) else buf
    pos = data.find(MAGIC, max(start, 0))
    while pos != -1:
        try:
            decode_record(data, pos)
        except RecordError:
            pos = data.find(MAGIC, pos + 1)
        else:
            return pos
    return None
