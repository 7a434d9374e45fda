"""The Monitor page's login tokens: expiry, revocation, bounds; the caller passes the time."""

from __future__ import annotations

import pytest

from litemirror.security.login_tokens import LoginTokens


@pytest.mark.parametrize(
    ("uses", "valid"),
    [
        ([10.0], [True]),
        ([899.0], [True]),
        ([901.0], [False]),  # idle longer than 15 minutes
        ([800.0, 1600.0, 2400.0], [True, True, True]),  # each use keeps it alive...
        ([800.0 * i for i in range(1, 37)], [True] * 36),  # ... up to 8 h (28,800 s)
        ([800.0 * i for i in range(1, 38)], [True] * 36 + [False]),  # not beyond
        ([901.0, 902.0], [False, False]),  # once ended, it stays ended
    ],
)
def test_a_token_ends_when_idle_or_too_old(uses: list[float], valid: list[bool]) -> None:
    t = LoginTokens(idle_s=900.0, lifetime_s=28_800.0)
    t.issue("tok", "reader", b"fp", now=0.0)
    got = [t.check("tok", now) is not None for now in uses]
    assert got == valid


def test_check_returns_the_login_and_unknown_tokens_nothing() -> None:
    t = LoginTokens()
    t.issue("tok", "reader", b"fp", now=5.0)
    login = t.check("tok", 6.0)
    assert login is not None and (login.user, login.credential, login.created) == (
        "reader",
        b"fp",
        5.0,
    )
    assert t.check("other", 6.0) is None
    assert t.check("", 6.0) is None


def test_logout_revokes() -> None:
    t = LoginTokens()
    t.issue("tok", "reader", b"fp", now=0.0)
    assert t.revoke("tok") is True
    assert t.check("tok", 1.0) is None
    assert t.revoke("tok") is False


def test_only_digests_are_kept_and_memory_is_bounded() -> None:
    t = LoginTokens(max_tokens=10)
    for i in range(50):
        t.issue(f"token-{i}", "u", b"", now=float(i))
    assert len(t) == 10
    assert t.check("token-0", 50.0) is None and t.check("token-49", 50.0) is not None
    assert all(len(k) == 32 and b"token" not in k for k in t._tokens)
