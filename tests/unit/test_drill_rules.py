"""The pure side of restore drills: comparisons and the outcome's words."""

from __future__ import annotations

import pytest

from litemirror.backup.drill import replay_skip_reason, sentence, table_differences


@pytest.mark.parametrize(
    ("expected", "actual", "found"),
    [
        ({"t": "1", "(schema)": "s"}, {"t": "1", "(schema)": "s"}, []),
        ({"t": "1"}, {"t": "2"}, ["t differs"]),
        ({"t": "1", "u": "2"}, {"t": "1"}, ["u missing"]),
        ({"t": "1"}, {"t": "1", "v": "3"}, ["v not expected"]),
        ({}, {}, []),
    ],
)
def test_table_differences(
    expected: dict[str, str], actual: dict[str, str], found: list[str]
) -> None:
    assert table_differences(expected, actual) == found


@pytest.mark.parametrize(
    ("restored", "member", "says"),
    [
        (10, 10, None),
        (10, 12, "later commits are not archived yet"),
        (10, 8, "behind the archive's LSN 10"),
        (10, None, "no longer holds database app"),
    ],
)
def test_replay_is_compared_only_at_the_same_lsn(
    restored: int, member: int | None, says: str | None
) -> None:
    reason = replay_skip_reason("app", restored, member)
    assert (reason is None) == (says is None)
    assert says is None or (reason is not None and says in reason)


def test_sentence() -> None:
    assert sentence("S", ["app: damaged"], [], 2) == (
        "restore drill of backup S FAILED: app: damaged"
    )
    ok = sentence("S", [], ["why"], 2, 1)
    assert ok.startswith("restore drill of backup S ok: 2 database(s) restored and checked, 1 ")
    assert ok.endswith("not compared after archive replay: why")
