"""Roles and what they allow (pure): read < write < admin, and who a connection acts as.

``read`` runs queries; ``write`` also changes data; ``admin`` also runs the
admin actions (switchover, promote, db add, journal switch, user
management). The system database that holds the users is readable by
admins only. See docs/security.md, "Roles".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from litemirror.errors import ProgrammingError

#: The mirrored database that holds the users (user databases cannot take the name).
SYSTEM_DB = "_system"

ROLES = ("read", "write", "admin")
#: User names: what a certificate CN may be too (see security.certs.check_name).
USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
#: Admin actions that only read; every other admin action needs the admin role.
READ_ACTIONS = frozenset({"databases", "checksum"})
USER_ACTIONS = frozenset({"user_add", "user_remove", "user_passwd", "user_list"})
#: Admin actions another member of the mirror (its certificate) may run: the
#: primary runs the backup schedule through them (docs/backup.md "Schedules").
MEMBER_ACTIONS = frozenset({"backup_list", "backup_scheduled"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection acts as."""

    #: The user name; None when nobody logged in.
    user: str | None
    #: read, write or admin; None: may only ping and ask for status.
    role: str | None
    #: open (auth not required), password, certificate, bootstrap, anonymous, or member
    #: (another member of the mirror on a control connection, by its certificate).
    how: str

    def describe(self) -> str:
        if self.user is not None:
            return f"user {self.user!r} ({self.role})"
        if self.how == "bootstrap":
            return "a loopback connection acting as admin (no admin user exists yet)"
        if self.how == "open":
            return "a client (auth.require is off)"
        if self.how == "member":
            return "a member of the mirror (its certificate)"
        return "a connection without credentials"


OPEN = Principal(None, "admin", "open")
ANONYMOUS = Principal(None, None, "anonymous")
BOOTSTRAP = Principal(None, "admin", "bootstrap")
#: Another member asking for status (its certificate): reads, and sees everything.
MEMBER = Principal(None, "read", "member")


def allows(role: str | None, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (read < write < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def action_needs(action: str, args: dict[str, Any]) -> str:
    """The role an admin action needs."""
    if action in READ_ACTIONS and args.get("name") != SYSTEM_DB:
        return "read"
    return "admin"


def check_user_name(name: object) -> str:
    if not isinstance(name, str) or not USER_RE.fullmatch(name):
        raise ProgrammingError(
            f"user name {str(name)[:80]!r} is not usable: use 1-64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_role(role: object) -> str:
    if role not in ROLES:
        raise ProgrammingError(f"role {str(role)[:40]!r} is not one of {', '.join(ROLES)}")
    return str(role)


def is_loopback(peer: str) -> bool:
    """Whether ``peer`` ("host:port", IPv6 hosts with or without brackets) is on loopback."""
    host = peer.rpartition(":")[0].strip("[]")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback
