"""Which closed journal segments a member may delete (pure).

A closed segment goes once every other member holds all of it. The journal
is also capped at ``journal.max_retain_bytes``: past the cap the oldest
segments go even though a lagging member still needs them — that member is
re-seeded with a base copy later, which is cheaper than a disk that fills.
A member that is not the primary never drops records it has not applied
itself (its databases need them after a crash).

With a journal archive (``[archive] dir``), a segment goes only once it is
archived, cap or not: the archive is what a point-in-time restore replays,
and a segment purged unarchived is a hole no later backup of the past can
fill. So while the archive is failing (a full or read-only disk) the journal
keeps its segments and grows past the cap; commits go on until the journal's
own disk fills. The cap was a choice between disk space and re-seeding a
lagging member (cheap to redo); losing archived history cannot be redone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol


class ClosedSegment(NamedTuple):
    last_lsn: int
    size_bytes: int


def purge_before(
    closed: Sequence[ClosedSegment],
    *,
    total_bytes: int,
    limit_bytes: int,
    needed_lsn: int,
    applied_lsn: int | None,
    archived_lsn: int | None = None,
) -> int:
    """The LSN below which segments may be deleted (0: none).

    ``closed`` are the closed segments, oldest first; ``total_bytes`` is the
    size of the whole journal (open segment included); ``needed_lsn`` the
    lowest LSN some other member has not got yet minus one (what every member
    holds); ``applied_lsn`` this member's own applied LSN, or None on the
    primary (its records are applied when written); ``archived_lsn`` the LSN
    through which the archive holds every record, None without an archive.
    """
    if not closed:
        return 0
    cut = needed_lsn + 1
    if archived_lsn is not None:
        cut = min(cut, archived_lsn + 1)
    total = total_bytes
    for seg in closed:
        if seg.last_lsn < cut:
            total -= seg.size_bytes  # every member has it: it goes
            continue
        if total <= limit_bytes:
            break
        if applied_lsn is not None and seg.last_lsn > applied_lsn:
            break  # never drop what this member has not applied
        if archived_lsn is not None and seg.last_lsn > archived_lsn:
            break  # never drop what is not archived, cap or not (see the module doc)
        # Over the cap: it goes although a member still needs it (re-seeded later).
        cut = seg.last_lsn + 1
        total -= seg.size_bytes
    return cut


class Segment(Protocol):
    """What :func:`plan_purge` reads of a journal segment (``Journal.segments()``)."""

    @property
    def closed(self) -> bool: ...
    @property
    def last_lsn(self) -> int | None: ...
    @property
    def size_bytes(self) -> int: ...


def plan_purge(
    segments: Iterable[Segment],
    *,
    primary: bool,
    others_durable: Iterable[int],
    last_lsn: int,
    applied_lsn: int,
    limit_bytes: int,
    archived_lsn: int | None,
) -> int:
    """The LSN below which this member's closed journal segments may go (0: none).

    ``segments`` are all of the journal's segments, oldest first (the open one
    included: it counts towards the cap). On the primary, what every member
    holds is the lowest LSN the other members are known to hold durably
    (``others_durable``, 0 for one never heard from; with no other member,
    ``last_lsn``). On any other member it is its own ``applied_lsn``, and it
    never drops what it has not applied. With an archive, nothing after
    ``archived_lsn`` goes.
    """
    segs = list(segments)
    closed = [
        ClosedSegment(s.last_lsn, s.size_bytes) for s in segs if s.closed and s.last_lsn is not None
    ]
    if not closed:
        return 0
    needed = min(others_durable, default=last_lsn) if primary else applied_lsn
    return purge_before(
        closed,
        total_bytes=sum(s.size_bytes for s in segs),
        limit_bytes=limit_bytes,
        needed_lsn=needed,
        applied_lsn=None if primary else applied_lsn,
        archived_lsn=archived_lsn,
    )
