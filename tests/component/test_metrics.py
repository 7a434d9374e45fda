"""The metrics text from fake sources: no member, no journal, no sockets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from litemirror.journal import Record
from litemirror.server.ops.event_log import Event
from litemirror.server.ops.metrics import Metrics
from litemirror.server.ops.ports import (
    JournalFigures,
    MetricsSources,
    ReceiverFigures,
    ReplicaFigures,
)
from litemirror.server.role import Role, RoleCell
from litemirror.testing.front_fakes import FakeConnections


@dataclass(eq=False)
class _Db:
    commits: int


def _sources(
    role: RoleCell, events: list[Event], dbs: list[_Db], listeners: list[object]
) -> MetricsSources:
    def on_durable(listener: Callable[[list[Record]], None]) -> None:
        listeners.append(listener)

    return MetricsSources(
        member="a",
        role=role,
        started=0.0,
        connections=FakeConnections(3),
        journal=lambda: JournalFigures(10, 4, 500, 4096, 2, 10),
        applied_lsn=lambda: 9,
        open_databases=lambda: dbs,
        database_counts=lambda: (5, 2),
        certificate_expiry=lambda: None,
        loop_lag=lambda: 0.25,
        replicas=lambda _now: [ReplicaFigures("b", 1, 0.5, 10, 10, 9)],
        receiver=lambda: ReceiverFigures(0, 2, 1),
        recent_events=lambda: events,
        on_durable=on_durable,
    )


def _lines(metrics: Metrics) -> set[str]:
    return {ln for ln in metrics.render().decode().splitlines() if not ln.startswith("#")}


def test_metrics_text_from_sources() -> None:
    role = RoleCell()
    role.set(role=Role.PRIMARY, epoch=7, writable=True)
    events = [Event(1.0, "a", "started", "info", "before the metrics")]
    dbs = [_Db(3), _Db(4)]
    listeners: list[object] = []
    metrics = Metrics(_sources(role, events, dbs, listeners))
    assert len(listeners) == 1  # journal write latency is observed on durable batches
    metrics.observe_commit(0.003)
    events.append(Event(2.0, "a", "writes_open", "info", "primary at epoch 7"))
    lines = _lines(metrics)
    for want in (
        'litemirror_commits_total{member="a"} 7.0',
        'litemirror_journal_records_total{member="a"} 10.0',
        'litemirror_journal_segments{member="a"} 2.0',
        'litemirror_lsn{member="a"} 10.0',
        'litemirror_applied_lsn{member="a"} 9.0',
        'litemirror_epoch{member="a"} 7.0',
        'litemirror_writable{member="a"} 1.0',
        'litemirror_connections{member="a"} 3.0',
        'litemirror_databases{member="a"} 5.0',
        'litemirror_open_databases{member="a"} 2.0',
        'litemirror_event_loop_lag_seconds{member="a"} 0.25',
        'litemirror_role{member="a",role="primary"} 1.0',
        'litemirror_role{member="a",role="backup"} 0.0',
        'litemirror_replication_lag_records{member="a",replica="b"} 1.0',
        'litemirror_replica_lsn{level="applied",member="a",replica="b"} 9.0',
        'litemirror_replication_errors_total{kind="stream_resets",member="a"} 2.0',
        "litemirror_commit_seconds_count 1.0",
        # Only the event logged after the metrics existed is counted.
        'litemirror_events_total{kind="writes_open",member="a",severity="info"} 1.0',
        'litemirror_takeovers_total{member="a"} 1.0',
    ):
        assert want in lines, want
    assert not any("started" in ln for ln in lines)
    assert not any("tls_certificate" in ln for ln in lines)


def test_commits_stay_monotonic_when_a_database_closes() -> None:
    role = RoleCell()
    dbs = [_Db(3), _Db(4)]
    metrics = Metrics(_sources(role, [], dbs, []))
    assert 'litemirror_commits_total{member="a"} 7.0' in _lines(metrics)
    dbs.pop()  # closed: its commits still count
    dbs[0].commits = 5
    lines = _lines(metrics)
    assert 'litemirror_commits_total{member="a"} 9.0' in lines
    # Not primary: no replica series, the role gauge follows the snapshot.
    assert 'litemirror_role{member="a",role="starting"} 1.0' in lines
    assert not any('replica="b"' in ln for ln in lines)
