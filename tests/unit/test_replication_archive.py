"""Which segments go to the archive and which archived ones retention deletes: tables."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from litemirror.replication.archive import ArchivedFile, plan_archive, plan_retention


class Seg(NamedTuple):
    number: int
    first_lsn: int
    last_lsn: int
    size_bytes: int
    closed: bool


# Journal: segments 3..5 closed (LSN 201-300, 301-400, 401-500), 6 open (501-520).
JOURNAL = [Seg(3, 201, 300, 1000, True), Seg(4, 301, 400, 1100, True),
           Seg(5, 401, 500, 1200, True), Seg(6, 501, 520, 300, False)]  # fmt: skip


def arch(*numbers: int, bad: int | None = None) -> dict[int, ArchivedFile]:
    """The archive holding ``numbers`` as the journal has them (``bad`` with another size)."""
    out = {n: ArchivedFile(n, 100 * (n - 1) + 1, 1000 + 100 * (n - 3), 0.0) for n in numbers}
    if bad is not None:
        out[bad] = ArchivedFile(bad, 1, 77, 0.0)
    return out


PLANS = [
    ("empty archive, all committed: every closed segment, oldest first", JOURNAL, arch(), 520,
     (3, 4, 5), 200, None),
    ("commit point inside segment 4: only 3", JOURNAL, arch(), 350, (3,), 200, None),
    ("commit point at the end of 4: 3 and 4", JOURNAL, arch(), 400, (3, 4), 200, None),
    ("nothing committed past segment 3's start: nothing", JOURNAL, arch(), 250, (), 200, None),
    ("3 archived: 4 and 5 copied, archived through 300", JOURNAL, arch(1, 2, 3), 520, (4, 5),
     300, None),
    ("all archived: nothing to copy, archived through 500", JOURNAL, arch(3, 4, 5), 520, (),
     500, None),
    ("a hole (4 missing) is filled first; 5 does not count yet", JOURNAL, arch(3, 5), 520,
     (4,), 300, None),
    ("a different file of number 4 stops archiving there", JOURNAL, arch(3, bad=4), 520, (),
     300, 4),
    ("the open segment is never archived", [Seg(6, 501, 520, 300, False)], arch(), 520, (),
     500, None),
    ("no segments at all", [], arch(), 0, (), 0, None),
    ("an empty closed segment counts as archived", [Seg(7, 521, 520, 40, True),
     Seg(8, 521, 530, 500, True), Seg(9, 531, 530, 40, False)], arch(), 530, (8,), 520, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "segs", "archived", "confirmed", "copy", "archived_lsn", "conflict"),
    PLANS,
    ids=[c[0] for c in PLANS],
)
def test_archive_plan(
    why: str,
    segs: list[Seg],
    archived: dict[int, ArchivedFile],
    confirmed: int,
    copy: tuple[int, ...],
    archived_lsn: int,
    conflict: int | None,
) -> None:
    plan = plan_archive(segs, archived, confirmed_lsn=confirmed)
    assert (plan.copy, plan.archived_lsn, plan.conflict) == (copy, archived_lsn, conflict), why


def test_the_plan_says_why_it_waits() -> None:
    plan = plan_archive(JOURNAL, arch(), confirmed_lsn=350)
    assert plan.waiting == "segment 4 ends at LSN 400, after the commit point 350"
    conflict = plan_archive(JOURNAL, arch(3, bad=4), confirmed_lsn=520).waiting
    assert conflict is not None and "different segment 4" in conflict
    assert plan_archive(JOURNAL, arch(3, 4, 5), confirmed_lsn=520).waiting is None


DAY = 86400.0
NOW = 100 * DAY
# Archived segments 1..5, 100 bytes each, archived on days 90..94.
FILES = [ArchivedFile(n, 100 * (n - 1) + 1, 100, (89 + n) * DAY) for n in range(1, 6)]

RETENTION = [
    ("no limits: nothing goes", 6, 0.0, 0, []),
    ("older than 8 days: days 90 and 91", 6, 8 * DAY, 0, [1, 2]),
    ("over 300 bytes: the two oldest", 6, 0.0, 300, [1, 2]),
    ("age and size together: the larger cut", 6, 9 * DAY, 350, [1, 2]),
    ("never what the journal still holds (4 and 5)", 4, 0.0, 1, [1, 2, 3]),
    ("everything is young and small", 6, 30 * DAY, 10_000, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "oldest", "keep_s", "max_bytes", "expected"),
    RETENTION,
    ids=[c[0] for c in RETENTION],
)
def test_retention(
    why: str, oldest: int, keep_s: float, max_bytes: int, expected: list[int]
) -> None:
    got = plan_retention(
        FILES, oldest_in_journal=oldest, now=NOW, keep_s=keep_s, max_bytes=max_bytes
    )
    assert got == expected, why


def test_retention_keeps_one_unbroken_run() -> None:
    # Segment 2 is old, but 1 is young (its mtime was touched): nothing after 1 goes.
    files = [FILES[0]._replace(mtime=NOW), *FILES[1:]]
    assert plan_retention(files, oldest_in_journal=6, now=NOW, keep_s=DAY, max_bytes=0) == []
