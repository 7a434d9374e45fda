"""The restore's decisions: restorable range, target checks, per-record steps (tables)."""

from __future__ import annotations

import pytest

from litemirror.backup.plan import (
    ArchivedSegment,
    Barrier,
    ByLsn,
    ByTime,
    Latest,
    Plan,
    Refusal,
    Step,
    Target,
    chain,
    plan,
    restorable,
    step,
)
from litemirror.journal.record import RecordKind


def seg(first: int, last: int, ts0: int = 0, ts1: int = 0, src: str = "a") -> ArchivedSegment:
    # By default the commit time of LSN n is n * 1000 ms.
    return ArchivedSegment(
        src, f"{first:010d}.lmj", first, last, ts0 or first * 1000, ts1 or last * 1000
    )


def show(ts_ms: int) -> str:
    return f"t{ts_ms}"


CHAIN = [
    # (copy LSN, segments, expected end, expected reads as (source, from, to), reason contains)
    (10, [], 10, [], "no archived journal segment"),
    (10, [seg(1, 20)], 20, [("a", 11, 20)], "ends at LSN 20"),
    (10, [seg(1, 10)], 10, [], "nothing after LSN 10"),
    (10, [seg(11, 20), seg(21, 30)], 30, [("a", 11, 20), ("a", 21, 30)], "ends at LSN 30"),
    (10, [seg(12, 20)], 10, [], "lacks LSN 11 .. 11"),
    (10, [seg(11, 20), seg(25, 30)], 20, [("a", 11, 20)], "lacks LSN 21 .. 24"),
    # Two members cut segments differently; together they close a gap.
    (
        10,
        [seg(11, 20), seg(25, 30), seg(15, 27, src="b")],
        30,
        [("a", 11, 20), ("b", 21, 27), ("a", 28, 30)],
        "ends at LSN 30",
    ),
    # The segment reaching furthest is preferred.
    (10, [seg(5, 15), seg(8, 40, src="b")], 40, [("b", 11, 40)], "ends at LSN 40"),
]


@pytest.mark.parametrize(("copy", "segments", "end", "reads", "why"), CHAIN)
def test_chain(
    copy: int,
    segments: list[ArchivedSegment],
    end: int,
    reads: list[tuple[str, int, int]],
    why: str,
) -> None:
    got_end, got_reads, got_why = chain(copy, segments)
    assert got_end == end
    assert [(r.segment.source, r.from_lsn, r.to_lsn) for r in got_reads] == reads
    assert why in got_why


def test_range_is_cut_before_a_barrier_of_the_database() -> None:
    span = restorable(10, 10_000, [seg(1, 40)], [Barrier(25, 25_000, RecordKind.IMPORT_DB)])
    assert (span.first_lsn, span.last_lsn, span.before_ts_ms) == (10, 24, 25_000)
    assert "replaced by an imported file at LSN 25" in span.end_reason
    assert [(r.from_lsn, r.to_lsn) for r in span.reads] == [(11, 24)]


def test_barrier_before_the_copy_does_not_count() -> None:
    span = restorable(10, 10_000, [seg(1, 40)], [Barrier(5, 5_000, RecordKind.CREATE_DB)])
    assert span.last_lsn == 40


SPAN = restorable(10, 10_000, [seg(1, 30)], [])

PLANS: list[tuple[Target, tuple[int, int | None, list[tuple[int, int]]] | str]] = [
    # target, (upto, stop after ts, reads) or the words of the refusal
    (Latest(), (30, None, [(11, 30)])),
    (ByLsn(10), (10, None, [])),
    (ByLsn(20), (20, None, [(11, 20)])),
    (ByLsn(30), (30, None, [(11, 30)])),
    (ByLsn(9), "LSN 9 cannot be restored"),
    (ByLsn(31), "restorable are LSN 10 .. 30"),
    (ByTime(10_000), (30, 10_000, [(11, 30)])),
    (ByTime(20_500), (30, 20_500, [(11, 30)])),
    (ByTime(29_999), (30, 29_999, [(11, 30)])),
    (ByTime(9_999), "times from t10000 up to, not including, t30000"),
    # The last archived commit's own time: a later commit may share it unarchived.
    (ByTime(30_000), "time t30000 cannot be restored"),
    (ByTime(99_000), "the archive ends at LSN 30"),
]


@pytest.mark.parametrize(("target", "expect"), PLANS)
def test_plan(target: Target, expect: tuple[int, int | None, list[tuple[int, int]]] | str) -> None:
    got = plan("app", target, SPAN, show)
    if isinstance(expect, str):
        assert isinstance(got, Refusal)
        assert expect in got.reason
        assert "restorable are LSN 10 .. 30" in got.reason
    else:
        assert isinstance(got, Plan)
        upto, stop_ts, reads = expect
        assert (got.copy_lsn, got.upto_lsn, got.stop_after_ts_ms) == (10, upto, stop_ts)
        assert [(r.from_lsn, r.to_lsn) for r in got.reads] == reads


def test_without_archive_only_the_copy_itself() -> None:
    span = restorable(10, 10_000, [], [])
    assert isinstance(plan("app", ByLsn(10), span, show), Plan)
    refused = plan("app", ByTime(10_000), span, show)
    assert isinstance(refused, Refusal)
    assert "only LSN 10 (the copy itself)" in refused.reason
    assert "only by LSN" in refused.reason


PLAN = Plan("app", copy_lsn=10, upto_lsn=20, stop_after_ts_ms=15_000, reads=())
C, M = RecordKind.CHANGES, RecordKind.MARKER

STEPS = [
    # lsn, ts, kind, db, step
    (10, 10_000, C, "app", Step.SKIP),  # in the copy already
    (11, 11_000, C, "app", Step.APPLY),
    (12, 12_000, C, "other", Step.SKIP),
    (13, 13_000, M, "", Step.SKIP),
    (14, 15_000, C, "app", Step.APPLY),  # committed at the target time: included
    (15, 15_001, C, "app", Step.STOP),  # after it
    (15, 15_001, M, "", Step.STOP),  # any record after it ends the prefix
    (21, 1_000, C, "app", Step.STOP),  # past the LSN bound
]


@pytest.mark.parametrize(("lsn", "ts", "kind", "db", "expect"), STEPS)
def test_step(lsn: int, ts: int, kind: RecordKind, db: str, expect: Step) -> None:
    assert step(PLAN, lsn, ts, kind, db) is expect


def test_a_clock_that_stepped_back_still_gives_a_prefix() -> None:
    # LSN 12 was committed "before" LSN 11 by the clock: the replay stops at
    # LSN 11 (the first record after the target) and never applies 12 alone.
    p = Plan("app", copy_lsn=10, upto_lsn=20, stop_after_ts_ms=11_500, reads=())
    assert step(p, 11, 12_000, C, "app") is Step.STOP
