"""Passwords may not hold control characters, so no two different passwords are equal.

The attack: scrypt keys PBKDF2-HMAC-SHA256 with the password, and HMAC pads
a short key with NUL bytes, so "pw" and "pw" + NUL derive the same hash: a
password and the same password with a trailing NUL were both accepted. The
member now refuses control characters when a password is set (``user add``,
``user passwd``: on the member, so every client is covered) and never
accepts one at login.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest

import litemirror
from litemirror import errors
from litemirror.security import passwords as pw
from litemirror.testing.cluster import Cluster
from litemirror.testing.secured import PASSWORDS, add_user, cli

CHEAP = {"ln": 4, "r": 8, "p": 1}
ROOT = ("root", PASSWORDS["root"])


def test_the_padding_that_made_them_equal() -> None:
    """Why the rule exists: scrypt itself cannot tell these two apart."""
    a = hashlib.scrypt(b"secret12", salt=b"s" * 16, n=16, r=8, p=1)
    assert hashlib.scrypt(b"secret12\0", salt=b"s" * 16, n=16, r=8, p=1) == a


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("secret12\x00", "U+0000"),
        ("\x00secret12", "U+0000"),
        ("secret12\n", "U+000A"),
        ("secret\r12", "U+000D"),
        ("secret\t12", "U+0009"),
        ("secret\x1b12", "U+001B"),
        ("secret12\x7f", "U+007F"),
        ("secret12\x85", "U+0085"),  # C1 controls too
    ],
)
def test_control_characters_are_refused_and_named(password: str, code: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"control character ({code} at position")):
        pw.check_password(password)


@pytest.mark.parametrize("password", ["secret12", "with spaces ok", "pässwörd ✓ 🔑", "x" * 1024])
def test_printable_passwords_are_accepted(password: str) -> None:
    assert pw.check_password(password) == password


def test_a_control_character_never_verifies() -> None:
    stored = pw.hash_password("secret12", **CHEAP)
    assert pw.verify_password(stored, "secret12")
    for extra in ("\x00", "\x00\x00", "\n"):
        assert not pw.verify_password(stored, "secret12" + extra)


# ------------------------------------------------------------- a real member


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("passwords"), tls_require=True, sections={"auth": {"require": True}}
    )
    c.start()
    try:
        add_user(c, "root", by=None)
        yield c
    finally:
        c.kill_all()


def _login(c: Cluster, user: str, password: str) -> None:
    url = c.url("app").replace("litemirror://", f"litemirror://{user}:{quote(password)}@", 1)
    litemirror.connect(url).close()


@pytest.mark.parametrize("password", ["alice-secret\x00", "alice\x1bsecret", "alice\tsecret"])
def test_user_add_with_a_control_character_is_refused(mirror: Cluster, password: str) -> None:
    r = cli(
        mirror, "user", "add", "alice", "--role", "read", "--password-stdin",
        user="root", stdin=password,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "control character" in r.stderr and "nothing was changed" in r.stderr, r.stderr
    r = cli(mirror, "user", "list", "--json", user="root")
    assert '"alice"' not in r.stdout


def test_user_passwd_with_a_control_character_is_refused(mirror: Cluster) -> None:
    r = cli(
        mirror, "user", "add", "carol", "--role", "read", "--password-stdin",
        user="root", stdin="carol-pw-1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli(
        mirror, "user", "passwd", "carol", "--password-stdin", user="root", stdin="carol-pw-2\x00"
    )
    assert r.returncode == 1 and "control character" in r.stderr, r.stderr
    _login(mirror, "carol", "carol-pw-1")  # unchanged


def test_a_trailing_nul_does_not_log_in(mirror: Cluster) -> None:
    _login(mirror, *ROOT)
    for extra in ("\x00", "\x00\x00\x00"):
        with pytest.raises(errors.AuthenticationError):
            _login(mirror, ROOT[0], ROOT[1] + extra)
