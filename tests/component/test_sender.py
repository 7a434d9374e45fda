"""The primary's sender alone: a replica's hello in, a welcome and records out.

A real journal and registry in a temp dir, a real hub; the replica is the
test, on the other end of an in-memory stream pair.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from litemirror.errors import ProtocolError
from litemirror.journal import Record, RecordKind, decode_record
from litemirror.protocol import replication as r
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.server.role import Role
from litemirror.server.stream.hub import Hub
from litemirror.server.stream.ports import SenderPorts
from litemirror.server.stream.sender import Sender
from litemirror.testing.fakes import End, memory_stream_pair
from litemirror.testing.stream_fakes import Stores, mirror_config


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


def decode_records(data: bytes) -> list[Record]:
    out: list[Record] = []
    offset = 0
    while offset < len(data):
        rec, offset = decode_record(data, offset)
        out.append(rec)
    return out


def hello(**kw: Any) -> r.ReplHello:
    base: dict[str, Any] = {
        "version": r.REPL_VERSION,
        "mirror": "m",
        "member": "b",
        "kind": "failover",
        "last_lsn": 0,
        "last_epoch": 0,
    }
    base.update(kw)
    return r.ReplHello(**base)


class Primary:
    """Member ``a`` as primary at epoch 2, with three records journalled."""

    def __init__(self, tmp: Path, *, role: Role = Role.PRIMARY, epoch: int = 2) -> None:
        cfg = mirror_config(tmp)
        self.stores = s = Stores(cfg, "a", role=role, epoch=epoch)
        s.append(
            (RecordKind.MARKER, "", b"one"),
            (RecordKind.MARKER, "", b"two"),
            (RecordKind.MARKER, "", b"three"),
        )
        self.hub = Hub("b", 5.0, lambda: s.journal.last_lsn)
        self.ports = SenderPorts(
            config=lambda: cfg,
            me=s.me,
            role=s.role,
            event=s.events,
            executor=s.executor,
            journal=s.journal,
            registry=s.registry,
            hub=self.hub,
            current_horizon=lambda: s.journal.last_lsn,
            reload_config=lambda: False,
            importing=lambda _db: False,
        )

    def sender(self, h: r.ReplHello) -> tuple[Sender, End]:
        mine, replica = memory_stream_pair("127.0.0.1:7701", "127.0.0.1:7702")
        sender = Sender(
            self.ports, mine[0], mine[1], FrameDecoder(r.ReplHello), h, "127.0.0.1:7702"
        )
        return sender, replica


class Replica:
    """The test's side: reads what the primary sends."""

    def __init__(self, end: End) -> None:
        self.reader, self.writer = end
        self.decoder: FrameDecoder[Any] = FrameDecoder(r.FromPrimary)

    async def next(self) -> Any:
        while True:
            msg = self.decoder.next_message()
            if msg is not None:
                return msg
            data = await self.reader.read(65536)
            assert data, "the primary closed the connection"
            self.decoder.feed(data)

    def send(self, msg: Any) -> None:
        self.writer.write(encode(msg))


def test_a_replica_is_welcomed_streamed_its_records_and_its_acks_reach_the_hub(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        p = Primary(tmp_path)
        sender, end = p.sender(hello())
        task = asyncio.create_task(sender.run())
        replica = Replica(end)
        welcome = await replica.next()
        assert isinstance(welcome, r.ReplWelcome)
        assert (welcome.mirror, welcome.primary, welcome.epoch) == ("m", "a", 2)
        assert (welcome.mode, welcome.start_lsn, welcome.last_lsn) == ("stream", 1, 3)
        frame = await replica.next()
        assert isinstance(frame, r.ReplRecords)
        recs = list(decode_records(frame.data))
        assert [(x.lsn, x.payload) for x in recs] == [(1, b"one"), (2, b"two"), (3, b"three")]
        assert p.hub.links["b"].state in ("catching up", "streaming")
        replica.send(r.ReplAck(received=3, durable=3, applied=3))
        for _ in range(100):
            if p.hub.links["b"].durable == 3:
                break
            await asyncio.sleep(0.01)
        assert p.hub.links["b"].durable == 3
        assert p.hub.backup_active, "the backup caught up: commits wait for it"
        # A record made durable after the catch-up is pushed from memory.
        (rec,) = await asyncio.get_running_loop().run_in_executor(
            None, p.stores.append, (RecordKind.MARKER, "", b"four")
        )
        p.hub.records_durable([rec])
        frame = await replica.next()
        assert isinstance(frame, r.ReplRecords) and frame.first_lsn == frame.last_lsn == 4
        end[1].close()
        await asyncio.wait_for(task, 2)
        assert "b" not in p.hub.links
        assert p.stores.events.kinds() == []
        await p.stores.close()

    run(go)


@pytest.mark.parametrize(
    ("why", "h", "role", "expected"),
    [
        ("a member of another mirror", hello(mirror="other"), Role.PRIMARY,
         "member belongs to mirror 'other', this is mirror 'm'"),
        ("a member that has seen a newer epoch", hello(last_epoch=3), Role.PRIMARY,
         "member 'b' has seen epoch 3, newer than this primary's 2"),
        ("a member this mirror does not know", hello(member="zz"), Role.PRIMARY,
         "no member named 'zz'"),
        ("a primary that is not primary any more", hello(), Role.BACKUP,
         "this member is backup, not primary"),
    ],
)  # fmt: skip
def test_a_hello_the_primary_must_not_serve_is_refused_and_changes_nothing(
    tmp_path: Path, why: str, h: r.ReplHello, role: Role, expected: str
) -> None:
    async def go() -> None:
        p = Primary(tmp_path, role=role)
        sender, end = p.sender(h)
        with pytest.raises(ProtocolError, match=expected):
            await sender.run()
        assert p.hub.links == {}, why
        assert p.stores.events.kinds() == ["replication_refused"]
        assert expected in p.stores.events.events[0].message
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(end[0].read(1), 0.05)  # nothing was sent
        await p.stores.close()

    run(go)


def test_an_unknown_member_is_asked_of_the_config_file_again(tmp_path: Path) -> None:
    async def go() -> None:
        p = Primary(tmp_path)
        reloads: list[bool] = []

        def reload() -> bool:
            reloads.append(True)
            return False  # the file names no such member either

        p.ports = replace(p.ports, reload_config=reload)
        sender, _ = p.sender(hello(member="zz"))
        with pytest.raises(ProtocolError, match="no member named 'zz'"):
            await sender.run()
        assert reloads == [True]
        await p.stores.close()

    run(go)
