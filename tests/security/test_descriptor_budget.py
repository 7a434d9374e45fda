"""The descriptor budget (pure): the soft limit asked for, and caps lowered to fit a small one."""

from __future__ import annotations

import pytest

from litemirror.security.admission import Caps
from litemirror.security.descriptors import (
    ARBITER_BACKLOG,
    FILES,
    FLOOR,
    HTTP_BACKLOG,
    LISTEN_BACKLOG,
    database_descriptors,
    member_descriptors,
    plan,
)

DEFAULT = Caps()
DB = database_descriptors(256, 2)  # the defaults: 256 databases, 2 readers each
MEMBERS = member_descriptors(4)
#: A member's files and what its two listening sockets may accept at once.
FIXED = FILES + LISTEN_BACKLOG + HTTP_BACKLOG


def descriptors(caps: Caps, databases: int) -> int:
    """What a process with these caps may hold at most (handshakes hold two while peeked)."""
    t = caps.totals()
    return databases + FIXED + MEMBERS + sum(t.values()) + t["max_handshakes"]


@pytest.mark.parametrize(
    ("soft", "hard", "raised_to", "lowered"),
    [
        (1024, 1_048_576, "wanted", False),  # systemd's usual hard limit: raised, caps kept
        (1024, None, "wanted", False),  # unlimited
        (100_000, 100_000, 100_000, False),  # already enough: never lowered
        (1024, 4096, "wanted", False),  # the old default hard limit is enough for the defaults
        (1024, 2048, 2048, True),  # below: the caps shrink to fit
        (1024, 1024, 1024, True),
        (256, 256, 256, True),
    ],
)
def test_plan(soft: int, hard: int | None, raised_to: object, lowered: bool) -> None:
    b = plan(
        soft, hard, DEFAULT, databases=DB, members=MEMBERS, backlog=LISTEN_BACKLOG + HTTP_BACKLOG
    )
    assert b.soft_limit == (b.wanted if raised_to == "wanted" else raised_to)
    assert b.wanted == descriptors(DEFAULT, DB)
    assert (b.caps != DEFAULT) is lowered
    assert (b.shortfall is not None) is lowered
    if lowered:
        assert b.shortfall is not None
        # Says the numbers, which caps changed, and what to do.
        assert f"RLIMIT_NOFILE {b.soft_limit}" in b.shortfall
        assert "limits.max_connections 1024 ->" in b.shortfall
        assert "ulimit -n" in b.shortfall and "server.max_open_databases" in b.shortfall
        for total in b.caps.totals().values():
            assert total >= FLOOR
        # Per-host caps never above their overall cap.
        assert b.caps.max_anonymous_per_host <= b.caps.max_anonymous
        assert b.caps.http_max_connections_per_host <= b.caps.http_max_connections
        assert b.caps.max_connections_per_user <= b.caps.max_connections
        # Unless the floor is hit, connections then fit beside what databases keep.
        kept = FIXED + MEMBERS + min(DB, b.soft_limit // 2)
        t = b.caps.totals()
        if min(t.values()) > FLOOR:
            assert kept + sum(t.values()) + t["max_handshakes"] <= b.soft_limit


def test_timeouts_are_never_changed() -> None:
    b = plan(256, 256, DEFAULT, databases=DB, members=MEMBERS)
    assert b.caps.handshake_timeout == DEFAULT.handshake_timeout
    assert b.caps.anonymous_timeout == DEFAULT.anonymous_timeout


def test_the_arbiter_counts_only_what_it_serves() -> None:
    member = plan(
        512, 512, DEFAULT, databases=DB, members=MEMBERS, backlog=LISTEN_BACKLOG + HTTP_BACKLOG
    )
    served = ("max_handshakes", "max_anonymous")
    arbiter = plan(
        512, 512, DEFAULT, databases=0, members=MEMBERS, backlog=ARBITER_BACKLOG, classes=served
    )
    assert arbiter.caps.max_anonymous > member.caps.max_anonymous
    assert arbiter.caps.max_connections == DEFAULT.max_connections  # not served: untouched
    assert arbiter.wanted == (
        FILES + ARBITER_BACKLOG + MEMBERS + 2 * DEFAULT.max_handshakes + DEFAULT.max_anonymous
    )
