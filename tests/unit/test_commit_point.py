"""The commit point's rules: a table of primary and follower cases (pure)."""

from __future__ import annotations

import pytest

from litemirror.replication.commit import (
    CommitMode,
    advance,
    follower_confirmed,
    may_answer,
    startup_limit,
)

HELD, WITH, ALONE = CommitMode.HELD, CommitMode.WITH_BACKUP, CommitMode.ALONE

ADVANCE = [
    # (why, committed, mode, backup acked, local durable, expected)
    ("backup ack commits while commits wait for it", 5, WITH, 8, 10, 8),
    ("local durability alone commits nothing while waiting for the backup", 5, WITH, 0, 10, 5),
    ("proof to go alone: local durability commits", 5, ALONE, 0, 10, 10),
    ("alone, a backup ack ahead of local is impossible but harmless", 5, ALONE, 12, 10, 12),
    ("held (demoted): local durability commits nothing", 5, HELD, 0, 10, 5),
    ("held: a backup ack on the wire still commits what the backup holds", 5, HELD, 7, 10, 7),
    ("never moves back", 9, WITH, 3, 4, 9),
]  # fmt: skip


@pytest.mark.parametrize(("why", "committed", "mode", "acked", "durable", "want"), ADVANCE)
def test_advance(
    why: str, committed: int, mode: CommitMode, acked: int, durable: int, want: int
) -> None:
    assert advance(committed, mode, backup_acked=acked, local_durable=durable) == want, why


ANSWER = [
    # (why, lsn, committed, mode, backup acked at the client's level, may answer)
    ("committed and acked at the level", 7, 8, WITH, 8, True),
    ("not committed yet", 9, 8, WITH, 9, False),
    ("client asked 'applied': committed but not applied on the backup yet", 8, 8, WITH, 7, False),
    ("alone: committed is enough", 8, 8, ALONE, 0, True),
    ("held: a record committed before the demotion may still answer", 8, 8, HELD, 0, True),
    ("held: an uncommitted record never answers", 9, 8, HELD, 0, False),
]  # fmt: skip


@pytest.mark.parametrize(("why", "lsn", "committed", "mode", "acked", "want"), ANSWER)
def test_may_answer(
    why: str, lsn: int, committed: int, mode: CommitMode, acked: int, want: bool
) -> None:
    got = may_answer(lsn, committed=committed, mode=mode, backup_acked_at_level=acked)
    assert got is want, why


FOLLOWER = [
    # (why, confirmed, failover kind, received, primary committed, expected)
    ("the backup applies what it receives", 3, True, 10, 0, 10),
    ("a reporting member waits for the primary's commit point", 3, False, 10, 6, 6),
    ("the commit point may run ahead of what arrived", 3, False, 4, 9, 4),
    ("a new session's primary has said nothing yet", 5, False, 10, 0, 5),
    ("never moves back", 8, True, 6, 0, 8),
]  # fmt: skip


@pytest.mark.parametrize(("why", "confirmed", "failover", "received", "primary", "want"), FOLLOWER)
def test_follower_confirmed(
    why: str, confirmed: int, failover: bool, received: int, primary: int, want: int
) -> None:
    got = follower_confirmed(
        confirmed, failover_kind=failover, received=received, primary_committed=primary
    )
    assert got == want, why


@pytest.mark.parametrize(
    ("last", "recorded", "want"),
    [(10, None, 10), (10, 7, 7), (10, 12, 10), (0, 0, 0)],
)
def test_startup_limit(last: int, recorded: int | None, want: int) -> None:
    assert startup_limit(last, recorded) == want
