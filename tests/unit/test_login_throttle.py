"""Login back-off per host: free mistakes, then doubling waits, reset by success or time."""

from __future__ import annotations

from litemirror.security.throttle import LoginThrottle


def test_first_failures_cost_nothing_then_waits_double_up_to_the_cap() -> None:
    t = LoginThrottle(free=3, base_s=0.5, max_s=4.0)
    delays = []
    for i in range(8):
        delays.append(t.delay("10.0.0.7", now=float(i)))
        t.failed("10.0.0.7", now=float(i))
    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    # Another host is not affected.
    assert t.delay("10.0.0.8", now=8.0) == 0.0


def test_success_clears_the_host() -> None:
    t = LoginThrottle(free=1)
    t.failed("h", 0.0)
    t.failed("h", 0.0)
    assert t.delay("h", 0.0) > 0
    t.succeeded("h")
    assert t.delay("h", 0.0) == 0.0


def test_few_failures_are_forgotten_after_the_window_but_a_guesser_is_not() -> None:
    t = LoginThrottle(free=2, window_s=60.0)
    t.failed("slow", 0.0)
    t.failed("slow", 1.0)
    assert t.delay("slow", 100.0) == 0.0 and t.failed("slow", 100.0) == 1
    for i in range(5):
        t.failed("guesser", float(i))
    # Past the free allowance, the back-off stays until a success.
    assert t.delay("guesser", 1000.0) > 0


def test_memory_is_bounded() -> None:
    t = LoginThrottle(max_hosts=100)
    for i in range(1000):
        t.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(t._failures) == 100
