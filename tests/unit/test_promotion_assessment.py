"""What a forced promote says it may lose, one case per row (no I/O)."""

from __future__ import annotations

import pytest

from litemirror.server.ha.promotion import Holding, assessment


@pytest.mark.parametrize(
    ("holding", "behind", "says"),
    [
        (Holding("b", 90, "a", 100, 2.0, True), 10, "nothing acknowledged is lost"),
        (Holding("b", 100, "a", 100, 2.5, False), 0, "(LSN 100, 2.5 s ago)"),
        (Holding("b", 90, "a", 100, 2.0, False), 10, "b is 10 record(s) behind a"),
        (Holding("b", 90, None, None, None, False), None, "behind the last primary is unknown"),
    ],
)
def test_assessment(holding: Holding, behind: int | None, says: str) -> None:
    out = assessment(holding)
    assert out["records_behind"] == behind
    assert says in out["loss"]
    assert out["lsn"] == holding.lsn and out["member"] == "b"
