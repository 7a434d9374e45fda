"""Login back-off per host and per user name: tables of failures, successes and time, no I/O."""

from __future__ import annotations

import pytest

from litemirror.security.throttle import LoginThrottle, Plan

H, H2 = "10.0.0.7", "10.0.0.8"


def fail(t: LoginThrottle, attempts: list[tuple[str, str, float]]) -> list[tuple[float, float]]:
    """Record each (host, user, now) as failed; the (host, user) holds each one set."""
    out = []
    for host, user, now in attempts:
        f = t.failed(host, user, now)
        out.append((f.host_hold_s, f.user_hold_s))
    return out


@pytest.mark.parametrize(
    ("free", "base", "cap", "expected"),
    [
        (3, 0.5, 4.0, [0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]),
        (5, 0.25, 10.0, [0.0] * 4 + [0.25, 0.5, 1.0, 2.0]),
        (1, 1.0, 2.0, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
    ],
)
def test_a_host_fails_free_then_each_failure_holds_it_longer_up_to_the_cap(
    free: int, base: float, cap: float, expected: list[float]
) -> None:
    t = LoginThrottle(free=free, base_s=base, max_s=cap, user_free=100)
    # Different user names: the host's score counts them all.
    holds = fail(t, [(H, f"user{i}", 0.0) for i in range(8)])
    assert [h for h, _ in holds] == expected
    assert [u for _, u in holds] == [0.0] * 8
    last = expected[-1]  # held by the last failure
    assert t.plan(H, "anyone", 0.0).host_retry_in_s == last
    assert t.plan(H, "anyone", last - 0.25).host_retry_in_s == 0.25
    assert t.plan(H, "anyone", last).host_retry_in_s == 0.0  # the hold is over
    assert t.plan(H2, "user0", 0.0).host_retry_in_s == 0.0  # another host is not held


def test_a_user_name_is_counted_across_hosts_with_its_own_bounded_hold() -> None:
    t = LoginThrottle(free=5, user_free=4, base_s=0.5, user_max_s=2.0)
    # Eight hosts, one failure each for "root": no host is held, the name is.
    holds = fail(t, [(f"10.1.0.{i}", "root", 0.0) for i in range(8)])
    assert [h for h, _ in holds] == [0.0] * 8
    assert [u for _, u in holds] == [0.0] * 3 + [0.5, 1.0, 2.0, 2.0, 2.0]
    assert t.plan("10.1.0.0", "root", 0.5) == Plan(0.0, user_turn=True, user_wait_s=1.5)
    # However many hosts keep guessing, the name's hold stays at most 2 s...
    fail(t, [(f"10.2.0.{i}", "root", 1.0) for i in range(200)])
    assert t.plan("10.2.0.1", "root", 1.0).user_wait_s == 2.0
    # ...and a host that never failed does not take turns on the name at all.
    assert t.plan("10.9.9.9", "root", 1.0).user_turn is False
    assert t.plan("10.9.9.9", "someone-else", 1.0).user_wait_s == 0.0


@pytest.mark.parametrize(
    ("history", "host", "now", "turn"),
    [
        ([], H, 0.0, False),  # never failed: checked at once
        ([(H, "root", 0.0)], H, 1.0, True),  # failed just now
        ([(H, "root", 0.0)], H2, 1.0, False),  # another host failed
        ([(H, "root", 0.0)], H, 119.0, True),  # about one half-life: still suspect
        ([(H, "root", 0.0)], H, 121.0, False),  # forgotten enough
    ],
)
def test_only_hosts_that_failed_recently_take_turns_on_a_name(
    history: list[tuple[str, str, float]], host: str, now: float, turn: bool
) -> None:
    t = LoginThrottle(half_life_s=120.0)
    fail(t, history)
    assert t.plan(host, "root", now).user_turn is turn


def test_one_users_success_does_not_clear_another_users_failures() -> None:
    t = LoginThrottle(free=2, base_s=1.0, max_s=60.0)
    assert [h for h, _ in fail(t, [(H, "admin1", 0.0)] * 4)] == [0.0, 1.0, 2.0, 4.0]
    # The attacker logs in with its own read account from the same host.
    t.succeeded(H, "reader", 4.0)
    assert t.host_failures(H, 4.0) == pytest.approx(4.0, abs=0.1)
    assert t.failed(H, "admin1", 4.0).host_hold_s == 8.0  # the back-off goes on


def test_a_success_forgives_the_failures_it_explains() -> None:
    t = LoginThrottle(free=2, user_free=2, base_s=1.0)
    fail(t, [(H, "alice", 0.0)] * 3 + [(H, "bob", 0.0)] + [(H2, "alice", 0.0)] * 2)
    assert t.host_failures(H, 0.0) == pytest.approx(4.0)
    assert t.user_failures("alice", 0.0) == pytest.approx(5.0)
    t.succeeded(H, "alice", 0.0)  # alice typed it right at last, from H
    assert t.host_failures(H, 0.0) == pytest.approx(1.0)  # bob's failure stays
    assert t.user_failures("alice", 0.0) == pytest.approx(2.0)  # H2's guesses stay
    assert t.failed(H, "carol", 10.0).host_hold_s == 1.0  # back to two failures
    t.succeeded(H, "alice", 10.0)  # a second success changes nothing more
    assert t.host_failures(H, 10.0) == pytest.approx(2.0, abs=0.2)


@pytest.mark.parametrize(
    ("elapsed", "failures_left", "next_hold"),
    [
        (0.0, 8.0, 16.0),  # a ninth failure now: held 2^4 s
        (120.0, 4.0, 1.0),  # one half-life later: half forgotten; a fifth failure holds 1 s
        (240.0, 2.0, 0.0),
        (1200.0, 0.0, 0.0),  # forgotten entirely (the entry is dropped)
    ],
)
def test_failures_fade_with_a_half_life(
    elapsed: float, failures_left: float, next_hold: float
) -> None:
    t = LoginThrottle(free=5, base_s=1.0, max_s=60.0, half_life_s=120.0)
    fail(t, [(H, "x", 0.0)] * 8)
    assert t.host_failures(H, elapsed) == pytest.approx(failures_left, abs=0.05)
    assert t.failed(H, "x", elapsed).host_hold_s == next_hold


def test_a_guesser_who_keeps_going_stays_at_the_cap() -> None:
    t = LoginThrottle(free=5, base_s=0.25, max_s=10.0, half_life_s=120.0)
    now, hold = 0.0, 0.0
    for _ in range(200):  # each guess as soon as the host may try again
        now += t.plan(H, "root", now).host_retry_in_s
        hold = t.failed(H, "root", now).host_hold_s
    assert hold == 10.0


def test_failure_reports_when_each_back_off_starts() -> None:
    t = LoginThrottle(free=2, user_free=3)
    got = [t.failed(H, "root", 0.0) for _ in range(5)]
    assert [f.host_now_throttled for f in got] == [False, True, False, False, False]
    assert [f.user_now_throttled for f in got] == [False, False, True, False, False]
    assert [f.host_failures for f in got] == [1, 2, 3, 4, 5]


def test_memory_is_bounded() -> None:
    t = LoginThrottle(max_entries=100, free=0, user_free=0)
    for i in range(1000):
        t.failed(f"10.0.{i // 256}.{i % 256}", f"name{i}", 0.0)
    assert len(t._hosts) == len(t._users) == len(t._pairs) == 100
    assert len(t._host_holds._until) == len(t._user_holds._until) == 100
    # The newest are the ones kept.
    assert t.host_failures("10.0.3.231", 0.0) == pytest.approx(1.0)
    assert t.host_failures("10.0.0.0", 0.0) == 0.0
