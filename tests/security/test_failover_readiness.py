"""``litemirror status``: "automatic failover ready" only when the backup could really take over."""

from __future__ import annotations

from typing import Any

import pytest

from litemirror.failover.readiness import failover_readiness


def member(name: str, role: str, arbiter_up: bool = True, **fo: Any) -> dict[str, Any]:
    return {
        "member": name,
        "kind": "failover",
        "role": role,
        "failover": {
            "state": "primary" if role == "primary" else "backup_active",
            "backup_active": True,
            "arbiter_up": arbiter_up,
            "arbiter_sees": ["a", "b"],
            "arbiter_session": None
            if arbiter_up
            else {"connected": False, "error": "the arbiter refused b: full"},
            **fo,
        },
    }


def mirror(a: dict[str, Any], b: dict[str, Any], arbiter: dict[str, Any]) -> dict[str, Any]:
    return {"mirror": "m", "members": [a, b], "arbiter": arbiter}


ARBITER_SEES_BOTH = {"state": "epoch 2 held by a", "in_contact": ["a", "b"]}

CASES: list[tuple[str, dict[str, Any], bool, list[str]]] = [
    (
        "all in place",
        mirror(member("a", "primary"), member("b", "backup"), ARBITER_SEES_BOTH),
        True,
        ["ready", "backup b active"],
    ),
    (
        "the backup has no session with the arbiter (the flood case)",
        mirror(member("a", "primary"), member("b", "backup", arbiter_up=False), ARBITER_SEES_BOTH),
        False,
        ["NOT possible", "b has no session with the arbiter", "refused b: full"],
    ),
    (
        "the primary asked the arbiter to record the backup active; not recorded yet",
        mirror(
            member(
                "a", "primary", arbiter_record={"epoch": 2, "holder": "a", "backup_active": False}
            ),
            member("b", "backup"),
            ARBITER_SEES_BOTH,
        ),
        False,
        ["the arbiter has not recorded b as active yet"],
    ),
    (
        "recorded, but the backup has not heard it: it would not claim",
        mirror(
            member(
                "a", "primary", arbiter_record={"epoch": 2, "holder": "a", "backup_active": True}
            ),
            member(
                "b", "backup", arbiter_record={"epoch": 2, "holder": "a", "backup_active": False}
            ),
            ARBITER_SEES_BOTH,
        ),
        False,
        ["b has not yet heard from the arbiter that it is active"],
    ),
    (
        "recorded and heard by both",
        mirror(
            member(
                "a", "primary", arbiter_record={"epoch": 2, "holder": "a", "backup_active": True}
            ),
            member(
                "b", "backup", arbiter_record={"epoch": 2, "holder": "a", "backup_active": True}
            ),
            ARBITER_SEES_BOTH,
        ),
        True,
        ["ready"],
    ),
    (
        "the arbiter says it does not see the backup",
        mirror(
            member("a", "primary"),
            member("b", "backup"),
            {"state": "epoch 2 held by a", "in_contact": ["a"]},
        ),
        False,
        ["the arbiter is not in contact with b"],
    ),
    (
        "the primary lost the arbiter",
        mirror(member("a", "primary", arbiter_up=False), member("b", "backup"), ARBITER_SEES_BOTH),
        False,
        ["a has no session with the arbiter"],
    ),
    (
        "no active backup",
        mirror(
            member("a", "primary", backup_active=False, state="primary_alone"),
            member("b", "backup"),
            ARBITER_SEES_BOTH,
        ),
        False,
        ["no active backup (primary_alone)"],
    ),
    (
        "the backup does not answer",
        mirror(
            member("a", "primary"),
            {"member": "b", "kind": "failover", "role": "down", "error": "refused"},
            ARBITER_SEES_BOTH,
        ),
        False,
        ["b does not answer (refused)"],
    ),
    (
        "the arbiter does not answer: what it last told the primary counts",
        mirror(
            member("a", "primary", arbiter_sees=["a"]),
            member("b", "backup"),
            {"state": "down", "error": "timed out"},
        ),
        False,
        ["the arbiter does not answer (timed out)", "not in contact with b"],
    ),
]


@pytest.mark.parametrize(("name", "status", "ready", "says"), CASES, ids=[c[0] for c in CASES])
def test_readiness(name: str, status: dict[str, Any], ready: bool, says: list[str]) -> None:
    got, sentence = failover_readiness(status)
    assert got is ready, sentence
    for words in says:
        assert words in sentence, sentence


def test_one_problem_per_member() -> None:
    """A backup without a session is not also reported as "not in contact"."""
    status = mirror(
        member("a", "primary"),
        member("b", "backup", arbiter_up=False),
        {"state": "epoch 2 held by a", "in_contact": ["a"]},
    )
    _, sentence = failover_readiness(status)
    assert "b has no session" in sentence and "not in contact" not in sentence
