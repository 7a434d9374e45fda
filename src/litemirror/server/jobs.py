"""Work items queued on a database's writer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from litemirror.engine.capture import ExecResult


@dataclass(slots=True)
class BatchJob:
    """A one-shot unit: one statement, executemany, or a script; committed on its own."""

    kind: str  # "exec" | "many" | "script"
    sql: str
    params: Any = None
    many: list[Any] | None = None
    future: asyncio.Future[tuple[ExecResult, int]] | None = None


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
    many: list[Any] | None = None
    future: asyncio.Future[Any] | None = None


@dataclass(slots=True)
class TxnJob:
    """An interactive transaction: commands arrive one by one from the client."""

    commands: asyncio.Queue[TxnCommand]
    started: asyncio.Future[None]
    #: Set by the writer when the transaction ended (commit, rollback, abort).
    finished: bool = False
    abort_reason: str | None = None
