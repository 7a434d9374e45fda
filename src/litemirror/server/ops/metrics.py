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

from litemirror.server.ops.ports import MetricsSources
from litemirror.server.role import Role

if TYPE_CHECKING:
    from litemirror.journal.record import Record
    from litemirror.server.ops.event_log import Event

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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
    """Gauges and counters read from the sources at scrape time."""

    def __init__(self, sources: MetricsSources, tally: _CommitTally) -> None:
        self.src = sources
        self.tally = tally

    def collect(self) -> Iterator[Metric]:
        src = self.src
        name = src.member
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
            self.tally.update(src.open_databases()),
        )
        expiry = src.certificate_expiry()
        if expiry is not None:
            yield gauge(
                "litemirror_tls_certificate_expiry_timestamp_seconds",
                "When the certificate this member presents expires (Unix time): alert "
                "well before it, and rotate with SIGHUP.",
                expiry,
            )
        j = src.journal()
        yield counter("litemirror_journal_records", "Journal records written.", j.records)
        yield counter("litemirror_journal_fsyncs", "Journal fsyncs (group commits).", j.fsyncs)
        yield counter(
            "litemirror_journal_payload_bytes", "Journal payload bytes written.", j.payload_bytes
        )
        yield gauge("litemirror_journal_bytes", "Bytes of journal on disk.", j.disk_bytes)
        yield gauge("litemirror_journal_segments", "Journal segment files on disk.", j.segments)
        yield gauge("litemirror_lsn", "Last journal LSN of this member.", j.last_lsn)
        yield gauge(
            "litemirror_applied_lsn", "Last LSN applied to the databases.", src.applied_lsn()
        )
        now = src.role()
        yield gauge("litemirror_epoch", "Epoch (term) this member knows.", now.epoch)
        yield gauge("litemirror_writable", "1 while this member accepts commits.", now.writable)
        yield gauge(
            "litemirror_connections",
            "Open client connections.",
            src.connections.open_connections(),
        )
        held, open_now = src.database_counts()
        yield gauge("litemirror_databases", "Databases held.", held)
        yield gauge("litemirror_open_databases", "Databases open now.", open_now)
        yield gauge("litemirror_uptime_seconds", "Seconds since start.", time.time() - src.started)
        yield gauge(
            "litemirror_event_loop_lag_seconds",
            "Worst delay of the event loop in the last minute (heartbeats and the arbiter "
            "session ride on it: keep it far below mirror.qos_timeout_ms).",
            src.loop_lag(),
        )

        role = GaugeMetricFamily(
            "litemirror_role", "1 for the role this member has now.", labels=["member", "role"]
        )
        for r in Role:
            role.add_metric([name, r.value], 1.0 if now.role is r else 0.0)
        yield role

        yield from self._replication(now.role is Role.PRIMARY)

    def _replication(self, primary: bool) -> Iterator[Metric]:
        src = self.src
        me = src.member
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
        if primary:
            for ln in src.replicas(int(time.time() * 1000)):
                lag.add_metric([me, ln.member], ln.lag_records)
                lag_s.add_metric([me, ln.member], ln.lag_seconds)
                for level, value in (
                    ("received", ln.received),
                    ("durable", ln.durable),
                    ("applied", ln.applied),
                ):
                    lsn.add_metric([me, ln.member, level], value)
        rs = src.receiver()
        if rs is not None:
            lag.add_metric([me, me], rs.lag_records)
            errors.add_metric([me, "stream_resets"], rs.stream_resets)
            errors.add_metric([me, "frames_refused"], rs.frames_refused)
        yield lag
        yield lag_s
        yield lsn
        yield errors


class Metrics:
    """The Prometheus registry of one member and the few things observed live.

    Commit latencies go to :meth:`observe_commit` (the wiring hands it to
    whatever sees commits).
    """

    def __init__(self, sources: MetricsSources) -> None:
        self.sources = sources
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
        self.takeovers.labels(sources.member)
        self.registry.register(_MemberCollector(sources, _CommitTally()))
        for collector in sources.collectors:
            self.registry.register(collector)
        # Events emitted before the metrics existed are not counted: the
        # counter starts at zero with the HTTP server, like a process restart.
        recent = sources.recent_events()
        self._last: Event | None = recent[-1] if recent else None
        sources.on_durable(self._durable)

    def observe_commit(self, seconds: float) -> None:
        """One commit's latency as the member saw it."""
        self.commit.observe(seconds)

    def _durable(self, records: list[Record]) -> None:
        now_ms = time.time() * 1000
        for r in records:
            self.journal_write.observe(max(0.0, (now_ms - r.ts_ms) / 1000))

    def poll(self) -> None:
        """Count the events logged since the last poll."""
        recent = list(self.sources.recent_events())
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
