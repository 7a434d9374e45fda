"""The journal archive's shell: copies closed segments to ``<dir>/<mirror>/<member>/``.

What is copied and what retention deletes is decided by the pure
:mod:`litemirror.replication.archive`; this shell lists the archive, copies
byte for byte under the segment's own file name (temp name, fsync, rename,
directory fsync: a reader sees a whole segment or none), deletes what
retention names, and keeps the figures the purge, the status and the metrics
read.

All file work runs on the archiver's own thread, one pass at a time, never on
the event loop: :meth:`Archiver.poke` (housekeeping, once a second) starts a
pass unless one is running. The archive is known by its files alone (no state
file): every pass lists the directory (and removes temp files a crash left),
so a file the archive lost stops counting as archived before the purge could
delete the journal's copy. A pass that fails (a full, read-only or broken
disk) raises ``archive_failed`` (at most once a minute) and changes nothing
else: commits go on, the purge keeps the unarchived segments, and the next
pass tries again; ``archive_resumed`` says when it works again.

With a key (``[archive] encrypt_key_file``) each segment is sealed
(:mod:`litemirror.backup.sealed`) as it is copied, under the same file name:
the temp file holds sealed bytes from its first write, and the listing opens
the first chunk of each file to read the segment header inside. The size an
archived file counts for is its plaintext size (the segment's).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from litemirror.backup import sealed
from litemirror.config import Archive
from litemirror.durable import fsync_dir, replace_file
from litemirror.errors import JournalError
from litemirror.journal import SegmentInfo
from litemirror.journal.segfile import (
    SEGMENT_HEADER_SIZE,
    SUFFIX,
    segment_name,
    unpack_segment_header,
)
from litemirror.replication.archive import ArchivedFile, plan_archive, plan_retention
from litemirror.server.ports import EventSink

log = logging.getLogger("litemirror.archive")

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Pass:
    """What one pass leaves for the loop to read."""

    archived_lsn: int
    segments: int
    bytes: int
    newest: int | None
    copied: int
    deleted: int
    error: str | None
    waiting: str | None


class Archiver:
    def __init__(
        self,
        *,
        settings: Archive,
        directory: Path,
        segments: Callable[[], Sequence[SegmentInfo]],
        confirmed_lsn: Callable[[], int],
        executor: Executor,
        event: EventSink,
        failed: Callable[[str], object],
        key: sealed.Key | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``directory``: this member's archive, ``<dir>/<mirror>/<member>``;
        ``segments``: the journal's segments, oldest first; ``confirmed_lsn``: the
        commit point; ``failed(message)``: raise ``archive_failed`` (rate-limited);
        ``key``: seal the archived segments with it (None: byte-for-byte copies)."""
        self._key = key
        self._settings = settings
        self.directory = directory
        self._segments = segments
        self._confirmed = confirmed_lsn
        self._executor = executor
        self._event = event
        self._failed = failed
        self._clock = clock
        # Touched only on the archiver's thread (one pass at a time).
        self._files: dict[int, ArchivedFile] | None = None
        self._running: Future[_Pass] | None = None
        self._last: _Pass | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    # -- read on the event loop ----------------------------------------------------------------

    def archived_lsn(self) -> int:
        """Every journal record at or below this LSN is archived (0 before the first pass)."""
        return 0 if self._last is None else self._last.archived_lsn

    def status(self) -> dict[str, Any]:
        last = self._last
        return {
            "dir": str(self.directory),
            "archived_lsn": last.archived_lsn if last is not None and last.segments else None,
            "segments": None if last is None else last.segments,
            "bytes": None if last is None else last.bytes,
            "newest_segment": None if last is None else last.newest,
            "ok": last is not None and last.error is None,
            "waiting": None if last is None else last.waiting,
            "last_error": self._last_error,
            "last_error_at": self._last_error_at,
            "keep_days": self._settings.keep_days,
            "max_bytes": self._settings.max_bytes,
        }

    # -- passes ----------------------------------------------------------------------------

    def poke(self) -> None:
        """Start a pass on the archiver's thread unless one is running (call on the loop)."""
        if self._running is not None and not self._running.done():
            return
        segs = list(self._segments())
        confirmed = self._confirmed()
        fut = self._executor.submit(self.run_pass, segs, confirmed, self._clock())
        self._running = fut
        loop = asyncio.get_running_loop()
        fut.add_done_callback(lambda f: loop.call_soon_threadsafe(self._finished, f))

    async def wait(self) -> None:
        """Wait for the running pass, if any (shutdown, tests)."""
        fut = self._running
        if fut is not None:
            await asyncio.wrap_future(fut)
            await asyncio.sleep(0)  # let the done callback record it

    def _finished(self, fut: Future[_Pass]) -> None:
        try:
            p = fut.result()
        except Exception as exc:  # a bug, not a disk: say so and try again next time
            log.exception("journal archive pass failed")
            p = _Pass(self.archived_lsn(), 0, 0, None, 0, 0, f"archive pass failed: {exc}", None)
        was_failing = self._last is not None and self._last.error is not None
        self._last = p
        if p.error is not None:
            self._last_error, self._last_error_at = p.error, self._clock()
            self._failed(p.error)
        elif was_failing:
            self._event(
                "archive_resumed",
                f"journal archive {self.directory} works again: archived through LSN "
                f"{p.archived_lsn}",
            )
        if p.copied or p.deleted:
            log.info(
                "journal archive: copied %d segment(s), deleted %d by retention; archived "
                "through LSN %d",
                p.copied,
                p.deleted,
                p.archived_lsn,
            )

    def run_pass(self, segs: Sequence[SegmentInfo], confirmed: int, now: float) -> _Pass:
        """One pass (on the archiver's thread): list, copy, apply retention."""
        copied = deleted = 0
        error: str | None = None
        try:
            files = self._listing()
            plan = plan_archive(segs, files, confirmed_lsn=confirmed)
            by_number = {s.number: s for s in segs}
            for number in plan.copy:
                if self._copy(by_number[number]):
                    copied += 1
            if segs:
                for number in plan_retention(
                    list(files.values()),
                    oldest_in_journal=segs[0].number,
                    now=now,
                    keep_s=self._settings.keep_days * 86400.0,
                    max_bytes=self._settings.max_bytes,
                ):
                    (self.directory / segment_name(number)).unlink(missing_ok=True)
                    del files[number]
                    deleted += 1
                if deleted:
                    fsync_dir(self.directory)
        except OSError as exc:
            error = (
                f"could not archive the journal to {self.directory}: "
                f"{exc.strerror or exc} ({exc.filename or self.directory}); the journal keeps "
                "every segment not yet archived and commits go on; free space on the archive's "
                "disk or make it writable, archiving resumes by itself"
            )
        files = self._files or {}
        plan = plan_archive(segs, files, confirmed_lsn=confirmed)
        if error is None and plan.conflict is not None:
            error = f"journal archive {self.directory} stopped: {plan.waiting}"
        return _Pass(
            archived_lsn=plan.archived_lsn,
            segments=len(files),
            bytes=sum(f.size_bytes for f in files.values()),
            newest=max(files, default=None),
            copied=copied,
            deleted=deleted,
            error=error,
            waiting=plan.waiting,
        )

    def _listing(self) -> dict[int, ArchivedFile]:
        """The archive's files as they are now on disk (temp files of a cut copy removed).

        Listed at every pass, not only at start: a file the archive lost (a disk
        swapped or unmounted, a file deleted by hand) must stop counting as
        archived before the purge deletes the journal's copy. A file already
        known with the same size and time is not read again.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        known = self._files or {}
        files: dict[int, ArchivedFile] = {}
        for entry in os.scandir(self.directory):
            if entry.name.endswith(SUFFIX + ".tmp"):
                os.unlink(entry.path)  # a copy a crash cut short; made again
                continue
            stem, _, suffix = entry.name.partition(".")
            if "." + suffix != SUFFIX or not (stem.isdigit() and len(stem) == 10):
                continue  # not ours; left alone
            st = entry.stat()
            old = known.get(int(stem))
            if old is not None and (old.size_bytes, old.mtime) == (st.st_size, st.st_mtime):
                files[old.number] = old
                continue
            size = st.st_size
            try:
                with open(entry.path, "rb") as f:
                    head = f.read(SEGMENT_HEADER_SIZE)
                    if sealed.is_sealed(head) and self._key is not None:
                        head, shift = self._open_head(f, entry.path)
                        size = sealed.plain_size(size, shift)
                number, first_lsn, _ = unpack_segment_header(head, Path(entry.path))
            except (JournalError, sealed.SealedError) as exc:
                log.warning("journal archive: %s cannot be read (%s); ignored", entry.path, exc)
                continue
            files[number] = ArchivedFile(number, first_lsn, size, st.st_mtime)
        self._files = files
        return files

    def _open_head(self, f: Any, path: str) -> tuple[bytes, int]:
        """The first plaintext bytes of the sealed file ``f`` and its chunk shift."""
        assert self._key is not None
        f.seek(0)
        raw = f.read(sealed.HEADER_SIZE)
        header = sealed.decode_header(raw, path)
        opener = sealed.Opener({self._key.id: self._key}, path)
        rest = f.read(header.chunk + sealed.TAG_BYTES + 1)
        plain = opener.update(raw + rest)
        if len(rest) <= header.chunk + sealed.TAG_BYTES:
            plain += opener.finish()  # the whole file was one (final) chunk
        return plain[:SEGMENT_HEADER_SIZE], header.shift

    def _copy(self, seg: SegmentInfo) -> bool:
        """Copy ``seg`` whole and durably; False if the journal dropped it meanwhile."""
        assert self._files is not None
        final = self.directory / seg.path.name
        tmp = final.with_name(final.name + ".tmp")
        try:
            with open(seg.path, "rb") as src:
                try:
                    with open(tmp, "wb") as dst:
                        sealer = (
                            sealed.Sealer(self._key, os.urandom(sealed.SALT_BYTES))
                            if self._key is not None
                            else None
                        )
                        for chunk in _chunks(src, seg.size_bytes):
                            dst.write(chunk if sealer is None else sealer.update(chunk))
                        if sealer is not None:
                            dst.write(sealer.finish())
                        dst.flush()
                        os.fsync(dst.fileno())
                    replace_file(tmp, final)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
        except FileNotFoundError as exc:
            if exc.filename == str(seg.path):
                return False  # purged or replaced by a re-seed: nothing to keep
            raise
        self._files[seg.number] = ArchivedFile(
            seg.number, seg.first_lsn, seg.size_bytes, final.stat().st_mtime
        )
        return True


def _chunks(src: Any, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``src`` in chunks (a closed segment is never written again)."""
    left = size
    while left:
        chunk = src.read(min(_CHUNK, left))
        if not chunk:
            raise OSError(0, f"segment ended {left} bytes early", src.name)
        left -= len(chunk)
        yield chunk


class ArchiveCollector(Collector):
    """``litemirror_archive_lsn`` and ``litemirror_archive_bytes`` of this member."""

    def __init__(self, member: str, archiver: Archiver) -> None:
        self.member = member
        self.archiver = archiver

    def collect(self) -> Iterator[Metric]:
        st = self.archiver.status()
        lsn = GaugeMetricFamily(
            "litemirror_archive_lsn",
            "Every journal record at or below this LSN is in the journal archive.",
            labels=["member"],
        )
        size = GaugeMetricFamily(
            "litemirror_archive_bytes",
            "Bytes of journal segments in the archive.",
            labels=["member"],
        )
        if st["archived_lsn"] is not None:
            lsn.add_metric([self.member], st["archived_lsn"])
        if st["bytes"] is not None:
            size.add_metric([self.member], st["bytes"])
        yield lsn
        yield size
