"""What a restore replays: the restorable range and the records to apply (pure).

Theory of operation
-------------------
A backup copy of a database holds its state at the copy's LSN ``C`` (its
meta LSN). The journal archive holds closed journal segments, copied byte for
byte from members' journals; LSNs are the mirror's history, the same on every
member, but each member cuts its segments at its own boundaries. So a restore
first chains segments (of any member) into one run of LSNs starting at
``C + 1`` (:func:`chain`): a gap ends the run, since a missing record could
have changed the database.

The run also ends before a record that replaced or removed the chosen
database (``CREATE_DB``, ``IMPORT_DB``, ``DROP_DB`` of it after the copy): its
new content is not in the journal (an import is a file), so no replay can
cross it. Such records are the *barriers* the shell hands in.

The *restorable range* is then LSN ``C`` .. ``E`` (the run's end), and in
time: from the commit time of the copy up to, not including, the commit time
of the last restorable record (or of the barrier). A time target ``T`` means
"every record committed at or before T": the replay stops at the first record
whose timestamp is after ``T``. It must be strictly before the last archived
time, because a commit at that same millisecond or later may not be archived
yet, and then the state at ``T`` is not known. Timestamps are the primary's
commit clock (``ts_ms`` of the record header); the replay always applies a
prefix of the history, so a clock that stepped back yields the state up to
the first record after ``T``, never a state with holes.

:func:`step` is the per-record decision while replaying: skip (at or below
the copy, another database, a marker), apply, or stop. No I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from litemirror.journal.record import RecordKind


@dataclass(frozen=True, slots=True)
class ArchivedSegment:
    """One archived segment file holding at least one record."""

    source: str  # where it was found (the member's archive directory)
    name: str  # its file name
    first_lsn: int
    last_lsn: int
    first_ts_ms: int
    last_ts_ms: int


@dataclass(frozen=True, slots=True)
class Barrier:
    """A record that replaced or removed the restored database."""

    lsn: int
    ts_ms: int
    kind: RecordKind


@dataclass(frozen=True, slots=True)
class ByLsn:
    lsn: int


@dataclass(frozen=True, slots=True)
class ByTime:
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Latest:
    """Everything the archive holds."""


Target = ByLsn | ByTime | Latest


@dataclass(frozen=True, slots=True)
class Read:
    """Read ``segment`` for the records ``from_lsn`` .. ``to_lsn``."""

    segment: ArchivedSegment
    from_lsn: int
    to_lsn: int


@dataclass(frozen=True, slots=True)
class Range:
    """What can be restored from a copy and an archive."""

    first_lsn: int  # the copy's LSN
    last_lsn: int
    #: Earliest time: the copy's commit time.
    from_ts_ms: int
    #: Times before this one can be restored (None: no time target is possible).
    before_ts_ms: int | None
    #: Why the range ends where it does (one sentence).
    end_reason: str
    reads: tuple[Read, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    db: str
    copy_lsn: int
    upto_lsn: int
    #: Stop at the first record committed after this time (a time target).
    stop_after_ts_ms: int | None
    reads: tuple[Read, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


#: Renders a millisecond timestamp for messages (the shell owns the calendar).
TimeText = Callable[[int], str]


class Step(enum.Enum):
    SKIP = "skip"
    APPLY = "apply"
    STOP = "stop"


def chain(after: int, segments: Sequence[ArchivedSegment]) -> tuple[int, tuple[Read, ...], str]:
    """The longest run of LSNs ``after + 1`` .. ``end`` the segments hold without a gap.

    Returns ``end`` (``after`` when nothing follows), the reads that cover the
    run (the segment reaching furthest is taken at each step) and why it ends.
    """
    ordered = sorted(segments, key=lambda s: (s.first_lsn, -s.last_lsn, s.source, s.name))
    end, reads = after, []
    while True:
        best: ArchivedSegment | None = None
        for seg in ordered:
            if seg.first_lsn <= end + 1 <= seg.last_lsn and (
                best is None or seg.last_lsn > best.last_lsn
            ):
                best = seg
        if best is None:
            break
        reads.append(Read(best, end + 1, best.last_lsn))
        end = best.last_lsn
    if not segments:
        why = "no archived journal segment was given"
    else:
        later = [s.first_lsn for s in ordered if s.first_lsn > end + 1]
        if later:
            why = f"the archive lacks LSN {end + 1} .. {min(later) - 1}"
        elif end == after and max(s.last_lsn for s in ordered) <= after:
            why = f"the archive holds nothing after LSN {after}"
        else:
            why = f"the archive ends at LSN {end}"
    return end, tuple(reads), why


def restorable(
    copy_lsn: int,
    copy_ts_ms: int,
    segments: Sequence[ArchivedSegment],
    barriers: Sequence[Barrier],
) -> Range:
    """The restorable range of a copy at ``copy_lsn`` committed at ``copy_ts_ms``."""
    end, reads, why = chain(copy_lsn, segments)
    before = reads[-1].segment.last_ts_ms if reads else None
    cut = min((b for b in barriers if copy_lsn < b.lsn <= end + 1), key=_lsn, default=None)
    if cut is not None:
        end = cut.lsn - 1
        before = cut.ts_ms
        why = f"the database was {_WHAT[cut.kind]} at LSN {cut.lsn}"
        reads = tuple(
            Read(r.segment, r.from_lsn, min(r.to_lsn, end)) for r in reads if r.from_lsn <= end
        )
    if before is not None and before <= copy_ts_ms:
        before = None
    return Range(copy_lsn, end, copy_ts_ms, before, why, reads)


_WHAT = {
    RecordKind.CREATE_DB: "created again",
    RecordKind.IMPORT_DB: "replaced by an imported file",
    RecordKind.DROP_DB: "dropped",
}


def _lsn(b: Barrier) -> int:
    return b.lsn


def plan(db: str, target: Target, span: Range, show_time: TimeText) -> Plan | Refusal:
    """Decide the replay for ``target``, or refuse saying what can be restored.

    ``show_time`` renders a millisecond timestamp for the messages (the shell
    owns the calendar).
    """
    if isinstance(target, Latest):
        return Plan(db, span.first_lsn, span.last_lsn, None, span.reads)
    if isinstance(target, ByLsn):
        if span.first_lsn <= target.lsn <= span.last_lsn:
            return Plan(db, span.first_lsn, target.lsn, None, _upto(span.reads, target.lsn))
        return Refusal(
            f"LSN {target.lsn} cannot be restored from this backup and archive: "
            f"{describe(span, show_time)}"
        )
    if span.from_ts_ms <= target.ts_ms and (
        span.before_ts_ms is not None and target.ts_ms < span.before_ts_ms
    ):
        return Plan(db, span.first_lsn, span.last_lsn, target.ts_ms, span.reads)
    return Refusal(
        f"time {show_time(target.ts_ms)} cannot be restored from this backup and archive: "
        f"{describe(span, show_time)}"
    )


def describe(span: Range, show_time: TimeText) -> str:
    """The restorable range in one sentence."""
    lsns = (
        f"LSN {span.first_lsn} .. {span.last_lsn}"
        if span.last_lsn > span.first_lsn
        else f"only LSN {span.first_lsn} (the copy itself)"
    )
    if span.before_ts_ms is None:
        times = f"times: only by LSN (the copy was committed at {show_time(span.from_ts_ms)})"
    else:
        times = (
            f"times from {show_time(span.from_ts_ms)} up to, not including, "
            f"{show_time(span.before_ts_ms)}"
        )
    return f"restorable are {lsns}; {times}; {span.end_reason}"


def _upto(reads: tuple[Read, ...], lsn: int) -> tuple[Read, ...]:
    return tuple(
        Read(r.segment, r.from_lsn, min(r.to_lsn, lsn)) for r in reads if r.from_lsn <= lsn
    )


def step(plan: Plan, lsn: int, ts_ms: int, kind: RecordKind, db: str) -> Step:
    """What the replay does with the record ``lsn``."""
    if lsn <= plan.copy_lsn:
        return Step.SKIP
    if lsn > plan.upto_lsn:
        return Step.STOP
    if plan.stop_after_ts_ms is not None and ts_ms > plan.stop_after_ts_ms:
        return Step.STOP
    if kind == RecordKind.CHANGES and db == plan.db:
        return Step.APPLY
    return Step.SKIP
