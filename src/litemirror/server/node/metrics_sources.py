"""Fills :class:`~litemirror.server.ops.ports.MetricsSources` from a running member.

The metrics component reads only these callables; this is the one place that
knows which of the member's parts (journal, registry, hub, receiver) answers each.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from litemirror.server.ops.canary import CanaryCollector
from litemirror.server.ops.ports import (
    JournalFigures,
    MetricsSources,
    ReceiverFigures,
    ReplicaFigures,
)

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer


def metrics_sources(m: MemberServer) -> MetricsSources:
    """The sources of ``m``'s metrics; call after ``m.start()`` built its journal and hub."""

    def journal() -> JournalFigures:
        segs = m.journal.segments()
        return JournalFigures(
            records=m.jw.records,
            fsyncs=m.jw.fsyncs,
            payload_bytes=m.jw.bytes,
            disk_bytes=sum(s.size_bytes for s in segs),
            segments=len(segs),
            last_lsn=m.journal.last_lsn,
        )

    def replicas(now_ms: int) -> list[ReplicaFigures]:
        out = []
        for ln in list(m.hub.links.values()):
            info = m.hub.lag(ln, now_ms)
            out.append(
                ReplicaFigures(
                    ln.member,
                    info["records"],
                    info["seconds"],
                    ln.received,
                    ln.durable,
                    ln.applied,
                )
            )
        return out

    def receiver() -> ReceiverFigures | None:
        if m.receiver is None:
            return None
        rs = m.receiver.status()
        return ReceiverFigures(rs["lag_records"], rs["stream_resets"], rs["frames_refused"])

    def certificate_expiry() -> float | None:
        cert = m.tls_certificate
        return cert.not_after.timestamp() if cert is not None else None

    return MetricsSources(
        member=m.me.name,
        role=m.role_cell,
        started=m.started,
        connections=m,
        journal=journal,
        applied_lsn=lambda: m.applied_lsn,
        open_databases=m.registry.open_databases,
        database_counts=lambda: (len(m.registry.names()), m.registry.open_count),
        certificate_expiry=certificate_expiry,
        loop_lag=lambda: m.loop_lag.recent_s(time.monotonic()),
        replicas=replicas,
        receiver=receiver,
        recent_events=lambda: m.events.recent,
        on_durable=m.jw.on_durable,
        collectors=(CanaryCollector(m.canary),),
    )
