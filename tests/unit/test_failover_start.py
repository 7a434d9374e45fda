"""The start decision without an arbiter: a table of every case (pure)."""

from __future__ import annotations

import pytest

from litemirror.failover.start import PeerStatus, StartFacts, StartRole, decide_start

P, B, W, ARB = StartRole.PRIMARY, StartRole.BACKUP, StartRole.WAITING, StartRole.BY_ARBITER


def facts(
    me: str = "a",
    *,
    kind: str = "failover",
    peer: str | None = "b",
    arbiter: bool = False,
    last_role: str | None = None,
    epoch: int = 1,
    peer_status: tuple[str, int] | None = None,
    leader: tuple[str, int, str] | None = None,
) -> StartFacts:
    return StartFacts(
        me=me,
        kind=kind,
        first_failover="a",
        peer=peer,
        arbiter=arbiter,
        last_role=last_role,
        epoch=epoch,
        peer_status=PeerStatus(*peer_status) if peer_status else None,
        leader=PeerStatus(*leader) if leader else None,
    )


CASES = [
    # (why, facts, expected role, words in the reason)
    ("reporting follows", facts("r", kind="reporting", peer=None), StartRole.REPORTING, "follows"),
    ("dr follows", facts("d", kind="dr", peer=None), StartRole.DR, "follows"),
    ("with an arbiter the failover table decides", facts(arbiter=True, last_role="primary"),
     ARB, "arbiter"),
    ("with an arbiter, a dr member still just follows", facts("d", kind="dr", arbiter=True),
     StartRole.DR, "follows"),
    ("only failover member", facts(peer=None, last_role="backup"), P, "only failover member"),
    # new mirror
    ("new mirror, first member, peer unreachable", facts(), P, "new mirror"),
    ("new mirror, second member", facts("b", peer="a"), B, "joins as backup"),
    ("new member, peer already primary", facts(peer_status=("primary", 3)), B, "epoch 3"),
    ("new member, peer knows a newer epoch", facts(epoch=0, peer_status=("backup", 2)), B,
     "newer"),
    ("new mirror, peer new too", facts(peer_status=("waiting", 1)), P, "new mirror"),
    # was backup
    ("was backup, peer unreachable", facts("b", peer="a", last_role="backup"), B, "rejoins"),
    ("was backup, peer primary", facts("b", peer="a", last_role="backup",
                                       peer_status=("primary", 1)), B, "joins it as backup"),
    # was primary
    ("was primary, peer unreachable: wait, say what to run",
     facts(last_role="primary", epoch=2), W, "promote --member a --force"),
    ("was primary, peer backup at my epoch: confirmed",
     facts(last_role="primary", epoch=2, peer_status=("backup", 2)), P, "confirms"),
    ("was primary, peer waiting at an older epoch: confirmed",
     facts(last_role="primary", epoch=2, peer_status=("waiting", 1)), P, "confirms"),
    ("was primary, peer primary at a newer epoch (forced promote): backup",
     facts(last_role="primary", epoch=1, peer_status=("primary", 2)), B, "epoch 2"),
    ("was primary, peer primary at the same epoch: follow it",
     facts(last_role="primary", epoch=2, peer_status=("primary", 2)), B, "joins it"),
    ("was primary, peer backup but saw a newer epoch: backup",
     facts(last_role="primary", epoch=1, peer_status=("backup", 3)), B, "newer"),
    ("peer primary at an older epoch: never follow it",
     facts(last_role="primary", epoch=3, peer_status=("primary", 2)), W, "older"),
    ("was backup, peer primary at an older epoch: never follow it",
     facts(last_role="backup", epoch=3, peer_status=("primary", 2)), W, "older"),
    ("a dr member promoted by force leads at a newer epoch: follow it",
     facts(last_role="primary", epoch=1, peer_status=("backup", 1), leader=("primary", 2, "d")),
     B, "d is primary at epoch 2"),
    ("a dr member primary at an older epoch: wait",
     facts(last_role="primary", epoch=3, leader=("primary", 2, "d")), W, "older"),
    ("only failover member, a promoted dr leads: follow it",
     facts(peer=None, last_role="primary", leader=("primary", 2, "d")), B, "joins it"),
    ("was primary, peer in another state: wait",
     facts(last_role="primary", epoch=2, peer_status=("starting", 2)), W, "starting"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "f", "role", "words"), CASES)
def test_decide_start(why: str, f: StartFacts, role: StartRole, words: str) -> None:
    d = decide_start(f)
    assert d.role is role, f"{why}: {d.reason}"
    assert words in d.reason, f"{why}: {d.reason}"
