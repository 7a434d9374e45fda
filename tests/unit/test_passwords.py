"""Password hashes: format, verification, refusal of damaged or hostile stored strings.

Real scrypt runs throughout; tests that hash many times use a small cost
(``ln=4``) so they stay quick, and one test checks the default cost.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litemirror.security import passwords as pw
from litemirror.server.front.users import (
    action_needs,
    allows,
    check_role,
    check_user_name,
    is_loopback,
)

CHEAP = {"ln": 4, "r": 8, "p": 1}


def test_hash_is_self_describing_and_verifies() -> None:
    stored = pw.hash_password("correct horse battery staple")
    scheme, params, salt, digest = stored.split("$")
    assert scheme == "scrypt"
    assert params == f"ln={pw.DEFAULT_LN},r={pw.DEFAULT_R},p={pw.DEFAULT_P}"
    assert len(base64.b64decode(salt + "==")) == pw.SALT_BYTES
    assert len(base64.b64decode(digest + "==")) == pw.HASH_BYTES
    assert pw.verify_password(stored, "correct horse battery staple")
    assert not pw.verify_password(stored, "correct horse battery stapl")
    assert not pw.verify_password(stored, "")


def test_same_password_gets_a_new_salt_each_time() -> None:
    a = pw.hash_password("same password", **CHEAP)
    b = pw.hash_password("same password", **CHEAP)
    assert a != b
    assert pw.verify_password(a, "same password") and pw.verify_password(b, "same password")


def test_stored_parameters_are_used_for_verification() -> None:
    stored = pw.hash_password("pässwörd ✓", ln=5, r=4, p=2)
    assert stored.startswith("scrypt$ln=5,r=4,p=2$")
    assert pw.verify_password(stored, "pässwörd ✓")
    assert not pw.verify_password(stored, "passwort ✓")
    h = pw.parse(stored)
    assert (h.ln, h.r, h.p) == (5, 4, 2) and h.format() == stored


def test_a_flipped_bit_in_the_hash_fails() -> None:
    stored = pw.hash_password("secret words", **CHEAP)
    h = pw.parse(stored)
    flipped = pw.ScryptHash(h.ln, h.r, h.p, h.salt, bytes([h.digest[0] ^ 1]) + h.digest[1:])
    assert not pw.verify_password(flipped.format(), "secret words")


def test_dummy_verify_never_succeeds() -> None:
    assert pw.dummy_verify("") is False
    assert pw.dummy_verify("anything at all") is False
    assert pw.dummy_verify("x" * 5000) is False


def test_overlong_password_is_refused_after_the_same_work() -> None:
    stored = pw.hash_password("short enough", **CHEAP)
    assert not pw.verify_password(stored, "y" * (pw.MAX_PASSWORD_CHARS + 1))


@pytest.mark.parametrize(
    ("password", "why"),
    [("short", "shorter than 8"), ("z" * (pw.MAX_PASSWORD_CHARS + 1), "longer than")],
)
def test_check_password_says_why(password: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        pw.check_password(password)
    assert pw.check_password("eight ch") == "eight ch"


GOOD = pw.ScryptHash(4, 8, 1, b"s" * 16, b"h" * 32).format()


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "scrypt",
        "argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        GOOD.replace("scrypt", "SCRYPT"),
        GOOD + "$extra",
        GOOD.replace("ln=4", "ln=x"),
        GOOD.replace("ln=4", "ln=0"),
        GOOD.replace("ln=4", "ln=31"),
        GOOD.replace("ln=4", "ln=24"),  # 2 GiB of memory
        GOOD.replace("ln=4", "ln=17").replace("p=1", "p=5"),  # 128 MiB five times over
        GOOD.replace("r=8", "r=0"),
        GOOD.replace("p=1", "p=0"),
        GOOD.replace("p=1", "p=17"),
        GOOD.replace("ln=4,", "ln=4, "),
        "scrypt$ln=4,r=8,p=1$$" + GOOD.rsplit("$", 1)[1],
        "scrypt$ln=4,r=8,p=1$c2FsdA$" + GOOD.rsplit("$", 1)[1],  # 4-byte salt
        GOOD.rsplit("$", 1)[0] + "$aGFzaA",  # 4-byte hash
        GOOD.rsplit("$", 1)[0] + "$a",  # impossible base64 length
        GOOD.rsplit("$", 1)[0] + "$aGFz*A==",
        GOOD.rsplit("$", 1)[0] + "$aGFzaA==",  # padding is not written
        GOOD + "é",
        GOOD.replace("$", "$\x00", 1),
        "scrypt$" + "ln=4," * 200,
    ],
)
def test_malformed_stored_hashes_raise_value_error(stored: str) -> None:
    with pytest.raises(ValueError):
        pw.parse(stored)
    with pytest.raises(ValueError):
        pw.verify_password(stored, "whatever password")


def test_non_text_stored_hash_raises_value_error() -> None:
    with pytest.raises(ValueError):
        pw.parse(b"scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_value_error(stored: str) -> None:
    try:
        h = pw.parse(stored)
    except ValueError:
        return
    assert h.format().split("$")[:2] == stored.split("$")[:2]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["scrypt", "$", "ln=", "r=", "p=", ",", "4", "8", "1", "99", "c2FsdHNhbHQ", "=", "A"]
        ),
        max_size=20,
    )
)
def test_near_miss_hashes_parse_or_raise_value_error(parts: list[str]) -> None:
    stored = "".join(parts)
    try:
        h = pw.parse(stored)
    except ValueError:
        return
    assert 128 * h.r * (1 << h.ln) <= pw.MAX_MEMORY


# ------------------------------------------------------------- role rules


def test_roles_are_ordered() -> None:
    assert allows("admin", "write") and allows("admin", "read") and allows("write", "read")
    assert not allows("read", "write") and not allows("write", "admin")
    assert not allows(None, "read") and not allows("root", "read")


def test_admin_actions_need_admin_except_reading_ones() -> None:
    assert action_needs("databases", {}) == "read"
    assert action_needs("checksum", {"name": "app"}) == "read"
    assert action_needs("checksum", {"name": "_system"}) == "admin"
    for action in ("switchover", "promote", "db_add", "journal_switch", "user_add", "user_list"):
        assert action_needs(action, {}) == "admin"
    assert action_needs("no_such_action", {}) == "admin"


def test_user_names_and_roles_are_checked() -> None:
    assert check_user_name("alice.smith-2") == "alice.smith-2"
    for bad in ("", "-x", "a b", "a/b", "x" * 65, None, 5):
        with pytest.raises(Exception, match="user name"):
            check_user_name(bad)
    assert check_role("write") == "write"
    with pytest.raises(Exception, match="role"):
        check_role("root")


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.0.0.12:5000", True),
        ("::1:5000", True),
        ("[::1]:5000", True),
        ("::ffff:127.0.0.1:5000", True),
        ("10.0.0.7:51234", False),
        ("::ffff:10.0.0.7:5000", False),
        ("localhost:5000", False),  # names are not trusted, only addresses
        ("garbage", False),
    ],
)
def test_loopback_peers(peer: str, loopback: bool) -> None:
    assert is_loopback(peer) is loopback
