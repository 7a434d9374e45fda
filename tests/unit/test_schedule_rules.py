"""Table tests of the backup schedule (pure: the clock is a parameter)."""

from __future__ import annotations

from typing import Any

import pytest

from litemirror.backup import schedule as sc
from litemirror.config import build
from litemirror.errors import ConfigError

DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", DAY),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("2s", 2.0),
        ("0.5s", 0.5),
        ("7d", 7 * DAY),
        ("1w", 7 * DAY),
        ("250ms", 0.25),
        (" 1h 5m ", 3900.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert sc.parse_duration("backup.every", text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "24", "h", "1y", "0s", "-1h", "1h-", "1.h", "abc"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match=r"backup.every: .* is not a duration"):
        sc.parse_duration("backup.every", text)


@pytest.mark.parametrize(
    ("every_s", "cron", "newest", "since", "due"),
    [
        (60.0, None, None, 1000.0, 1000.0),  # no set yet: at once
        (60.0, None, 990.0, 1000.0, 1050.0),  # one interval after the newest set
        (60.0, None, 100.0, 1000.0, 160.0),  # overdue: due in the past (taken at once)
        (None, "0 3 * * *", None, 0.0, 3 * 3600.0),  # first 03:00 UTC after since
        (None, "0 3 * * *", 3 * 3600.0 + 5, 0.0, DAY + 3 * 3600.0),  # the next day's
        (None, "*/15 * * * *", 14 * 60.0, 0.0, 15 * 60.0),
    ],
)
def test_next_due(
    every_s: float | None, cron: str | None, newest: float | None, since: float, due: float
) -> None:
    assert sc.next_due(every_s=every_s, cron=cron, newest=newest, since=since) == due


def _set(name: str, at: float, status: str = "verified") -> dict[str, Any]:
    return {"set": name, "taken_at": at, "status": status}


SETS = [
    _set("a", 10.0),
    _set("b", 20.0, "failed"),
    _set("c", 30.0),
    _set("d", 40.0, "failed"),
    _set("e", 50.0),
    {"set": "x", "status": "unreadable", "problem": "bad"},
]


@pytest.mark.parametrize(
    ("keep", "pruned"),
    [
        (0, []),  # keep all
        (1, ["a", "b", "c", "d"]),  # the newest verified only; failed outside the window
        (2, ["a", "b"]),  # d is inside the window (after c): kept as evidence
        (3, []),
        (9, []),
    ],
)
def test_to_prune(keep: int, pruned: list[str]) -> None:
    assert sc.to_prune(SETS, keep) == pruned


def test_to_prune_never_deletes_without_a_verified_set() -> None:
    assert sc.to_prune([_set("a", 1.0, "failed"), _set("b", 2.0, "failed")], 1) == []


def test_newest_and_already_taken() -> None:
    assert sc.newest_taken(SETS) == 50.0
    assert sc.newest_taken([]) is None
    assert sc.newest_verified(SETS) == SETS[4]
    assert sc.already_taken(SETS, 35.0) == SETS[3]  # the first set at or after the slot
    assert sc.already_taken(SETS, 51.0) is None


PRIMARY = {
    "member": "a",
    "replicas": [
        {"member": "b", "kind": "failover", "state": "active", "lag": {"records": 0}},
        {"member": "c", "kind": "dr", "state": "streaming", "lag": {"records": 0}},
    ],
}


@pytest.mark.parametrize(
    ("at", "primary", "taker"),
    [
        ("standby", PRIMARY, "b"),
        ("standby", {"member": "a", "replicas": []}, "a"),
        ("standby", {**PRIMARY, "replicas": PRIMARY["replicas"][1:]}, "c"),
        ("primary", PRIMARY, "a"),
        ("c", PRIMARY, "c"),
    ],
)
def test_choose_taker(at: str, primary: dict[str, Any], taker: str) -> None:
    assert sc.choose_taker(at, primary)[0] == taker


def _config(**backup: Any) -> dict[str, Any]:
    return {
        "mirror": {"name": "m"},
        "members": [
            {"name": "a", "address": "127.0.0.1:7001", "data_dir": "/tmp/a"},
            {"name": "b", "address": "127.0.0.1:7002", "data_dir": "/tmp/b"},
        ],
        "backup": backup,
    }


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        ({"every": "1h", "cron": "0 3 * * *"}, "both every"),
        ({"every": "soon"}, "backup.every: 'soon' is not a duration"),
        ({"cron": "0 25 * * *"}, "backup.cron: '0 25 \\* \\* \\*' is not a cron expression"),
        ({"cron": "0 3 * *"}, "is not a cron expression"),
        ({"every": "1h", "keep": -1}, "backup.keep: -1"),
        ({"keep": 3}, "backup.keep applies after scheduled backups"),
        ({"every": "1h", "at": "z"}, "backup.at: 'z' is neither"),
    ],
)
def test_config_refuses(backup: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(_config(**backup))


def test_config_accepts() -> None:
    c = build(_config(every="2s", keep=3, at="b"))
    assert (c.backup.every_s, c.backup.keep, c.backup.at, c.backup.scheduled) == (2.0, 3, "b", True)
    c = build(_config(cron="0 3 * * *"))
    assert (c.backup.every_s, c.backup.cron, c.backup.at) == (None, "0 3 * * *", "standby")
    assert not build(_config()).backup.scheduled
