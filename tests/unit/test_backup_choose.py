"""Which member takes a backup: a table of primary statuses (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from litemirror.backup.choose import choose_member


def replica(name: str, kind: str, state: str = "streaming", lag: int | None = 0) -> dict[str, Any]:
    return {"member": name, "kind": kind, "state": state, "lag": {"records": lag}}


@pytest.mark.parametrize(
    ("replicas", "chosen", "reason"),
    [
        ([], "a", "the primary a takes it: no failover or dr member is caught up"),
        ([replica("b", "failover")], "b", "failover member b takes it (0 record(s) behind"),
        ([replica("b", "failover", "active", 3)], "b", "(3 record(s) behind"),
        ([replica("r", "reporting")], "a", "no failover or dr member"),
        ([replica("b", "failover", "connecting")], "a", "no failover or dr member"),
        ([replica("b", "failover", lag=101)], "a", "no failover or dr member"),
        ([replica("b", "failover", lag=None)], "a", "no failover or dr member"),
        ([replica("d", "dr"), replica("b", "failover", lag=50)], "b", "failover member b"),
        ([replica("d", "dr", lag=5), replica("b", "failover", lag=500)], "d", "dr member d"),
        ([replica("d2", "dr", lag=5), replica("d1", "dr", lag=9)], "d2", "dr member d2"),
        ([replica("d2", "dr"), replica("d1", "dr")], "d1", "dr member d1"),
    ],
)
def test_choose_member(replicas: list[dict[str, Any]], chosen: str, reason: str) -> None:
    name, why = choose_member({"member": "a", "role": "primary", "replicas": replicas})
    assert name == chosen
    assert reason in why


def test_the_lag_bound_is_a_parameter() -> None:
    primary = {"member": "a", "replicas": [replica("b", "failover", lag=10)]}
    assert choose_member(primary, max_lag_records=9)[0] == "a"
    assert choose_member(primary, max_lag_records=10)[0] == "b"
