"""Login back-off per host and per user name: tables of failures, successes and time, no I/O."""

from __future__ import annotations

import pytest

from litemirror.security.throttle import LoginThrottle, Plan

H, H2, H3 = "10.0.0.7", "10.0.0.8", "10.0.0.9"


def waits(t: LoginThrottle, attempts: list[tuple[str, str, float]]) -> list[Plan]:
    """Plan each (host, user, now) attempt, then record it as failed."""
    out = []
    for host, user, now in attempts:
        out.append(t.plan(host, user, now))
        t.failed(host, user, now)
    return out


@pytest.mark.parametrize(
    ("free", "base", "cap", "expected"),
    [
        (3, 0.5, 4.0, [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 4.0]),
        (5, 0.25, 10.0, [0.0] * 5 + [0.25, 0.5, 1.0]),
        (0, 1.0, 2.0, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
    ],
)
def test_a_host_pays_nothing_for_free_failures_then_doubling_waits_up_to_the_cap(
    free: int, base: float, cap: float, expected: list[float]
) -> None:
    t = LoginThrottle(free=free, base_s=base, max_s=cap, user_free=100)
    # Different user names: the host's score counts them all.
    plans = waits(t, [(H, f"user{i}", float(i) / 100) for i in range(8)])
    assert [p.host_wait_s for p in plans] == expected
    assert [p.user_wait_s for p in plans] == [0.0] * 8
    # Another host is not affected: it waits what a fresh host waits.
    assert t.plan(H2, "user0", 1.0).host_wait_s == expected[0]


def test_a_user_name_is_counted_across_hosts_with_its_own_bounded_wait() -> None:
    t = LoginThrottle(free=5, user_free=4, base_s=0.5, user_max_s=2.0)
    # Six hosts, one failure each for "root": no host pays, the name does.
    plans = waits(t, [(f"10.1.0.{i}", "root", float(i)) for i in range(8)])
    assert [p.host_wait_s for p in plans] == [0.0] * 8
    assert [p.user_wait_s for p in plans] == [0.0] * 4 + [0.5, 1.0, 2.0, 2.0]
    # The cap holds however many hosts keep guessing: the real user waits at most 2 s.
    waits(t, [(f"10.2.0.{i}", "root", 9.0) for i in range(200)])
    assert t.plan("10.9.9.9", "root", 9.0).user_wait_s == 2.0
    assert t.plan("10.9.9.9", "someone-else", 9.0).user_wait_s == 0.0


@pytest.mark.parametrize(
    ("history", "host", "turn"),
    [
        ([], H, False),  # never failed: skips the user queue
        ([(H, "root", 0.0)], H, True),  # failed just now
        ([(H, "root", 0.0)], H2, False),  # another host failed
        ([(H, "root", 0.0)] * 3, H, True),
    ],
)
def test_only_hosts_that_failed_recently_queue_per_user_name(
    history: list[tuple[str, str, float]], host: str, turn: bool
) -> None:
    t = LoginThrottle()
    waits(t, history)
    assert t.plan(host, "root", 1.0).user_turn is turn


def test_one_users_success_does_not_clear_another_users_failures() -> None:
    t = LoginThrottle(free=2, base_s=1.0)
    waits(t, [(H, "admin1", 0.0)] * 4)
    assert t.plan(H, "admin1", 0.0).host_wait_s == 4.0
    # The attacker logs in with its own read account from the same host.
    t.succeeded(H, "reader", 0.0)
    assert t.plan(H, "admin1", 0.0).host_wait_s == 4.0
    assert t.plan(H, "reader", 0.0).host_wait_s == 4.0  # the host stays slowed for every name
    assert t.host_failures(H, 0.0) == pytest.approx(4.0)


def test_a_success_forgives_the_failures_it_explains() -> None:
    t = LoginThrottle(free=2, user_free=2, base_s=1.0)
    waits(t, [(H, "alice", 0.0)] * 3 + [(H, "bob", 0.0)] + [(H2, "alice", 0.0)] * 2)
    assert t.host_failures(H, 0.0) == pytest.approx(4.0)
    assert t.user_failures("alice", 0.0) == pytest.approx(5.0)
    t.succeeded(H, "alice", 0.0)  # alice typed it right at last, from H
    assert t.host_failures(H, 0.0) == pytest.approx(1.0)  # bob's failure stays
    assert t.user_failures("alice", 0.0) == pytest.approx(2.0)  # H2's guesses stay
    assert t.plan(H, "alice", 0.0) == Plan(host_wait_s=0.0, user_wait_s=1.0, user_turn=True)
    t.succeeded(H, "alice", 0.0)  # a second success changes nothing more
    assert t.host_failures(H, 0.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("elapsed", "failures_left", "host_wait"),
    [
        (0.0, 8.0, 8.0),
        (120.0, 4.0, 0.0),  # one half-life: half forgotten, under the free allowance again
        (240.0, 2.0, 0.0),
        (1200.0, 0.0, 0.0),  # forgotten entirely (the entry is dropped)
    ],
)
def test_failures_fade_with_a_half_life(
    elapsed: float, failures_left: float, host_wait: float
) -> None:
    t = LoginThrottle(free=5, base_s=1.0, max_s=60.0, half_life_s=120.0)
    waits(t, [(H, "x", 0.0)] * 8)
    assert t.host_failures(H, elapsed) == pytest.approx(failures_left, abs=0.05)
    assert t.plan(H, "x", elapsed).host_wait_s == host_wait


def test_a_guesser_who_keeps_going_stays_at_the_cap() -> None:
    t = LoginThrottle(free=5, base_s=0.25, max_s=10.0, half_life_s=120.0)
    now = 0.0
    for _ in range(200):  # every attempt waits what it is told, then fails
        now += t.plan(H, "root", now).host_wait_s
        t.failed(H, "root", now)
    assert t.plan(H, "root", now).host_wait_s == 10.0


def test_failure_reports_when_each_back_off_starts() -> None:
    t = LoginThrottle(free=2, user_free=3)
    got = [t.failed(H, "root", 0.0) for _ in range(5)]
    assert [f.host_now_throttled for f in got] == [False, True, False, False, False]
    assert [f.user_now_throttled for f in got] == [False, False, True, False, False]
    assert [f.host_failures for f in got] == [1, 2, 3, 4, 5]


def test_memory_is_bounded() -> None:
    t = LoginThrottle(max_entries=100)
    for i in range(1000):
        t.failed(f"10.0.{i // 256}.{i % 256}", f"name{i}", 0.0)
    assert len(t._hosts) == len(t._users) == len(t._pairs) == 100
    # The newest are the ones kept.
    assert t.host_failures("10.0.3.231", 0.0) == pytest.approx(1.0)
    assert t.host_failures("10.0.0.0", 0.0) == 0.0
