"""Fills :class:`~litemirror.server.ops.ports.MetricsSources` from a running member.

The metrics component reads only these callables; this is the one place that
knows which of the member's parts (journal, registry, hub, receiver) answers each.
"""

from __future__ import annotations

import time

from litemirror.server.node.backup_scheduler import BackupScheduleCollector
from litemirror.server.node.parts import Parts
from litemirror.server.ops.canary import CanaryCollector
from litemirror.server.ops.ports import (
    JournalFigures,
    MetricsSources,
    ReceiverFigures,
    ReplicaFigures,
)
from litemirror.server.storage.archiver import ArchiveCollector
from litemirror.server.storage.drills import DrillCollector


def metrics_sources(m: Parts) -> MetricsSources:
    """The sources of the member's metrics."""

    def journal() -> JournalFigures:
        segs = m.journal.segments()
        return JournalFigures(
            records=m.writer.records,
            fsyncs=m.writer.fsyncs,
            payload_bytes=m.writer.bytes,
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
        if m.replica.receiver is None:
            return None
        rs = m.replica.receiver.status()
        return ReceiverFigures(rs["lag_records"], rs["stream_resets"], rs["frames_refused"])

    def certificate_expiry() -> float | None:
        return m.config.certificate_expiry()

    return MetricsSources(
        member=m.me.name,
        role=m.role,
        started=m.started,
        connections=m.connections,
        journal=journal,
        applied_lsn=lambda: m.position.applied_lsn,
        open_databases=m.registry.open_databases,
        database_counts=lambda: (len(m.registry.names()), m.registry.open_count),
        certificate_expiry=certificate_expiry,
        loop_lag=lambda: m.loop_lag.recent_s(time.monotonic()),
        replicas=replicas,
        receiver=receiver,
        recent_events=lambda: m.events.recent,
        on_durable=m.writer.on_durable,
        collectors=(CanaryCollector(m.canary),)
        + (() if m.archiver is None else (ArchiveCollector(m.me.name, m.archiver),))
        + (
            ()
            if m.backup_scheduler is None
            else (BackupScheduleCollector(m.me.name, m.backup_scheduler),)
        )
        + (() if m.backup_drill is None else (DrillCollector(m.me.name, m.backup_drill),)),
    )
