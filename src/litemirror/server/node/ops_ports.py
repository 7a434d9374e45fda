"""Fills the canary's and the HTTP API's ports (:mod:`litemirror.server.ops.ports`) from a member.

The canary and the HTTP API read only these; this is the one place that knows
which of the member's parts (journal writer, hub, registry, receiver, users,
admin actions) answers each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litemirror.config import Member
from litemirror.journal import RecordKind
from litemirror.server.front.ports import AdminActions, StatusSource
from litemirror.server.node.parts import Parts
from litemirror.server.ops.http_api import admin_token
from litemirror.server.ops.ports import (
    CanaryPorts,
    Following,
    HttpPorts,
    HttpServing,
    HttpUsers,
    MetricsPage,
    ReplicaFigures,
)
from litemirror.server.ports import EventSink, RoleView
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.stream.hub import Hub


def canary_ports(
    *, me: Member, role: RoleView, event: EventSink, writer: JournalWriter, hub: Hub, ack: str
) -> CanaryPorts:
    """The canary's ports: markers through the journal writer, replicas through the hub."""

    async def append_marker(epoch: int, payload: bytes) -> int:
        return (await writer.append(epoch, RecordKind.MARKER, "", payload)).lsn

    return CanaryPorts(
        member=me.name,
        role=role,
        event=event,
        append_marker=append_marker,
        wait_replicated=lambda lsn: hub.wait_for(lsn, ack),
        applied_by_replica=lambda: {ln.member: ln.applied for ln in list(hub.links.values())},
    )


def http_ports(
    m: Parts, *, status: StatusSource, admin: AdminActions, users: HttpUsers, metrics: MetricsPage
) -> HttpPorts:
    """The HTTP API's ports."""

    def following() -> Following | None:
        if m.replica.receiver is None:
            return None
        rs = m.replica.receiver.status()
        contact = rs.get("last_contact_s")
        return Following(
            state=m.replica.receiver.state,
            lag_records=int(rs["lag_records"]),
            last_contact_s=None if contact is None else float(contact),
        )

    def replicas(now_ms: int) -> list[ReplicaFigures]:
        out = []
        for ln in list(m.hub.links.values()):
            lag = m.hub.lag(ln, now_ms)
            out.append(
                ReplicaFigures(
                    ln.member, lag["records"], lag["seconds"], ln.received, ln.durable, ln.applied
                )
            )
        return out

    return HttpPorts(
        config=m.config,
        me=m.me,
        role=m.role,
        tls=m.config.tls,
        http_token=admin_token(m.config().server),
        status=status,
        admin=admin,
        users=users,
        event=m.event,
        metrics=metrics,
        databases=m.registry,
        importing=m.importer.importing.__contains__,
        following=following,
        replicas=replicas,
        recent_events=lambda: m.events.recent,
        failover_peer=m.peer,
    )


def http_serving(
    m: Parts,
    *,
    tls_refused: Callable[[str, str], None],
    spawn: Callable[[asyncio.Task[Any]], None],
) -> HttpServing:
    """The HTTP port's guards: TLS refusals, connection caps, the member's task keeper."""

    return HttpServing(
        tls_refused=tls_refused,
        admission=m.limits.http_admission,
        on_limit=m.limits.refused,
        spawn=spawn,
    )
