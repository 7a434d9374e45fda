"""Prometheus metrics of one member, served at ``GET /metrics``.

Nothing here sits on the commit path. Most values are read from the
member's own counters when Prometheus scrapes (a custom collector), so an
idle member costs nothing. Two things are observed as they happen, both off
the hot path:

* journal write latency: a listener on the journal writer (called once per
  fsynced batch, on the event loop) observes, for every record, the time
  from its creation to its fsync;
* events: :meth:`Metrics.poll` (the HTTP module's one-second sampler) counts
  new entries of the member's event log by kind and severity.

Counters must never go down, but a database's ``commits`` counter goes away
when the database is closed as idle; :class:`_CommitTally` adds up the
increments of each open database instead, so ``litemirror_commits_total``
only grows (commits in the last second before a close can be missed).

Each member has its own :class:`CollectorRegistry`, so several members in
one process (tests) never share series.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from litemirror.server.ops.canary import CanaryCollector

if TYPE_CHECKING:
    from litemirror.journal.record import Record
    from litemirror.server.node.member import MemberServer
    from litemirror.server.ops.event_log import Event

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROLES = ("starting", "waiting", "primary", "backup", "dr", "reporting")
#: Event kinds that mean "this member became primary at a new epoch".
TAKEOVER_KINDS = frozenset({"writes_open"})

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _CommitTally:
    """A monotonic total of commits over databases that open and close."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def update(self, databases: list[Any]) -> int:
        for db in databases:
            now = int(db.commits)
            before = self._seen.get(db, 0)
            if now > before:
                self.total += now - before
            self._seen[db] = now
        return self.total


class _MemberCollector(Collector):
    """Gauges and counters read from the member at scrape time."""

    def __init__(self, member: MemberServer, tally: _CommitTally) -> None:
        self.m = member
        self.tally = tally

    def collect(self) -> Iterator[Metric]:
        m = self.m
        name = m.me.name
        labels = ["member"]

        def gauge(metric: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(metric, doc, labels=labels)
            g.add_metric([name], value)
            return g

        def counter(metric: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(metric, doc, labels=labels)
            c.add_metric([name], value)
            return c

        yield counter(
            "litemirror_commits",
            "Transactions committed on this member's databases (primary only).",
            self.tally.update(m.registry.open_databases()),
        )
        if m.tls_certificate is not None:
            yield gauge(
                "litemirror_tls_certificate_expiry_timestamp_seconds",
                "When the certificate this member presents expires (Unix time): alert "
                "well before it, and rotate with SIGHUP.",
                m.tls_certificate.not_after.timestamp(),
            )
        yield counter("litemirror_journal_records", "Journal records written.", m.jw.records)
        yield counter("litemirror_journal_fsyncs", "Journal fsyncs (group commits).", m.jw.fsyncs)
        yield counter(
            "litemirror_journal_payload_bytes", "Journal payload bytes written.", m.jw.bytes
        )
        segs = m.journal.segments()
        yield gauge(
            "litemirror_journal_bytes",
            "Bytes of journal on disk.",
            sum(s.size_bytes for s in segs),
        )
        yield gauge("litemirror_journal_segments", "Journal segment files on disk.", len(segs))
        yield gauge("litemirror_lsn", "Last journal LSN of this member.", m.journal.last_lsn)
        yield gauge("litemirror_applied_lsn", "Last LSN applied to the databases.", m.applied_lsn)
        yield gauge("litemirror_epoch", "Epoch (term) this member knows.", m.epoch)
        yield gauge("litemirror_writable", "1 while this member accepts commits.", m.writable)
        yield gauge("litemirror_connections", "Open client connections.", m._connections)
        yield gauge("litemirror_databases", "Databases held.", len(m.registry.names()))
        yield gauge("litemirror_open_databases", "Databases open now.", m.registry.open_count)
        yield gauge("litemirror_uptime_seconds", "Seconds since start.", time.time() - m.started)
        yield gauge(
            "litemirror_event_loop_lag_seconds",
            "Worst delay of the event loop in the last minute (heartbeats and the arbiter "
            "session ride on it: keep it far below mirror.qos_timeout_ms).",
            m.loop_lag.recent_s(time.monotonic()),
        )

        role = GaugeMetricFamily(
            "litemirror_role", "1 for the role this member has now.", labels=["member", "role"]
        )
        for r in ROLES:
            role.add_metric([name, r], 1.0 if m.role == r else 0.0)
        yield role

        yield from self._replication()

    def _replication(self) -> Iterator[Metric]:
        m = self.m
        lag = GaugeMetricFamily(
            "litemirror_replication_lag_records",
            "Journal records a replica has not applied yet.",
            labels=["member", "replica"],
        )
        lag_s = GaugeMetricFamily(
            "litemirror_replication_lag_seconds",
            "Age of the oldest record a replica has not applied yet.",
            labels=["member", "replica"],
        )
        lsn = GaugeMetricFamily(
            "litemirror_replica_lsn",
            "LSN a replica acknowledged, by level (received, durable, applied).",
            labels=["member", "replica", "level"],
        )
        errors = CounterMetricFamily(
            "litemirror_replication_errors",
            "Replication stream problems seen by this member, by kind.",
            labels=["member", "kind"],
        )
        if m.role == "primary":
            now_ms = int(time.time() * 1000)
            for ln in list(m.hub.links.values()):
                info = m.hub.lag(ln, now_ms)
                lag.add_metric([m.me.name, ln.member], info["records"])
                lag_s.add_metric([m.me.name, ln.member], info["seconds"])
                for level, value in (
                    ("received", ln.received),
                    ("durable", ln.durable),
                    ("applied", ln.applied),
                ):
                    lsn.add_metric([m.me.name, ln.member, level], value)
        if m.receiver is not None:
            rs = m.receiver.status()
            lag.add_metric([m.me.name, m.me.name], rs["lag_records"])
            errors.add_metric([m.me.name, "stream_resets"], rs["stream_resets"])
            errors.add_metric([m.me.name, "frames_refused"], rs["frames_refused"])
        yield lag
        yield lag_s
        yield lsn
        yield errors


class Metrics:
    """The Prometheus registry of one member and the few things observed live."""

    def __init__(self, member: MemberServer) -> None:
        self.member = member
        self.registry = CollectorRegistry(auto_describe=False)
        self.journal_write = Histogram(
            "litemirror_journal_write_seconds",
            "Time from a journal record's creation to its fsync (part of every commit).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit = Histogram(
            "litemirror_commit_seconds",
            "Commit latency seen by the member: a one-shot write from arrival to answer, "
            "a transaction's COMMIT from arrival to answer (journal fsync, backup "
            "acknowledgement and SQLite commit included).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        member.commit_observers.append(self.commit.observe)
        self.events = Counter(
            "litemirror_events",
            "Events of this member's event log, by kind and severity.",
            ["member", "kind", "severity"],
            registry=self.registry,
        )
        self.takeovers = Counter(
            "litemirror_takeovers",
            "Times this member opened writes as primary at a new epoch (failover or start).",
            ["member"],
            registry=self.registry,
        )
        self.takeovers.labels(member.me.name)
        self.registry.register(_MemberCollector(member, _CommitTally()))
        self.registry.register(CanaryCollector(member))
        # Events emitted before the metrics existed are not counted: the
        # counter starts at zero with the HTTP server, like a process restart.
        self._last: Event | None = member.events.recent[-1] if member.events.recent else None
        member.jw.on_durable(self._durable)

    def _durable(self, records: list[Record]) -> None:
        now_ms = time.time() * 1000
        for r in records:
            self.journal_write.observe(max(0.0, (now_ms - r.ts_ms) / 1000))

    def poll(self) -> None:
        """Count the events logged since the last poll."""
        recent = list(self.member.events.recent)
        new: list[Event] = []
        for ev in reversed(recent):
            if ev is self._last:
                break
            new.append(ev)
        if recent:
            self._last = recent[-1]
        for ev in reversed(new):
            self.events.labels(ev.member, ev.kind, ev.severity).inc()
            if ev.kind in TAKEOVER_KINDS:
                self.takeovers.labels(ev.member).inc()

    def render(self) -> bytes:
        self.poll()
        return generate_latest(self.registry)
