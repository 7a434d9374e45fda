"""Fills the canary's and the HTTP API's ports (:mod:`litemirror.server.ops.ports`) from a member.

The canary and the HTTP API read only these; this is the one place that knows
which of the member's parts (journal writer, hub, registry, receiver, users,
admin actions) answers each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litemirror.journal import RecordKind
from litemirror.server.ops.http_api import admin_token
from litemirror.server.ops.ports import (
    CanaryPorts,
    Following,
    HttpPorts,
    HttpServing,
    ReplicaFigures,
)

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer


def canary_ports(m: MemberServer) -> CanaryPorts:
    """The canary's ports; call once ``m.start()`` built its journal writer and hub."""

    async def append_marker(epoch: int, payload: bytes) -> int:
        return (await m.jw.append(epoch, RecordKind.MARKER, "", payload)).lsn

    return CanaryPorts(
        member=m.me.name,
        role=m.role_cell,
        event=m.event,
        append_marker=append_marker,
        wait_replicated=lambda lsn: m.hub.wait_for(lsn, m.config.mirror.ack),
        applied_by_replica=lambda: {ln.member: ln.applied for ln in list(m.hub.links.values())},
    )


def http_ports(m: MemberServer) -> HttpPorts:
    """The HTTP API's ports; call once ``m.start()`` built its registry, hub and metrics."""

    def following() -> Following | None:
        if m.receiver is None:
            return None
        rs = m.receiver.status()
        contact = rs.get("last_contact_s")
        return Following(
            state=m.receiver.state,
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
        config=lambda: m.config,
        me=m.me,
        role=m.role_cell,
        tls=m.tls,
        http_token=admin_token(m.config.server),
        status=m,
        admin=m.admin_actions,
        users=m.users,
        event=m.event,
        metrics=m.metrics,
        databases=m.registry,
        importing=m.importing.__contains__,
        following=following,
        replicas=replicas,
        recent_events=lambda: m.events.recent,
        failover_peer=m.peer,
    )


def http_serving(m: MemberServer) -> HttpServing:
    """The HTTP port's guards: TLS refusals, connection caps, the member's task keeper."""

    return HttpServing(
        tls_refused=m.tls_refused,
        admission=m.limits.http_admission,
        on_limit=m.limits.refused,
        spawn=m.spawned,
    )
