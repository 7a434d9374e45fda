"""Which closed journal segments go: a table of journals, members and limits."""

from __future__ import annotations

import pytest

from litemirror.replication.purge import ClosedSegment, purge_before

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
