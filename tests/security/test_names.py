"""Names are matched whole: a trailing newline makes no name valid.

The attack: ``re.match`` with a pattern ending in ``$`` accepts "nl\\n" ("$"
also matches before a final newline), so ``db add "nl\\n"`` created a
replicated database that no client could open (the handshake uses
``fullmatch``) and nobody could remove. Every place that checks a member,
mirror, user or database name is asked here, and a real member is too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from litemirror import errors
from litemirror.config import build
from litemirror.protocol import handshake
from litemirror.protocol import messages as m
from litemirror.protocol.replication import REPL_VERSION, ReplHello
from litemirror.security.certs import check_name
from litemirror.security.roles import check_user_name
from litemirror.server.storage.registry import Registry
from litemirror.testing.secured import add_user, cli

SRC = Path(__file__).resolve().parents[2] / "src" / "litemirror"


def _config(**over: Any) -> None:
    mirror = {"name": "m", "databases": ["app"], **over.pop("mirror", {})}
    member = {"name": "a", "address": "127.0.0.1:7701", "data_dir": "/tmp/lm-a"}
    member.update(over.pop("member", {}))
    build({"mirror": mirror, "members": [member], **over}, environ={})


def _refused(check: Callable[[str], object], name: str) -> bool:
    """Whether ``check`` refuses ``name`` (by raising, or by returning a reason)."""
    try:
        out = check(name)
    except (errors.Error, ValueError):
        return True
    return isinstance(out, str) and out != name


def _hello(db: str) -> str | None:
    return handshake.check_opening(m.Hello(version=m.PROTOCOL_VERSION, database=db))


def _repl(mirror: str = "m", member: str = "a") -> str | None:
    return handshake.check_opening(
        ReplHello(
            version=REPL_VERSION,
            mirror=mirror,
            member=member,
            kind="dr",
            last_lsn=0,
            last_epoch=0,
        )
    )


CHECKERS: dict[str, tuple[Callable[[str], object], str]] = {
    "config mirror.name": (lambda n: _config(mirror={"name": n}), "m"),
    "config mirror.databases": (lambda n: _config(mirror={"databases": [n]}), "app"),
    "config members[].name": (lambda n: _config(member={"name": n}), "a"),
    "config tls.arbiter_name": (
        lambda n: _config(tls={"ca": "c", "cert": "c", "key": "k", "arbiter_name": n}),
        "arbiter",
    ),
    "registry (db add, import)": (Registry.validate_name, "app"),
    "user names": (check_user_name, "alice"),
    "certificate names": (check_name, "alice"),
    "Hello database": (_hello, "app"),
    "ReplHello mirror": (lambda n: _repl(mirror=n), "m"),
    "ReplHello member": (lambda n: _repl(member=n), "a"),
}


@pytest.mark.parametrize("where", sorted(CHECKERS))
@pytest.mark.parametrize("tail", ["\n", "\r\n", "\x00", " ", "\t"])
def test_every_name_checker_refuses_a_trailing_control_or_space(where: str, tail: str) -> None:
    check, good = CHECKERS[where]
    assert not _refused(check, good), f"{where} refuses the valid name {good!r}"
    assert _refused(check, good + tail), f"{where} accepts {good + tail!r}"


def test_no_name_pattern_is_used_with_match() -> None:
    """``X_RE.match(name)`` is how "nl\\n" got in; names are checked with fullmatch."""
    use = re.compile(r"\b(?:NAME|MEMBER|DB|DATABASE|MIRROR|USER)_RE\.match\(")
    found = [
        f"{p.relative_to(SRC)}:{i}"
        for p in SRC.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if use.search(line)
    ]
    assert not found, found


def test_a_member_refuses_db_add_with_a_trailing_newline(cluster_factory: Any) -> None:
    c = cluster_factory(tls_require=True, sections={"auth": {"require": True}})
    c.start()
    add_user(c, "root", by=None)
    r = cli(c, "db", "add", "nl\n", "--no-wait", user="root")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "database name 'nl\\n'" in r.stderr, r.stderr
    r = cli(
        c, "user", "add", "bob\n", "--role", "read", "--password-stdin",
        user="root", stdin="bob-secret-1",
    )  # fmt: skip
    assert r.returncode == 1 and "user name 'bob\\n'" in r.stderr, r.stderr
    assert sorted(p.name for p in (c["a"].data_dir / "databases").glob("*.db")) == [
        "_system.db",
        "app.db",
    ]
    # The same name without the newline works.
    r = cli(c, "db", "add", "nl", "--no-wait", user="root")
    assert r.returncode == 0, r.stderr
