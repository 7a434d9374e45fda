"""Control connections from the command line to members: status and admin actions.

Status asks need no login (the HTTP port shows the same to anyone), but log
in when a user is given, so they get through a flood of anonymous
connections. Admin actions log in as the user given with ``--user`` or
``LITEMIRROR_USER``, with the password from ``LITEMIRROR_PASSWORD`` or, on a
terminal, a prompt (asked once per command). Without a user they go without
credentials, which a member with ``auth.require`` refuses (unless no admin
user exists yet and the command runs on the member's host: the bootstrap
rule). Status asks log in the same way when a user is given; without one, a
member with ``auth.require`` answers only what a load balancer needs (role,
state, epoch; see :mod:`litemirror.security.visibility`).
"""

from __future__ import annotations

import getpass
import os
import ssl
import sys
from typing import Any

from litemirror import errors
from litemirror.client.credentials import control_context
from litemirror.client.transport import Transport
from litemirror.config import Config, Member
from litemirror.protocol import messages as m

Login = tuple[str, str | None]
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


def call(
    host: str,
    port: int,
    request: m.ClientMessage,
    *,
    timeout: float = 5.0,
    credentials: Login | None = None,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Open a control connection, send one request, return the ``Ok.info``.

    ``context``: the TLS context to use instead of this process's (a member
    passes its own, which presents its member certificate).
    """
    ctx = context if context is not None else control_context()
    t = Transport.connect(host, port, timeout if timeout > 0 else 5.0, ctx)
    try:
        t.send(
            m.Hello(
                version=m.PROTOCOL_VERSION,
                database="",
                read_only=True,
                client="litemirror-cli",
                user=credentials[0] if credentials else None,
                password=credentials[1] if credentials else None,
            )
        )
        welcome = t.recv()
        if isinstance(welcome, m.Error):
            raise errors.BY_NAME.get(welcome.kind, errors.Error)(welcome.message)
        t.send(request)
        t.settimeout(None if timeout <= 0 else max(timeout, 600.0))
        answer = t.recv()
        if isinstance(answer, m.Error):
            raise errors.BY_NAME.get(answer.kind, errors.Error)(
                answer.message, sqlite_code=answer.sqlite_code, primary=answer.primary
            )
        if not isinstance(answer, m.Ok):
            raise errors.ProtocolError(f"unexpected answer {type(answer).__name__}")
        return dict(answer.info)
    finally:
        t.close()


def member_status(
    member: Member,
    timeout: float = 2.0,
    *,
    credentials: Login | None = None,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """A member's status; logged in as ``credentials``, else as the user given
    (``--user``, LITEMIRROR_USER), else anonymously.

    A member under a flood of anonymous connections may refuse an anonymous
    call (``limits.max_anonymous``); a logged-in status call is a client's and
    still gets through.
    """
    try:
        return call(
            member.host,
            member.port,
            m.StatusRequest(id=1),
            timeout=timeout,
            credentials=credentials if credentials is not None else login(),
            context=context,
        )
    except errors.Error as exc:
        return {
            "member": member.name,
            "kind": member.kind,
            "address": member.address,
            "role": "down",
            "state": "unreachable",
            "lsn": None,
            "error": exc.message,
        }


def arbiter_status(address: str, timeout: float = 2.0) -> dict[str, Any]:
    from litemirror.config import parse_address

    host, port = parse_address("mirror.arbiter", address)
    try:
        return call(host, port, m.StatusRequest(id=1), timeout=timeout)
    except errors.Error as exc:
        return {"role": "arbiter", "address": address, "state": "down", "error": exc.message}


def mirror_status(config: Config) -> dict[str, Any]:
    who = login()
    members = [member_status(mb, credentials=who) for mb in config.members]
    out: dict[str, Any] = {"mirror": config.mirror.name, "members": members}
    if config.mirror.arbiter is not None:
        out["arbiter"] = arbiter_status(config.mirror.arbiter)
    return out


def find_primary(config: Config) -> Member:
    for mb in config.members:
        st = member_status(mb)
        if st.get("role") == "primary":
            return mb
    raise errors.UnavailableError("no member of the mirror answers as primary")


def admin(
    config: Config, action: str, args: dict[str, Any], member: str | None = None
) -> dict[str, Any]:
    target = config.member(member) if member else find_primary(config)
    return call(
        target.host,
        target.port,
        m.AdminRequest(id=1, action=action, args=args),
        timeout=0,
        credentials=login(),
    )
