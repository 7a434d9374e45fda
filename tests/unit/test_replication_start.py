"""Where a joining member's stream starts: a table of journals and members."""

from __future__ import annotations

import pytest

from litemirror.replication import StartPlan, plan_start


def journal(epochs: dict[int, int]) -> tuple[int | None, int, object]:
    """(first, last, epoch_at) for a journal holding ``{lsn: epoch}``."""
    if not epochs:
        return None, 0, lambda lsn: pytest.fail(f"asked for LSN {lsn} of an empty journal")

    def epoch_at(lsn: int) -> int:
        assert lsn in epochs, f"asked for LSN {lsn} outside {min(epochs)}..{max(epochs)}"
        return epochs[lsn]

    return min(epochs), max(epochs), epoch_at


def run(ours: dict[int, int], last: int, epoch: int, reseed: bool = False) -> StartPlan:
    first, last_lsn, epoch_at = journal(ours)
    return plan_start(
        last, epoch, reseed=reseed, first_lsn=first, last_lsn=last_lsn, epoch_at=epoch_at
    )  # type: ignore[arg-type]


E1 = {lsn: 1 for lsn in range(1, 11)}  # LSN 1..10 at epoch 1
# The backup took over at LSN 8: 1..7 at epoch 1, 8..12 at epoch 2.
E2 = {**{lsn: 1 for lsn in range(1, 8)}, **{lsn: 2 for lsn in range(8, 13)}}

CASES = [
    # (our journal, member's last LSN, member's last epoch, expected)
    ("member at our end streams nothing yet", E1, 10, 1, StartPlan("stream", 11)),
    ("member behind streams from its end", E1, 4, 1, StartPlan("stream", 5)),
    ("new member streams from 1", E1, 0, 0, StartPlan("stream", 1)),
    ("member ahead of us (our last records were lost) rewinds", E1, 12, 1, StartPlan("rewind", 11)),
    ("deposed primary with extra epoch-1 records rewinds to the fork",
     E2, 9, 1, StartPlan("rewind", 8)),
    ("deposed primary at exactly the fork streams the new epoch", E2, 7, 1, StartPlan("stream", 8)),
    ("member of the new epoch streams", E2, 10, 2, StartPlan("stream", 11)),
    # The case the write fence is for: had the deposed primary stamped its extra
    # record 8 with epoch 2, it would say (8, 2) and be taken as a prefix.
    ("a record mis-stamped with the new epoch is not detected (why the fence exists)",
     E2, 8, 2, StartPlan("stream", 9)),
    ("records purged below the member's end: seed",
     {lsn: 1 for lsn in range(6, 11)}, 3, 1, StartPlan("seed", 0)),
    ("member exactly at the purge point streams", {lsn: 1 for lsn in range(6, 11)}, 5, 1,
     StartPlan("stream", 6)),
    ("records before the fork purged: rewind to the fork, which we hold",
     {lsn: 2 for lsn in range(8, 13)}, 9, 1, StartPlan("rewind", 8)),
    ("member behind the purged fork: seed", {lsn: 2 for lsn in range(8, 13)}, 5, 1,
     StartPlan("seed", 0)),
    ("empty journal, member at 0 streams", {}, 0, 0, StartPlan("stream", 1)),
    ("empty journal, member with records: seed", {}, 4, 1, StartPlan("seed", 0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "ours", "last", "epoch", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan(why: str, ours: dict[int, int], last: int, epoch: int, expected: StartPlan) -> None:
    assert run(ours, last, epoch) == expected, why


def test_reseed_asked_for_is_a_seed() -> None:
    assert run(E1, 10, 1, reseed=True) == StartPlan("seed", 0)


def test_binary_search_asks_few_epochs() -> None:
    epochs = {lsn: (1 if lsn < 600_000 else 2) for lsn in range(1, 1_000_001)}
    asked: list[int] = []

    def epoch_at(lsn: int) -> int:
        asked.append(lsn)
        return epochs[lsn]

    plan = plan_start(700_000, 1, reseed=False, first_lsn=1, last_lsn=1_000_000, epoch_at=epoch_at)
    assert plan == StartPlan("rewind", 600_000)
    assert len(asked) <= 25
