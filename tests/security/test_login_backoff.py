"""Finding 7: the login back-off, attacked on a TLS + auth mirror (real member, real logins).

The attack found 40 parallel guesses from a throttled host all checked at once
(the right one accepted), the back-off reset by the attacker's own successful
login, and counts per address only. Each guesser here is its own loopback
address, so the member sees distinct hosts; the harness itself logs in from
127.0.0.1 and never fails.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from litemirror.testing.cluster import Cluster
from litemirror.testing.secured import (
    PASSWORDS,
    Answer,
    checked_login,
    raw_login,
    secured_mirror,
)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = secured_mirror(
        Path(tmp_path_factory.mktemp("backoff")),
        members=[("a", "failover")],
        arbiter=False,
        http=True,
    )
    try:
        yield c
    finally:
        c.kill_all()


def fail_from(c: Cluster, source: str, user: str, times: int) -> list[Answer]:
    """``times`` wrong passwords from ``source``, each checked (waiting out the back-off)."""
    answers = [checked_login(c, "a", user, f"guess-{i}", source=source) for i in range(times)]
    assert all(a.kind == "AuthenticationError" and a.checked for a in answers), answers
    return answers


def test_parallel_guesses_from_a_throttled_host_are_not_all_checked(mirror: Cluster) -> None:
    attacker = "127.0.0.50"
    fail_from(mirror, attacker, "root", 6)  # past the free allowance: held 0.5 s
    guesses = [f"wrong-{i}" for i in range(39)] + [PASSWORDS["root"]]
    with ThreadPoolExecutor(len(guesses)) as pool:
        futures = [pool.submit(raw_login, mirror, "a", "root", g, source=attacker) for g in guesses]
        answers = [f.result() for f in futures]
    checked = [a for a in answers if a.checked]
    unchecked = [a for a in answers if a.unchecked]
    # One check at a time per host, none while the host is held: the rest are refused
    # without a check, at once, saying when to retry (before the fix: all 40 checked).
    assert len(checked) <= 4, [a.message for a in answers]
    assert len(checked) + len(unchecked) == len(guesses)
    assert all(a.retry_in >= 1 for a in unchecked), [a.message for a in unchecked]
    # Those checked were answered one after another, each after the previous one's hold.
    failed = sorted(a.at for a in checked if a.kind != "ok")
    gaps = [b - a for a, b in itertools.pairwise(failed)]
    assert all(g >= 0.4 for g in gaps), gaps


def test_the_attackers_own_successful_login_does_not_reset_the_back_off(mirror: Cluster) -> None:
    attacker = "127.0.0.51"
    fail_from(mirror, attacker, "ops", 8)  # guessing at a name (whoever it may be)
    # The attacker's own read account, from the same host: accepted...
    own = checked_login(mirror, "a", "reader", PASSWORDS["reader"], source=attacker)
    assert own.kind == "ok", own
    # ...and the back-off goes on: the ninth failure holds the host 4 s, so the guess
    # right after it is refused unchecked. (Before the fix the success cleared the host:
    # the ninth failure was its first, and the next guess was checked at once.)
    ninth = raw_login(mirror, "a", "ops", "guess-after-own-login", source=attacker)
    assert ninth.checked and ninth.kind == "AuthenticationError", ninth
    tenth = raw_login(mirror, "a", "ops", "and-another", source=attacker)
    assert tenth.unchecked and tenth.retry_in >= 3, tenth
    # A host whose user typed its own password right after a few typos is forgiven.
    typo = "127.0.0.52"
    fail_from(mirror, typo, "writer", 5)
    assert checked_login(mirror, "a", "writer", PASSWORDS["writer"], source=typo).kind == "ok"
    again = [raw_login(mirror, "a", "writer", f"typo-{i}", source=typo) for i in range(2)]
    assert all(a.checked for a in again), again  # no hold left: both checked at once


def test_guesses_at_one_name_from_many_hosts_take_turns_and_the_real_user_gets_in(
    mirror: Cluster,
) -> None:
    hosts = [f"127.0.0.{60 + i}" for i in range(11)]
    for host in hosts:  # one guess each: no host is throttled, the name is
        fail_from(mirror, host, "writer", 1)
    said = mirror["a"].events("auth_throttled")
    assert any("for user 'writer' (from all hosts" in e["message"] for e in said), said

    with ThreadPoolExecutor(4) as pool:
        attacks = [
            pool.submit(raw_login, mirror, "a", "writer", f"spray-{i}", source=host)
            for i, host in enumerate(hosts[:3])
        ]
        time.sleep(0.5)  # the guesses are queued on the name by now
        real = pool.submit(
            raw_login, mirror, "a", "writer", PASSWORDS["writer"], source="127.0.0.99"
        ).result()
        answers = [f.result() for f in attacks]
    # The guessing hosts took turns on the name, each check after the hold the one
    # before it left (a second or more by now); before the fix all three were checked
    # at once.
    assert all(a.checked and a.kind == "AuthenticationError" for a in answers), answers
    at = sorted(a.at for a in answers)
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert all(g >= 0.9 for g in gaps), gaps
    # The real user, from a host that did not fail, did not queue behind them: it got
    # in before the guessers were through (a per-user lockout would have refused it).
    assert real.kind == "ok", real
    assert real.at < at[-1], (real, answers)
