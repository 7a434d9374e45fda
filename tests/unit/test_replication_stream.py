"""The pure frame check: what a member appends, and what it refuses (and why)."""

from __future__ import annotations

import pytest

from litemirror.journal.record import Record, RecordKind, encode_record
from litemirror.replication import check_frame


def _data(*records: tuple[int, int]) -> bytes:
    return b"".join(
        encode_record(Record(lsn, epoch, RecordKind.MARKER, "db", 0, b"x"))
        for lsn, epoch in records
    )


GOOD = {
    "seq": 3,
    "expected_seq": 3,
    "first_lsn": 11,
    "last_lsn": 12,
    "journal_last_lsn": 10,
    "journal_last_epoch": 2,
}


def test_the_next_records_are_accepted() -> None:
    v = check_frame(data=_data((11, 2), (12, 3)), **GOOD)
    assert v.refused is None and [r.lsn for r in v.records] == [11, 12]


@pytest.mark.parametrize(
    ("changes", "data", "needle"),
    [
        ({"seq": 4}, _data((11, 2), (12, 2)), "frame 4 arrived where 3 was expected"),
        ({}, _data((11, 2), (12, 2))[:-3], "damaged record"),
        ({}, _data((11, 2), (12, 2)) + b"junk", "damaged record"),
        ({}, b"", "damaged record"),
        ({"last_lsn": 13}, _data((11, 2), (12, 2)), "says LSN 11..13 but holds 11..12"),
        (
            {"first_lsn": 12, "last_lsn": 13},
            _data((12, 2), (13, 2)),
            "record 12 arrived where 11 was expected",
        ),
        ({}, _data((11, 1), (12, 2)), "record 11 is from epoch 1, older than epoch 2"),
        ({}, _data((11, 3), (12, 2)), "record 12 is from epoch 2"),
    ],
)
def test_refusals_say_why(changes: dict[str, int], data: bytes, needle: str) -> None:
    v = check_frame(data=data, **{**GOOD, **changes})
    assert v.records == () and v.refused is not None and needle in v.refused
