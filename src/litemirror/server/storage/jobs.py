"""Work items queued on a database's writer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from litemirror.engine import policy
from litemirror.engine.capture import ExecResult
from litemirror.errors import DatabaseError
from litemirror.server.storage.statements import StatementGuard

#: The result columns of ``PRAGMA wal_checkpoint``.
CHECKPOINT_COLUMNS: list[tuple[str, str | None]] = [
    ("busy", None),
    ("log", None),
    ("checkpointed", None),
]


@dataclass(slots=True)
class BatchJob:
    """A one-shot unit: one statement, executemany, or a script; committed on its own.

    ``many`` may be iterated more than once: a job runs again when SQLite
    rolled its group back under another job (see ``Database._run_again``).
    """

    kind: str  # "exec" | "many" | "script"
    sql: str
    params: Any = None
    many: Iterable[Any] | None = None
    future: asyncio.Future[tuple[ExecResult, int]] | None = None
    #: The client's time limit and cancel flag (None: the member's own job).
    guard: StatementGuard | None = None


@dataclass(slots=True)
class MaintenanceJob:
    """VACUUM or a WAL checkpoint: runs between group commits, never inside one."""

    kind: str  # "vacuum" | "checkpoint"
    mode: str = ""  # the checkpoint mode
    future: asyncio.Future[tuple[ExecResult, int]] | None = None


@dataclass(slots=True)
class TxnCommand:
    kind: str  # "exec" | "many" | "commit" | "rollback" | "abort" (sql holds the reason)
    ack: str | None = None
    sql: str = ""
    params: Any = None
    many: Iterable[Any] | None = None
    future: asyncio.Future[Any] | None = None


@dataclass(slots=True)
class TxnJob:
    """An interactive transaction: commands arrive one by one from the client."""

    commands: asyncio.Queue[TxnCommand]
    started: asyncio.Future[None]
    #: Set by the writer when the transaction ended (commit, rollback, abort).
    finished: bool = False
    abort_reason: str | None = None


Job = BatchJob | TxnJob | MaintenanceJob


class Late:
    """The answer of a job that committed but whose client gets an error (a stopped script)."""

    __slots__ = ("error",)

    def __init__(self, error: DatabaseError) -> None:
        self.error = error


def future_of(job: Job) -> asyncio.Future[Any] | None:
    """The future that answers ``job``'s client."""
    return job.started if isinstance(job, TxnJob) else job.future


def maintenance_of(sql: str) -> policy.Maintenance | None:
    """VACUUM or a checkpoint sent as one statement (raises for VACUUM INTO)."""
    if policy.first_keyword(sql) not in ("VACUUM", "PRAGMA"):
        return None  # the hot path: one short scan of the first word
    statements = policy.split_statements(sql)
    return policy.maintenance(statements[0]) if len(statements) == 1 else None
