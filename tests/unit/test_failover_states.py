"""The table from failover states to the role snapshot, one row per state."""

from __future__ import annotations

import pytest

from litemirror.failover.states import BEARING, FOLLOWING, HOLDING, Bearing, Role, State, bearing
from litemirror.server.role import Role as RoleFromServer

CASES = [
    (State.PRIMARY, Role.PRIMARY, "active", True),
    (State.PRIMARY_ALONE, Role.PRIMARY, "active (alone)", True),
    (State.IN_TROUBLE, Role.PRIMARY, "in trouble", False),
    (State.SWITCHING_OVER, Role.PRIMARY, "switching over", False),
    (State.BACKUP_ACTIVE, Role.BACKUP, None, False),
    (State.BACKUP_CATCHING_UP, Role.BACKUP, None, False),
    (State.FENCED, Role.BACKUP, "fenced", False),
    (State.TAKING_OVER, None, "taking over", False),
    (State.WAITING, Role.WAITING, "waiting", False),
    (State.ASYNC, None, None, True),
]


@pytest.mark.parametrize(("state", "role", "word", "keeps"), CASES, ids=[c[0].name for c in CASES])
def test_row(state: State, role: Role | None, word: str | None, keeps: bool) -> None:
    assert bearing(state) == Bearing(role, word, keeps)


def test_every_state_has_a_row() -> None:
    assert set(BEARING) == set(State)
    assert len(CASES) == len(State)


def test_holding_states_are_primary_and_only_they() -> None:
    assert {s for s, b in BEARING.items() if b.role is Role.PRIMARY} == HOLDING


def test_following_states_are_backup_and_never_writable() -> None:
    assert {s for s, b in BEARING.items() if b.role is Role.BACKUP} == FOLLOWING
    assert not any(BEARING[s].keeps_writes for s in FOLLOWING)


def test_only_proven_primary_states_keep_writes_among_roles_that_write() -> None:
    keep = {s for s, b in BEARING.items() if b.keeps_writes and b.role is not None}
    assert keep == {State.PRIMARY, State.PRIMARY_ALONE}


def test_server_role_is_the_same_enum() -> None:
    assert RoleFromServer is Role
    assert Role.PRIMARY == "primary"
