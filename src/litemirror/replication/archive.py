"""Which journal segments go to the archive, and which archived ones retention deletes (pure).

Theory of operation
-------------------
With ``[archive] dir`` set, every member copies each closed segment of its
journal, byte for byte and under its own file name, to
``<dir>/<mirror>/<member>/``. A segment is copied only once all its records
are at or below the member's commit point: records after it may still be
rolled back (a demoted primary's, a backup's not yet confirmed), and the
archive must hold only history. Segments are archived in order, oldest
first, so the archive never has a hole that a later segment hides.

The archive is known by its files (the shell lists them at start and after
each copy): a segment counts as archived when the archive holds a file of its
number with the same size and first LSN. A file of that number with another
size or first LSN is a *conflict* (e.g. the member's data directory was
created anew and numbers its segments from 1 again): archiving stops there and
the operator is told, since overwriting it would destroy history and skipping
it would leave a hole.

``archived_lsn`` is the LSN through which every record of the journal is in
the archive; the purge (:mod:`.purge`) never deletes past it.

Retention deletes the oldest archived segments first (so what is left is one
unbroken run), by age and by the archive's total size, and never a segment
the journal still holds (it would only be copied again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class JournalSegment(Protocol):
    """What the plan reads of a journal segment (``Journal.segments()``)."""

    @property
    def number(self) -> int: ...
    @property
    def first_lsn(self) -> int: ...
    @property
    def last_lsn(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def closed(self) -> bool: ...


class ArchivedFile(NamedTuple):
    """One segment file in the member's archive directory."""

    number: int
    first_lsn: int
    size_bytes: int
    #: Modification time (unix seconds): when it was archived.
    mtime: float


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    #: Numbers of the journal segments to copy now, oldest first.
    copy: tuple[int, ...]
    #: Every journal record at or below this LSN is archived (purge stops here).
    archived_lsn: int
    #: A segment number whose archived file differs from the journal's (archiving stops).
    conflict: int | None
    #: Why nothing (more) is copied, in one sentence; None when everything closed is archived.
    waiting: str | None


def plan_archive(
    segments: Iterable[JournalSegment],
    archived: Mapping[int, ArchivedFile],
    *,
    confirmed_lsn: int,
) -> ArchivePlan:
    """What to archive now, given the journal (oldest first) and the archive's files.

    ``confirmed_lsn`` is the member's commit point: a segment whose last record
    is after it is not archived yet.
    """
    segs = list(segments)
    if not segs:
        return ArchivePlan((), 0, None, None)
    done = segs[0].first_lsn - 1  # what the journal no longer holds is not its to archive
    copy: list[int] = []
    conflict: int | None = None
    waiting: str | None = None
    for s in segs:
        if not s.closed:
            break
        if s.last_lsn < s.first_lsn:
            if not copy:
                done = s.last_lsn  # an empty closed segment holds nothing to keep
            continue
        have = archived.get(s.number)
        if have is not None:
            if have.size_bytes == s.size_bytes and have.first_lsn == s.first_lsn:
                if not copy:
                    done = s.last_lsn
                continue
            conflict = s.number
            waiting = (
                f"the archive holds a different segment {s.number} (first LSN "
                f"{have.first_lsn}, {have.size_bytes} bytes; the journal's: first LSN "
                f"{s.first_lsn}, {s.size_bytes} bytes); move the member's archive directory "
                "away to start a new one"
            )
            break
        if s.last_lsn > confirmed_lsn:
            waiting = (
                f"segment {s.number} ends at LSN {s.last_lsn}, after the commit point "
                f"{confirmed_lsn}"
            )
            break
        copy.append(s.number)
    return ArchivePlan(tuple(copy), done, conflict, waiting)


def plan_retention(
    archived: Sequence[ArchivedFile],
    *,
    oldest_in_journal: int,
    now: float,
    keep_s: float,
    max_bytes: int,
) -> list[int]:
    """Numbers of the archived segments to delete, oldest first.

    ``oldest_in_journal`` is the number of the journal's oldest segment: it and
    later ones are kept. ``keep_s`` 0 and ``max_bytes`` 0 mean no limit.
    """
    files = sorted(archived)
    total = sum(f.size_bytes for f in files)
    out: list[int] = []
    for f in files:
        if f.number >= oldest_in_journal:
            break
        too_old = keep_s > 0 and f.mtime < now - keep_s
        too_big = max_bytes > 0 and total > max_bytes
        if not (too_old or too_big):
            break  # oldest first: what stays is one unbroken run
        out.append(f.number)
        total -= f.size_bytes
    return out
