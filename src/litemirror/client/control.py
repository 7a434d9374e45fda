"""One-shot control calls to members and the arbiter: status and admin actions.

A control call opens a connection, says hello (with the credentials it was
given, or none), sends one request and returns the ``Ok.info`` of the answer.
It is blocking (the server and the test harness run it in a thread) and
reads nothing of its own: who logs in is the caller's choice, passed as
``credentials``. The command line finds those from ``--user`` and the
environment (:mod:`litemirror.cli.control`); a member passes none, and its
own certificate as ``context``.

Status asks need no login (the HTTP port shows the same to anyone); a member
with ``auth.require`` answers an anonymous one only with what a load
balancer needs (role, state, epoch; see :mod:`litemirror.security.visibility`).
Admin actions without credentials are refused by such a member (unless no
admin user exists yet and the call comes from the member's host: the
bootstrap rule).
"""

from __future__ import annotations

import ssl
from typing import Any

from litemirror import errors
from litemirror.client.credentials import control_context
from litemirror.client.transport import Transport
from litemirror.config import Config, Member, parse_address
from litemirror.protocol import messages as m

#: (user, password); the password may be None (the member then refuses the login).
Login = tuple[str, str | None]


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

    ``timeout`` <= 0 waits for the answer as long as it takes (admin actions
    such as a copy). ``context``: the TLS context to use instead of this
    process's (a member passes its own, which presents its member certificate).
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
    """A member's status, or a row saying it is down (and why) if it does not answer.

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
            credentials=credentials,
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


def arbiter_status(
    address: str, timeout: float = 2.0, *, context: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """The arbiter's status, or a row saying it is down (and why)."""
    host, port = parse_address("mirror.arbiter", address)
    try:
        return call(host, port, m.StatusRequest(id=1), timeout=timeout, context=context)
    except errors.Error as exc:
        return {"role": "arbiter", "address": address, "state": "down", "error": exc.message}


def mirror_status(config: Config, credentials: Login | None = None) -> dict[str, Any]:
    """Every member's status (logged in as ``credentials``) and the arbiter's."""
    members = [member_status(mb, credentials=credentials) for mb in config.members]
    out: dict[str, Any] = {"mirror": config.mirror.name, "members": members}
    if config.mirror.arbiter is not None:
        out["arbiter"] = arbiter_status(config.mirror.arbiter)
    return out


def find_primary(config: Config, credentials: Login | None = None) -> Member:
    """The first member that answers as primary."""
    for mb in config.members:
        st = member_status(mb, credentials=credentials)
        if st.get("role") == "primary":
            return mb
    raise errors.UnavailableError("no member of the mirror answers as primary")


def admin(
    config: Config,
    action: str,
    args: dict[str, Any],
    member: str | None = None,
    *,
    credentials: Login | None = None,
) -> dict[str, Any]:
    """Run admin ``action`` on ``member`` (default: the primary); waits as long as it takes."""
    target = config.member(member) if member else find_primary(config, credentials)
    return call(
        target.host,
        target.port,
        m.AdminRequest(id=1, action=action, args=args),
        timeout=0,
        credentials=credentials,
    )
