"""What each caller may see of a member's status and events (pure).

With ``auth.require`` on, three audiences:

* ``PUBLIC`` — a caller without credentials (a load balancer, a monitoring
  probe, a stranger). Gets what a load balancer needs and nothing more:
  :data:`PUBLIC_FIELDS` of the status (who the member is, its role and state,
  whether it commits, its epoch and LSN, the one-sentence reason), and no
  events. The HTTP port answers 401 on ``/status``, ``/mirror`` and
  ``/events``; the control protocol answers ``StatusRequest`` with this.
* ``USER`` — a logged-in ``read`` or ``write`` user. Sees the mirror's
  operation (roles, lag, failover decisions, databases) but nothing about
  other clients: no per-host connection counts, no process id, and events
  other than :data:`OPERATIONAL_EVENTS` only as "something of this kind
  happened" (kind, time, severity; message replaced, data dropped). So the
  user names someone typed, who was refused from which address, and what an
  admin ran with which arguments stay with the admins.
* ``ADMIN`` — an ``admin`` user, a member of the mirror (its certificate),
  the HTTP bearer token; and everyone while ``auth.require`` is off (as
  before users existed). Sees everything.

A list of what may be shown (not of what to hide) for events, so an event
kind added later is hidden from non-admins until someone decides otherwise;
status fields are hidden by name, plus any field named ``*_by_host`` or
``*_by_peer`` — name new per-client fields so.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

from .roles import Principal, allows


class Audience(Enum):
    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"


#: The status a caller without credentials gets (auth.require on).
PUBLIC_FIELDS = ("mirror", "member", "kind", "role", "state", "epoch", "lsn", "writable", "reason")
#: Status fields about this process and its clients, for admins only.
HOST_FIELDS = frozenset({"pid", "connections_by_host", "sessions_by_host"})
_HOST_SUFFIXES = ("_by_host", "_by_peer")
#: Event kinds about the mirror's operation, shown whole to logged-in users.
OPERATIONAL_EVENTS = frozenset(
    {
        "role",
        "waiting",
        "following",
        "demoted",
        "failover",
        "writes_open",
        "backup_active",
        "backup_inactive",
        "member_connected",
        "member_disconnected",
        "switchover",
        "promote",
        "promoted",
        "seeding_started",
        "seeding_finished",
        "stream_reset",
        "rejoin_reseed",
        "rejoin_rolled_back",
        "committed_rolled_back",
        "apply_failed",
        "journal_purged",
        "archive_failed",
        "archive_resumed",
        "canary_stale",
        "canary_recovered",
        "vip",
        "config_reloaded",
        "config_refused",
        "tls_reloaded",
    }
)
HIDDEN_MESSAGE = "(details are shown to admin users only)"
PUBLIC_NOTE = (
    "this member requires a login (auth.require): only its role and state are shown; "
    "log in (--user, or a user with the read role) for the full status"
)


def audience_of(principal: Principal, auth_required: bool) -> Audience:
    """What ``principal`` may see on a member whose ``auth.require`` is ``auth_required``."""
    if not auth_required or principal.how == "member" or allows(principal.role, "admin"):
        return Audience.ADMIN
    if allows(principal.role, "read"):
        return Audience.USER
    return Audience.PUBLIC


def event_view(event: dict[str, Any], audience: Audience) -> dict[str, Any] | None:
    """``event`` as ``audience`` may see it; None: not at all."""
    if audience is Audience.ADMIN:
        return event
    if audience is Audience.PUBLIC:
        return None
    if event.get("kind") in OPERATIONAL_EVENTS:
        return event
    return {**event, "message": HIDDEN_MESSAGE, "data": {}}


def events_view(events: Iterable[dict[str, Any]], audience: Audience) -> list[dict[str, Any]]:
    return [v for v in (event_view(ev, audience) for ev in events) if v is not None]


def _host_field(key: str) -> bool:
    return key in HOST_FIELDS or key.endswith(_HOST_SUFFIXES)


def status_view(
    status: dict[str, Any], audience: Audience, recent: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A member's ``status`` as ``audience`` may see it.

    ``recent``: the events behind the status's ``events`` (its last
    messages), so that list can be filtered by kind.
    """
    if audience is Audience.ADMIN:
        return status
    if audience is Audience.PUBLIC:
        out = {k: status[k] for k in PUBLIC_FIELDS if k in status}
        out["redacted"] = PUBLIC_NOTE
        return out
    out = {k: v for k, v in status.items() if not _host_field(k)}
    if "events" in status:
        out["events"] = [str(ev.get("message")) for ev in events_view(recent, audience)]
    return out
