"""Which closed journal segments go: a table of journals, members and limits."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from litemirror.replication.purge import ClosedSegment, plan_purge, purge_before

MB = 1024 * 1024
# Three closed 10 MB segments ending at LSN 100, 200, 300; an open one of 5 MB.
SEGS = [ClosedSegment(100, 10 * MB), ClosedSegment(200, 10 * MB), ClosedSegment(300, 10 * MB)]
TOTAL = 35 * MB

CASES = [
    ("nothing closed, nothing goes", [], 1000, None, 1 * MB, 0),
    ("every member has everything: all closed segments go", SEGS, 400, None, 100 * MB, 401),
    ("a member at 150 keeps the segment it needs and after", SEGS, 150, None, 100 * MB, 151),
    ("a member at 0 keeps all while under the cap", SEGS, 0, None, 100 * MB, 1),
    ("over the cap the oldest go although a member needs them", SEGS, 0, None, 20 * MB, 201),
    ("far over the cap: everything closed goes", SEGS, 0, None, 1 * MB, 301),
    ("a backup never drops what it has not applied, cap or not", SEGS, 0, 150, 1 * MB, 101),
    ("a backup that applied everything follows the cap", SEGS, 0, 300, 1 * MB, 301),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "segs", "needed", "applied", "limit", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_purge_point(
    why: str,
    segs: list[ClosedSegment],
    needed: int,
    applied: int | None,
    limit: int,
    expected: int,
) -> None:
    got = purge_before(
        segs, total_bytes=TOTAL, limit_bytes=limit, needed_lsn=needed, applied_lsn=applied
    )
    assert got == expected, why


class Seg(NamedTuple):
    closed: bool
    last_lsn: int | None
    size_bytes: int


# The journal as Journal.segments() lists it: three closed segments, an open one.
JOURNAL = [Seg(True, 100, 10 * MB), Seg(True, 200, 10 * MB), Seg(True, 300, 10 * MB),
           Seg(False, None, 5 * MB)]  # fmt: skip

PLANS = [
    ("only the open segment: nothing goes", [Seg(False, None, MB)], True, [0], 0, 100 * MB, 0),
    ("a closed segment without an LSN is not counted", [Seg(True, None, MB)], True, [500], 0,
     100 * MB, 0),
    ("primary: every member has everything", JOURNAL, True, [400, 350], 0, 100 * MB, 351),
    ("primary: the slowest member decides", JOURNAL, True, [400, 150], 0, 100 * MB, 151),
    ("primary: a member never heard from (0) keeps all", JOURNAL, True, [0, 400], 0,
     100 * MB, 1),
    ("primary alone in the mirror: its own last LSN", JOURNAL, True, [], 0, 100 * MB, 351),
    ("primary over the cap drops what a member needs", JOURNAL, True, [0], 0, 20 * MB, 201),
    ("follower: its applied LSN decides", JOURNAL, False, [0], 250, 100 * MB, 251),
    ("follower over the cap keeps what it has not applied", JOURNAL, False, [400], 150,
     1 * MB, 151),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "segs", "primary", "others", "applied", "limit", "expected"),
    PLANS,
    ids=[c[0] for c in PLANS],
)
def test_purge_plan(
    why: str,
    segs: list[Seg],
    primary: bool,
    others: list[int],
    applied: int,
    limit: int,
    expected: int,
) -> None:
    got = plan_purge(
        segs,
        primary=primary,
        others_durable=others,
        last_lsn=350,
        applied_lsn=applied,
        limit_bytes=limit,
        archived_lsn=None,
    )
    assert got == expected, why


# With an archive: (why, needed, applied, archived, limit, expected) over SEGS.
ARCHIVED = [
    ("nothing archived: nothing goes although every member has it", 400, None, 0, 100 * MB, 1),
    ("archived through 200: the third segment waits", 400, None, 200, 100 * MB, 201),
    ("archived inside a segment: that segment waits", 400, None, 250, 100 * MB, 251),
    ("archived everything: members decide", 150, None, 300, 100 * MB, 151),
    ("over the cap, archive failing: the archive wins, nothing goes", 0, None, 0, 1 * MB, 1),
    ("over the cap: archived segments go although a member needs them", 0, None, 200, 1 * MB,
     201),
    ("a follower: applied and archived both bound it", 250, 250, 300, 1 * MB, 251),
    ("a follower: the archive bounds it before its applied LSN", 300, 300, 100, 1 * MB, 101),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "needed", "applied", "archived", "limit", "expected"),
    ARCHIVED,
    ids=[c[0] for c in ARCHIVED],
)
def test_purge_waits_for_the_archive(
    why: str, needed: int, applied: int | None, archived: int, limit: int, expected: int
) -> None:
    got = purge_before(
        SEGS,
        total_bytes=TOTAL,
        limit_bytes=limit,
        needed_lsn=needed,
        applied_lsn=applied,
        archived_lsn=archived,
    )
    assert got == expected, why


def test_plan_purge_passes_the_archive_on() -> None:
    got = plan_purge(
        JOURNAL,
        primary=True,
        others_durable=[400],
        last_lsn=350,
        applied_lsn=0,
        limit_bytes=100 * MB,
        archived_lsn=100,
    )
    assert got == 101
