"""The member's journal on disk: segment files of records, recovery, purge.

Theory of operation
-------------------
One journal per member, in ``<data_dir>/journal/``, shared by all its
databases. It is a sequence of segment files ``0000000001.lmj``,
``0000000002.lmj``, ... Each starts with a 40-byte header (:mod:`.segfile`:
segment number, the first LSN it will hold, the epoch of the record just
before that LSN) followed by records in the format of :mod:`.record`. The header makes an empty or
freshly purged journal self-describing: ``last_lsn`` is ``first_lsn - 1`` and
``last_epoch`` the stored epoch, so numbering never restarts by accident.

Invariants, checked by recovery at :meth:`Journal.open`:

- segment numbers increase by one from file to file;
- LSNs increase by one from record to record, across files, with no gap;
- epochs never decrease.

Only the last segment is open for writing; closed segments are never written
again. New segment files are written under a ``.tmp`` name, fsynced, renamed
and the directory fsynced, so a segment file either exists with a valid header
or not at all.

A crash can leave a torn record at the end of the last segment. Recovery cuts
it off and says so in :attr:`Journal.recovery`. A bad record with valid data
after it, a bad record in a closed segment, or a gap is damage, not a crash:
recovery refuses to guess and raises :class:`JournalCorruptError`.

Threads: one writer thread calls append, append_records, switch, purge_before,
truncate_after, restart_at and close. Any thread may call :meth:`read_from`
meanwhile: readers see a record only after its append returned (after the
fsync), because each segment publishes its durable end as one immutable tuple.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from litemirror.durable import fsync_dir, write_atomic
from litemirror.errors import DiskFullError, JournalError

from . import record as rec
from . import segfile as sf
from .record import NewRecord, Record, RecordError
from .segfile import SEGMENT_HEADER_SIZE, SUFFIX, segment_name

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    segments: int
    records: int
    first_lsn: int | None
    last_lsn: int
    last_epoch: int
    truncated_bytes: int
    problem: str | None

    def __str__(self) -> str:
        if self.records:
            held = f"{self.records} record(s) (LSN {self.first_lsn}..{self.last_lsn})"
        else:
            held = f"no records (next LSN {self.last_lsn + 1})"
        text = f"journal recovered: {self.segments} segment(s), {held}, epoch {self.last_epoch}"
        if self.truncated_bytes:
            text += f"; cut a torn tail of {self.truncated_bytes} bytes ({self.problem})"
        return text


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    number: int
    path: Path
    first_lsn: int  # the first LSN this segment holds or will hold
    last_lsn: int  # first_lsn - 1 when empty
    size_bytes: int
    closed: bool


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"  # a failed write could not be rolled back


class Journal:
    """Segmented, append-only, checksummed journal of one member. See the module doc."""

    def __init__(self, directory: Path, segment_bytes: int, fsync: bool, lock_fd: int) -> None:
        # Use Journal.open(); this only sets fields.
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock_fd = lock_fd
        self._fd = -1
        self._segs: list[sf.Segment] = []
        self._lock = threading.Lock()
        self._state = _State.OPEN
        self.recovery = RecoveryReport(0, 0, None, 0, 0, 0, None)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES, fsync: bool = True
    ) -> Journal:
        """Open (creating if needed) and recover the journal in ``directory``."""
        directory = Path(directory)
        if segment_bytes <= SEGMENT_HEADER_SIZE:
            raise JournalError(f"segment_bytes={segment_bytes} is too small")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock_fd = sf.lock_directory(directory)
        except OSError as exc:
            raise JournalError(
                f"cannot create or lock journal directory {directory}: {exc}"
            ) from exc
        journal = cls(directory, segment_bytes, fsync, lock_fd)
        try:
            journal._recover()
        except BaseException:
            journal.close()
            raise
        return journal

    def _recover(self) -> None:
        try:
            for stale in self.directory.glob(f"*{SUFFIX}.tmp"):
                stale.unlink()  # a segment whose creation did not finish; never used
            paths = sorted(self.directory.glob(f"*{SUFFIX}"))
            for path in paths:
                if not (path.stem.isdigit() and len(path.stem) == 10):
                    raise JournalError(
                        f"unexpected file {path} in the journal directory; move it elsewhere"
                    )
            records, truncated, problem = 0, 0, None
            for i, path in enumerate(paths):
                previous = self._segs[-1] if self._segs else None
                seg, count = sf.scan_segment(path, previous, i == len(paths) - 1)
                records += count
                size = path.stat().st_size
                if seg.end.size < size:
                    truncated = size - seg.end.size
                    problem = f"torn record in {path.name} at offset {seg.end.size}"
                    os.truncate(path, seg.end.size)
                self._segs.append(seg)
            if not self._segs:
                self._segs.append(self._create_segment(1, 1, 0))
            self._fd = os.open(self._segs[-1].path, os.O_RDWR)
            if truncated and self._fsync:
                sf.fdatasync(self._fd)
        except OSError as exc:
            raise JournalError(
                f"cannot read journal {self.directory}: {exc}; check the disk and permissions"
            ) from exc
        self.recovery = RecoveryReport(
            segments=len(self._segs),
            records=records,
            first_lsn=self.first_lsn,
            last_lsn=self.last_lsn,
            last_epoch=self.last_epoch,
            truncated_bytes=truncated,
            problem=problem,
        )

    def close(self) -> None:
        """Close the files and release the directory lock. Safe to call twice."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        os.close(self._lock_fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self._state is _State.CLOSED:
            raise JournalError(f"journal {self.directory} is closed")
        if self._state is _State.FAILED:
            raise JournalError(
                f"journal {self.directory} failed earlier and may hold a partial write; "
                "restart the member so recovery can repair it"
            )

    # -- state -------------------------------------------------------------------------------

    @property
    def _current(self) -> sf.Segment:
        return self._segs[-1]

    @property
    def last_lsn(self) -> int:
        """LSN of the newest record, or of the record before the oldest segment when empty."""
        return self._current.end.last_lsn

    @property
    def last_epoch(self) -> int:
        return self._current.end.last_epoch

    @property
    def first_lsn(self) -> int | None:
        """Oldest LSN held, None when the journal holds no record."""
        with self._lock:
            first = self._segs[0]
        return first.first_lsn if first.end.last_lsn >= first.first_lsn else None

    def segments(self) -> list[SegmentInfo]:
        with self._lock:
            segs = list(self._segs)
        return [
            SegmentInfo(s.number, s.path, s.first_lsn, s.end.last_lsn, s.end.size, s.closed)
            for s in segs
        ]

    # -- writing (single writer thread) ------------------------------------------------------

    def append(self, entries: Sequence[NewRecord]) -> list[Record]:
        """Give ``entries`` the next LSNs and make them durable with one write and one fsync."""
        self._check_writable()
        lsn, epoch = self.last_lsn, self.last_epoch
        records = []
        for e in entries:
            if e.epoch < epoch:
                raise JournalError(
                    f"cannot append a record of epoch {e.epoch} after epoch {epoch}; "
                    "nothing was appended (a writer with an old epoch is no longer primary)"
                )
            lsn, epoch = lsn + 1, e.epoch
            records.append(Record(lsn, e.epoch, e.kind, e.db, e.ts_ms, e.payload))
        self._write(records)
        return records

    def append_records(self, records: Sequence[Record]) -> None:
        """Append records received from the primary, keeping their LSNs (for replicas)."""
        self._check_writable()
        expect, epoch = self.last_lsn + 1, self.last_epoch
        for r in records:
            if r.lsn != expect:
                raise JournalError(
                    f"record LSN {r.lsn} does not continue this journal: expected LSN {expect}; "
                    f"nothing was appended; resume the stream from LSN {self.last_lsn + 1}"
                )
            if r.epoch < epoch:
                raise JournalError(
                    f"record LSN {r.lsn} has epoch {r.epoch}, older than epoch {epoch} "
                    "already in this journal; nothing was appended (the sender is a stale primary)"
                )
            expect, epoch = expect + 1, r.epoch
        self._write(records)

    def _write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        try:
            data = b"".join(rec.encode_record(r) for r in records)
        except ValueError as exc:
            raise JournalError(f"cannot journal a record: {exc}; nothing was appended") from exc
        seg = self._current
        # Roll over *before* writing: if the next segment cannot be created, this
        # append fails with nothing written, instead of an append whose records are
        # already durable reporting an error.
        if seg.end.size >= self._segment_bytes and seg.end.last_lsn >= seg.first_lsn:
            self._roll_over()
            seg = self._current
        before = seg.end.size
        try:
            sf.pwrite_all(self._fd, data, before)
            if self._fsync:
                sf.fdatasync(self._fd)
        except OSError as exc:
            self._roll_back(seg, before)
            raise sf.os_error(
                exc,
                f"could not append {len(records)} record(s) ({len(data)} bytes) to {seg.path}; "
                "nothing was written and no LSN was used",
            ) from exc
        last = records[-1]
        with self._lock:
            seg.end = sf.End(before + len(data), last.lsn, last.epoch)
        seg.note(records[0].lsn, before)

    def _roll_back(self, seg: sf.Segment, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            if self._fsync:
                sf.fdatasync(self._fd)
        except OSError as exc:
            self._state = _State.FAILED
            raise JournalError(
                f"could not undo a failed write to {seg.path} ({exc}); the journal is "
                "stopped; restart the member so recovery can cut the partial record"
            ) from exc

    def switch(self) -> int:
        """Close the current segment unless it is empty; return the open segment's number."""
        self._check_writable()
        seg = self._current
        if seg.end.last_lsn >= seg.first_lsn:
            self._roll_over()
        return self._current.number

    def _roll_over(self) -> None:
        old = self._current
        new = self._create_segment(old.number + 1, old.end.last_lsn + 1, old.end.last_epoch)
        try:
            fd = os.open(new.path, os.O_RDWR)
        except OSError as exc:
            # The empty file stays; recovery accepts it, and the next roll-over replaces it.
            raise JournalError(f"could not open new journal segment {new.path}: {exc}") from exc
        os.close(self._fd)
        self._fd = fd
        with self._lock:
            old.closed = True
            self._segs.append(new)

    def _create_segment(self, number: int, first_lsn: int, base_epoch: int) -> sf.Segment:
        """Write a new segment file atomically: temporary name, fsync, rename, fsync dir."""
        path = self.directory / segment_name(number)
        header = sf.pack_segment_header(number, first_lsn, base_epoch)
        try:
            # The temp file is removed on failure (a leftover one the next open removes).
            write_atomic(path, header, sync=self._fsync)
        except OSError as exc:
            raise sf.os_error(exc, f"could not create journal segment {path}") from exc
        end = sf.End(SEGMENT_HEADER_SIZE, first_lsn - 1, base_epoch)
        return sf.Segment(number, path, first_lsn, base_epoch, end)

    def purge_before(self, lsn: int) -> list[Path]:
        """Delete the oldest closed segments whose records are all below ``lsn``."""
        self._check_writable()
        removed: list[Path] = []
        while len(self._segs) > 1 and self._segs[0].end.last_lsn < lsn:
            seg = self._segs[0]
            try:
                seg.path.unlink()
            except OSError as exc:
                raise JournalError(f"could not delete journal segment {seg.path}: {exc}") from exc
            with self._lock:
                self._segs.pop(0)
            removed.append(seg.path)
        if removed:
            self._sync_dir()
        return removed

    def truncate_after(self, lsn: int) -> list[Record]:
        """Remove the records after ``lsn`` and return them (for a rejoining old primary).

        The segment that then holds the end becomes the open one again, the only
        time a closed segment is written; no reader may run meanwhile.
        """
        self._check_writable()
        if lsn >= self.last_lsn:
            return []
        oldest = self._segs[0].first_lsn
        if lsn < oldest - 1:
            raise JournalError(
                f"cannot keep only LSN <= {lsn}: records before LSN {oldest} were purged; "
                "re-seed this member from a base copy instead"
            )
        removed = list(self.read_from(lsn + 1))
        index = next(i for i, s in enumerate(self._segs) if s.end.last_lsn > lsn)
        seg = self._segs[index]
        cut, epoch = SEGMENT_HEADER_SIZE, seg.base_epoch
        with seg.path.open("rb") as f:
            for _, item, next_offset in sf.read_records(f, cut, seg.end.size):
                if isinstance(item, RecordError) or item.lsn > lsn:
                    break
                cut, epoch = next_offset, item.epoch
        try:
            # Newest first, so a crash part way leaves a shorter but continuous journal.
            os.close(self._fd)
            self._fd = -1
            for later in reversed(self._segs[index + 1 :]):
                later.path.unlink()
                with self._lock:
                    self._segs.pop()
            self._fd = os.open(seg.path, os.O_RDWR)
            os.ftruncate(self._fd, cut)
            if self._fsync:
                sf.fdatasync(self._fd)
            self._sync_dir()
        except OSError as exc:
            self._state = _State.FAILED
            raise JournalError(
                f"could not truncate the journal after LSN {lsn} ({exc}); restart the member"
            ) from exc
        with self._lock:
            seg.end = sf.End(cut, lsn, epoch)
            seg.closed = False
            seg.index = [entry for entry in seg.index if entry[1] < cut]
        return removed

    def restart_at(self, next_lsn: int, *, epoch: int) -> None:
        """Drop every segment and continue at ``next_lsn`` (after re-seeding from a base copy).

        A crash part way leaves a shorter journal or an empty one; the caller
        re-runs the re-seed in both cases, since the databases say which LSN they hold.
        """
        self._check_writable()
        if next_lsn < 1:
            raise JournalError(f"next_lsn must be >= 1, got {next_lsn}")
        number = self._current.number + 1
        try:
            os.close(self._fd)
            self._fd = -1
            for seg in reversed(list(self._segs)):
                seg.path.unlink()
                with self._lock:
                    self._segs.pop()
            new = self._create_segment(number, next_lsn, epoch)
            self._fd = os.open(new.path, os.O_RDWR)
        except (JournalError, DiskFullError):
            self._state = _State.FAILED
            raise
        except OSError as exc:
            self._state = _State.FAILED
            raise JournalError(
                f"could not restart the journal at LSN {next_lsn} ({exc}); restart the member"
            ) from exc
        with self._lock:
            self._segs.append(new)

    def _sync_dir(self) -> None:
        if self._fsync:
            try:
                fsync_dir(self.directory)
            except OSError as exc:
                raise JournalError(f"could not fsync {self.directory}: {exc}") from exc

    # -- reading (any thread) ----------------------------------------------------------------

    def read_from(self, lsn: int) -> Iterator[Record]:
        """Records with LSN >= ``lsn``, oldest first, as far as they were durable.

        Checks are made now, not at the first ``next()``, so a reader that needs
        a base copy learns it at once.
        """
        if self._state is _State.CLOSED:
            raise JournalError(f"journal {self.directory} is closed")
        with self._lock:
            segs = list(self._segs)
        oldest, last = segs[0].first_lsn, segs[-1].end.last_lsn
        if lsn < oldest:
            raise JournalError(
                f"LSN {lsn} is no longer in the journal of {self.directory} (oldest held: "
                f"{oldest}); the reader needs a base copy of the databases, then the journal "
                "from that copy's LSN"
            )
        if lsn > last + 1:
            raise JournalError(
                f"LSN {lsn} is past the end of this journal (last LSN {last}); the reader "
                "holds records this member never wrote"
            )
        return self._iter_from(segs, lsn)

    def _iter_from(self, segs: list[sf.Segment], lsn: int) -> Iterator[Record]:
        for seg in segs:
            end = seg.end  # durable end as of now; later appends are left for the next call
            if end.last_lsn < lsn:
                continue
            try:
                with seg.path.open("rb") as f:
                    start = seg.start_offset(lsn)
                    for offset, item, _ in sf.read_records(f, start, end.size):
                        if isinstance(item, RecordError):
                            raise sf.corrupt(seg.path, offset, str(item))
                        if item.lsn >= lsn:
                            yield item
            except FileNotFoundError as exc:
                raise JournalError(
                    f"journal segment {seg.path} was purged while being read; the reader "
                    "needs a base copy of the databases"
                ) from exc
            except OSError as exc:
                raise JournalError(f"cannot read journal segment {seg.path}: {exc}") from exc
