"""The command line's login for control calls, and the calls made with it.

The calls themselves (socket, hello, one request, one answer) are in
:mod:`litemirror.client.control`; this module only decides who logs in.

Admin actions log in as the user given with ``--user`` or ``LITEMIRROR_USER``,
with the password from ``LITEMIRROR_PASSWORD`` or, on a terminal, a prompt
(asked once per command). Without a user they go without credentials, which a
member with ``auth.require`` refuses (unless no admin user exists yet and the
command runs on the member's host: the bootstrap rule). Status asks log in
the same way when a user is given; without one, a member with
``auth.require`` answers only what a load balancer needs (role, state, epoch;
see :mod:`litemirror.security.visibility`).
"""

from __future__ import annotations

import getpass
import os
import ssl
import sys
from typing import Any

from litemirror.client import control
from litemirror.client.control import Login
from litemirror.config import Config, Member

_user: str | None = None
_password: str | None = None


def use_user(user: str | None) -> None:
    """Log in as ``user`` (the command line's ``--user``; None: LITEMIRROR_USER or nobody)."""
    global _user, _password
    _user, _password = user, None


def login() -> Login | None:
    """(user, password) for admin actions, or None to send no credentials."""
    global _password
    user = _user or os.environ.get("LITEMIRROR_USER") or None
    if user is None:
        return None
    password = os.environ.get("LITEMIRROR_PASSWORD")
    if password is None:
        if _password is None and sys.stdin.isatty():
            _password = getpass.getpass(f"password of litemirror user {user}: ")
        password = _password
    return user, password


def member_status(
    member: Member,
    timeout: float = 2.0,
    *,
    credentials: Login | None = None,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """A member's status; logged in as ``credentials``, else as the user given
    (``--user``, LITEMIRROR_USER), else anonymously."""
    who = credentials if credentials is not None else login()
    return control.member_status(member, timeout, credentials=who, context=context)


def mirror_status(config: Config) -> dict[str, Any]:
    return control.mirror_status(config, login())


def find_primary(config: Config) -> Member:
    return control.find_primary(config, login())


def admin(
    config: Config, action: str, args: dict[str, Any], member: str | None = None
) -> dict[str, Any]:
    who = login()
    return control.admin(config, action, args, member, credentials=who)
