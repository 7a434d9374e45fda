"""Control connections from the command line to members: status and admin actions."""

from __future__ import annotations

from typing import Any

from litemirror import errors
from litemirror.client.transport import Transport
from litemirror.config import Config, Member
from litemirror.protocol import messages as m


def call(host: str, port: int, request: m.ClientMessage, *, timeout: float = 5.0) -> dict[str, Any]:
    """Open a control connection, send one request, return the ``Ok.info``."""
    t = Transport.connect(host, port, timeout if timeout > 0 else 5.0)
    try:
        t.send(
            m.Hello(
                version=m.PROTOCOL_VERSION, database="", read_only=True, client="litemirror-cli"
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


def member_status(member: Member, timeout: float = 2.0) -> dict[str, Any]:
    try:
        return call(member.host, member.port, m.StatusRequest(id=1), timeout=timeout)
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
    members = [member_status(mb) for mb in config.members]
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
    return call(target.host, target.port, m.AdminRequest(id=1, action=action, args=args), timeout=0)
