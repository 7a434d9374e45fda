"""A follower's receiver alone: records streamed in, journalled, applied, acknowledged.

A real journal and registry in a temp dir; the primary is the test, on the
other end of an in-memory connection the receiver dials.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from litemirror.journal import RecordKind
from litemirror.protocol import replication as r
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.server.role import Role
from litemirror.server.stream.ports import ReceiverPorts
from litemirror.server.stream.receiver import Receiver
from litemirror.testing.fakes import End
from litemirror.testing.stream_fakes import (
    FailoverGateRecorder,
    MemoryPeers,
    Stores,
    mirror_config,
    record,
    records_frame,
)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


def welcome(epoch: int = 2, last_lsn: int = 2) -> r.ReplWelcome:
    return r.ReplWelcome(
        mirror="m", primary="a", epoch=epoch, first_lsn=1, last_lsn=last_lsn,
        mode="stream", start_lsn=1,
    )  # fmt: skip


CREATE = record(1, 2, RecordKind.CREATE_DB, "app")
CANARY = record(2, 2, RecordKind.MARKER, "", b"canary")


class PrimaryEnd:
    """The test's side of the connection: the primary the receiver dialled."""

    def __init__(self, end: End) -> None:
        self.reader, self.writer = end
        self.decoder: FrameDecoder[Any] = FrameDecoder(r.ReplHello | r.FromMember)

    async def next(self, timeout: float = 2.0) -> Any:
        while True:
            msg = self.decoder.next_message()
            if msg is not None:
                return msg
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, "the receiver closed the connection"
            self.decoder.feed(data)

    async def ack_where(self, done: Callable[[r.ReplAck], bool]) -> r.ReplAck:
        while True:
            msg = await self.next()
            if isinstance(msg, r.ReplAck) and done(msg):
                return msg

    def send(self, msg: Any) -> None:
        self.writer.write(encode(msg))


@dataclass
class Follower:
    stores: Stores
    receiver: Receiver
    gate: FailoverGateRecorder
    epochs: list[int]
    markers: list[bytes]
    primary: PrimaryEnd


@asynccontextmanager
async def follower(tmp: Path, *, epoch: int = 2) -> AsyncIterator[Follower]:
    """Member ``b`` following ``a``; yields once the receiver dialled and said hello."""
    cfg = mirror_config(tmp)
    stores = Stores(cfg, "b", role=Role.BACKUP, epoch=epoch)
    peers = MemoryPeers({"a": {"role": "primary", "epoch": 2}, "d": {"role": "dr"}})
    gate = FailoverGateRecorder()
    epochs: list[int] = []

    def note_epoch(epoch: int) -> None:
        # As the member does without a failover agent: the epoch is this member's now.
        epochs.append(epoch)
        stores.role.set(epoch=epoch)

    markers: list[bytes] = []
    ports = ReceiverPorts(
        config=lambda: cfg,
        me=stores.me,
        role=stores.role,
        event=stores.events,
        executor=stores.executor,
        journal=stores.journal,
        registry=stores.registry,
        failover=gate,
        note_epoch=note_epoch,
        dial=peers.dial,
        status_of=peers.status_of,
        marker_applied=markers.append,
    )
    receiver = Receiver(ports, confirmed=0)
    task = asyncio.create_task(receiver.run())
    try:
        dialled, end = await asyncio.wait_for(peers.accepted.get(), 2)
        assert dialled.name == "a"
        primary = PrimaryEnd(end)
        h = await primary.next()
        assert isinstance(h, r.ReplHello)
        assert (h.mirror, h.member, h.kind, h.last_lsn) == ("m", "b", "failover", 0)
        yield Follower(stores, receiver, gate, epochs, markers, primary)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        receiver.journal_thread.shutdown(wait=True)
        await stores.close()


def test_streamed_records_are_journalled_applied_and_acknowledged(tmp_path: Path) -> None:
    async def go() -> None:
        async with follower(tmp_path) as f:
            f.primary.send(welcome())
            f.primary.send(records_frame(1, [CREATE, CANARY]))
            ack = await f.primary.ack_where(lambda a: a.applied == 2)
            assert (ack.received, ack.durable) == (2, 2)
            assert f.stores.journal.last_lsn == 2
            assert f.stores.registry.exists("app")
            assert f.markers == [b"canary"]
            assert f.receiver.confirmed == 2
            assert f.gate.newer == [] and f.epochs == []

    run(go)


def test_nothing_is_acknowledged_before_the_welcome(tmp_path: Path) -> None:
    async def go() -> None:
        async with follower(tmp_path) as f:
            # Records before the welcome: journalled (a backup applies what it
            # receives), but until the welcome the journal's end may not be the
            # primary's history, so the primary hears nothing of them.
            f.primary.send(records_frame(1, [CREATE]))
            for _ in range(100):
                if f.stores.journal.last_lsn == 1:
                    break
                await asyncio.sleep(0.01)
            assert f.stores.journal.last_lsn == 1
            with pytest.raises(TimeoutError):
                await f.primary.next(timeout=0.1)
            f.primary.send(welcome(last_lsn=1))
            ack = await f.primary.ack_where(lambda a: a.applied == 1)
            assert (ack.received, ack.durable) == (1, 1)
            assert f.stores.registry.exists("app")

    run(go)


def test_no_acknowledgement_while_the_failover_side_forbids_it(tmp_path: Path) -> None:
    async def go() -> None:
        async with follower(tmp_path) as f:
            f.gate.acknowledge = False  # taking over: the old primary hears nothing
            f.primary.send(welcome())
            f.primary.send(records_frame(1, [CREATE, CANARY]))
            with pytest.raises(TimeoutError):
                await f.primary.next(timeout=0.2)
            assert f.stores.journal.last_lsn == 2

    run(go)


def test_a_newer_epoch_is_told_to_the_failover_side_and_noted(tmp_path: Path) -> None:
    async def go() -> None:
        async with follower(tmp_path, epoch=1) as f:
            f.primary.send(welcome(epoch=2))
            f.primary.send(records_frame(1, [CREATE]))
            await f.primary.ack_where(lambda a: a.applied == 1)
            assert f.gate.newer == [(2, "a")]
            assert f.epochs == [2]

    run(go)


def test_a_frame_out_of_sequence_resets_the_stream_and_applies_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        async with follower(tmp_path) as f:
            f.primary.send(welcome())
            f.primary.send(records_frame(2, [CREATE]))  # frame 1 never came
            with pytest.raises(AssertionError, match="closed the connection"):
                await f.primary.next()
            assert f.stores.journal.last_lsn == 0
            assert "stream_reset" in f.stores.events.kinds()
            assert f.receiver.refused == 1

    run(go)
