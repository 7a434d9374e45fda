"""Checkers on hand-made histories: each property caught, and a clean history passes."""

from __future__ import annotations

import random
from typing import Any

from litemirror.testing.trials import checks
from litemirror.testing.trials.faults import make_schedule


def _op(t: float, typ: str, value: Any, member: str = "a", f: str = "append") -> dict[str, Any]:
    return {"t": t, "type": typ, "f": f, "proc": 1, "value": value, "member": member}


def test_append_finds_lost_phantom_and_failed_but_present() -> None:
    h = [
        _op(0, "invoke", 1),
        _op(1, "ok", 1),
        _op(2, "invoke", 2),
        _op(3, "fail", 2),
        _op(4, "invoke", 3),
        _op(5, "info", 3),
    ]
    assert checks.check_append(h, {"a": {1, 3}, "b": {1}}) == []
    found = " | ".join(checks.check_append(h, {"a": {2, 9}}))
    assert "1 acknowledged write(s) missing on a" in found
    assert "never attempted" in found and "[9]" in found
    assert "reported failed are present on a" in found and "[2]" in found


def test_bank_flags_a_wrong_total_or_negative_balance() -> None:
    good = {"type": "read", "f": "bank-read", "member": "r", "n": 8, "total": 800, "min": 3, "t": 1}
    assert checks.check_bank([good], 8, 800) == []
    assert checks.check_bank([{**good, "total": 799}], 8, 800)
    assert checks.check_bank([{**good, "min": -1}], 8, 800)


def test_split_brain_two_members_acknowledge_in_one_epoch() -> None:
    obs = {
        "a": [(0.0, 0.1, "primary", 1, 0), (2.0, 2.1, "primary", 1, 0)],
        "b": [(0.0, 0.1, "backup", 1, 0), (2.0, 2.1, "primary", 1, 0)],
    }
    h = [
        _op(0.5, "invoke", 1),
        _op(0.6, "ok", 1, "a"),
        {**_op(0.7, "invoke", 2), "proc": 2},
        {**_op(0.8, "ok", 2, "b"), "proc": 2},
    ]
    found = checks.check_split_brain(h, obs)
    assert any("epoch 1 by a, b" in p for p in found)
    assert any("both primary in epoch 1" in p for p in found)


def test_epochs_that_change_around_an_ack_are_not_guessed() -> None:
    obs = {
        "a": [(0.0, 0.1, "primary", 1, 0), (2.0, 2.1, "primary", 2, 0)],
        "b": [(0.0, 0.1, "primary", 2, 0), (2.0, 2.1, "primary", 2, 0)],
    }
    h = [
        _op(0.5, "invoke", 1),
        _op(0.6, "ok", 1, "a"),
        {**_op(0.7, "invoke", 2), "proc": 2},
        {**_op(0.8, "ok", 2, "b"), "proc": 2},
    ]
    assert checks.label_epochs(h, obs) == [(2, "b", 0.8)]


def test_a_seed_gives_the_same_schedule() -> None:
    def sched(seed: int) -> list[str]:
        steps = make_schedule(
            random.Random(seed), ["a", "b", "r"], duration_s=30, tmpfs_member="b", arbiter=True
        )
        return [s.describe() + f"@{s.start_s}" for s in steps]

    assert sched(7) == sched(7)
    assert sched(7) != sched(8)
    assert all(
        s.split()[0] in ("kill", "pause", "partition", "cut", "slow", "bandwidth", "disk", "torn")
        for s in sched(7)
    )


def test_seen_flags_a_row_a_reader_saw_that_is_gone_at_the_end() -> None:
    def read(t: float, member: str, appends: list[int], transfers: list[int]) -> dict[str, Any]:
        return {
            "type": "read",
            "f": "bank-read",
            "member": member,
            "t": t,
            "seen": {"appends": appends, "transfers": transfers},
        }

    history = [
        read(1.0, "a", [1000001], [2000003]),
        read(1.5, "b", [1000002], [2000004]),  # b showed transfer 2000004, later rolled back
        {"type": "read-fail", "f": "bank-read", "member": "r", "t": 2.0},
    ]
    end = {"appends": {1000001, 1000002}, "transfers": {2000003}}
    problems = checks.check_seen(history, end)
    assert len(problems) == 1
    assert "reader on b saw transfers row 2000004 at t=1.5s" in problems[0]
    assert checks.check_seen(history, {**end, "transfers": {2000003, 2000004}}) == []
