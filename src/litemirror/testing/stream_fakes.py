"""Fakes for the replication components' ports (:mod:`litemirror.server.stream.ports`).

A component test builds a :class:`~litemirror.server.stream.sender.Sender`,
:class:`~litemirror.server.stream.receiver.Receiver` or
:class:`~litemirror.server.stream.hub.Hub` with a real journal and registry
in a temporary directory and these in place of the member:

- :func:`mirror_config` is a frozen :class:`~litemirror.config.Config` of a
  small mirror (members ``a``, ``b`` failover, ``d`` dr) whose data lives
  under one directory.
- :class:`FailoverGateRecorder` answers ``may_acknowledge`` as told and keeps
  every newer epoch it was told of.
- :class:`MemoryPeers` stands for the other members: what each says of itself
  (``status_of``), and a ``dial`` that hands the dialled member's end of a
  :func:`~litemirror.testing.fakes.memory_stream_pair` to the test.
- :class:`Stores` is one member's journal, registry, executor, role cell and
  event recorder, real, in its data directory.
- :func:`record` / :func:`records_frame` build what a primary streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litemirror.config import Config, Member, build
from litemirror.journal import Journal, NewRecord, Record, RecordKind, encode_record
from litemirror.protocol import replication as r
from litemirror.server.role import Role, RoleCell, RoleSnapshot
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.registry import Registry
from litemirror.testing.fakes import End, EventRecorder, memory_stream_pair


def mirror_config(root: Path, *, qos_timeout_ms: int = 300, heartbeat_ms: int = 100) -> Config:
    """A mirror ``m`` of members ``a``/``b`` (failover) and ``d`` (dr) with data under ``root``."""
    members = [
        {
            "name": name,
            "address": f"127.0.0.1:{7700 + i}",
            "data_dir": str(root / name),
            "kind": kind,
        }
        for i, (name, kind) in enumerate((("a", "failover"), ("b", "failover"), ("d", "dr")), 1)
    ]
    data: dict[str, Any] = {
        "mirror": {
            "name": "m",
            "databases": [],
            "qos_timeout_ms": qos_timeout_ms,
            "heartbeat_ms": heartbeat_ms,
        },
        "members": members,
    }
    return build(data, path=root / "mirror.toml", environ={})


@dataclass
class FailoverGateRecorder:
    """A :class:`~litemirror.server.stream.ports.FailoverGate` for tests."""

    acknowledge: bool = True
    newer: list[tuple[int, str]] = field(default_factory=list)

    def may_acknowledge(self) -> bool:
        return self.acknowledge

    def newer_epoch_seen(self, epoch: int, holder: str) -> None:
        self.newer.append((epoch, holder))


class MemoryPeers:
    """The other members, in memory: their status and connections to them."""

    def __init__(self, statuses: dict[str, dict[str, Any]] | None = None) -> None:
        #: What each member (by name) says of itself; absent: it does not answer.
        self.statuses: dict[str, dict[str, Any]] = dict(statuses or {})
        #: The dialled member's ends of the connections opened, in order.
        self.accepted: asyncio.Queue[tuple[Member, End]] = asyncio.Queue()

    async def status_of(self, member: Member) -> dict[str, Any]:
        return dict(self.statuses.get(member.name, {}))

    async def dial(self, member: Member) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if member.name not in self.statuses:
            raise ConnectionRefusedError(f"member {member.name} does not answer")
        mine, theirs = memory_stream_pair(b_name=member.address)
        await self.accepted.put((member, theirs))
        return mine


def record(lsn: int, epoch: int, kind: RecordKind, db: str, payload: bytes = b"") -> Record:
    return Record(lsn, epoch, kind, db, int(time.time() * 1000), payload)


def records_frame(seq: int, records: Iterable[Record]) -> r.ReplRecords:
    """The frame a primary sends for ``records`` (uncompressed)."""
    recs = list(records)
    return r.ReplRecords(
        seq=seq,
        first_lsn=recs[0].lsn,
        last_lsn=recs[-1].lsn,
        data=b"".join(encode_record(x) for x in recs),
    )


class Stores:
    """One member's real journal and registry in its data dir; build inside a running loop.

    ``role`` starts as ``role`` at ``epoch``; ``events`` records what the
    member's components report. :meth:`close` when done.
    """

    def __init__(self, config: Config, name: str, *, role: Role, epoch: int = 1) -> None:
        self.config = config
        self.me = config.member(name)
        self.role = RoleCell(
            RoleSnapshot(role=role, state="active", epoch=epoch, writable=role is Role.PRIMARY)
        )
        self.events = EventRecorder()
        self.executor = ThreadPoolExecutor(2, thread_name_prefix=f"test-{name}")
        self.journal = Journal.open(self.me.data_dir / "journal", fsync=False)
        self.writer = JournalWriter(self.journal, asyncio.get_running_loop())
        self.registry = Registry(
            self.me.data_dir,
            executor=self.executor,
            journal=self.writer,
            epoch=lambda: self.role().epoch,
            server=config.server,
            on_commit=lambda _db, _lsn: None,
            writable=lambda: self.role().writable,
        )

    def append(self, *kinds: tuple[RecordKind, str, bytes]) -> list[Record]:
        """Journal records of the current epoch (blocking; the journal is not shared yet)."""
        now = int(time.time() * 1000)
        epoch = self.role().epoch
        return self.journal.append([NewRecord(epoch, k, db, now, p) for k, db, p in kinds])

    async def close(self) -> None:
        await self.registry.close_all()
        self.writer.close()
        self.executor.shutdown(wait=True)
        self.journal.close()
