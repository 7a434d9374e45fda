"""The primary's side of one replication connection (see protocol/replication.py).

One :class:`Sender` runs per connected member. It validates the member
(``replication.accept``), decides whether the member can stream from where it
is or needs a base copy (``replication.start``), then runs two tasks: the
*streamer*, which sends records — from the journal files while the member is
behind, then straight from memory as the journal writer makes them durable —
and the *listener*, which reads acknowledgements, heartbeats and requests for
database copies.

It is given :class:`~.ports.SenderPorts`, never the member: the config, the
role snapshot, the journal, the registry, the hub and a few callables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from litemirror.errors import Error, JournalError, ProtocolError
from litemirror.journal import Record, encode_record
from litemirror.protocol import replication as r
from litemirror.protocol.framing import FrameDecoder, encode, read_message
from litemirror.replication.accept import Refusal, Verdict, accept_hello
from litemirror.replication.start import plan_start
from litemirror.server.stream.hub import LinkState
from litemirror.server.stream.ports import SenderPorts, ServeReplica
from litemirror.server.stream.seeding import chunks, make_copy

log = logging.getLogger("litemirror.sender")

MAX_FRAME_RECORDS_BYTES = 1024 * 1024


class Sender:
    def __init__(
        self,
        ports: SenderPorts,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: FrameDecoder[Any],
        hello: r.ReplHello,
        peer: str,
    ) -> None:
        self.p = ports
        self.reader = reader
        self.writer = writer
        self.decoder = decoder
        self.hello = hello
        self.peer = peer
        self.seq = 0
        self.link = LinkState(
            member=hello.member, kind=hello.kind, address=peer, closer=writer.close
        )
        self._live: deque[Record] = deque()
        self._zstd: Any = None
        self._wake = asyncio.Event()
        #: dr and reporting members apply only committed records: tell them the
        #: commit point whenever it moves (the backup applies what it receives).
        self._tells_commits = hello.kind != "failover"
        self._committed_sent = 0

    # ------------------------------------------------------------ checks

    def _refuse(self, why: str) -> Error:
        log.error("refusing replication from %s (%s): %s", self.hello.member, self.peer, why)
        self.p.event(
            "replication_refused",
            f"refused member {self.hello.member!r} from {self.peer}: {why}",
            severity="error",
        )
        return ProtocolError(why)

    def _validate(self) -> None:
        """Refuse the hello unless this primary streams to its member (``replication.accept``)."""
        verdict = self._verdict()
        if verdict.refused is Refusal.UNKNOWN_MEMBER and self.p.reload_config():
            # A member added to the config file since it was read.
            verdict = self._verdict()
        if not verdict.accepted:
            raise self._refuse(verdict.reason)

    def _verdict(self) -> Verdict:
        cfg, now = self.p.config(), self.p.role()
        return accept_hello(
            self.hello,
            mirror=cfg.mirror.name,
            kinds={mb.name: mb.kind for mb in cfg.members},
            me=self.p.me.name,
            connected=self.p.hub.links,
            role=now.role,
            epoch=now.epoch,
        )

    def _epoch_at(self, lsn: int) -> int:
        rec = next(iter(self.p.journal.read_from(lsn)), None)
        return rec.epoch if rec is not None else -1

    def _plan(self) -> tuple[str, int]:
        """Where the member's stream starts (``replication.start``); reads the journal."""
        j = self.p.journal
        return plan_start(
            self.hello.last_lsn,
            self.hello.last_epoch,
            reseed=self.hello.reseed,
            first_lsn=j.first_lsn,
            last_lsn=j.last_lsn,
            epoch_at=self._epoch_at,
        )

    # --------------------------------------------------------------- run

    async def run(self) -> None:
        self._validate()
        if self.hello.compression == "zstd" and self._member_config().compress_stream:
            import zstandard

            self._zstd = zstandard.ZstdCompressor(level=1)
            self.link.compression = "zstd"
        mode, start = await asyncio.get_running_loop().run_in_executor(self.p.executor, self._plan)
        seed = mode == "seed"
        j = self.p.journal
        hub = self.p.hub
        hub.connected(self.link)
        hub.subscribe(
            self.link.member,
            self._push,
            self._wake.set if self._tells_commits else None,
        )
        if mode == "rewind":
            log.info(
                "member %s holds records after LSN %d that this primary never had; "
                "it rolls them back",
                self.link.member,
                start - 1,
            )
        self._send(
            r.ReplWelcome(
                mirror=self.p.config().mirror.name,
                primary=self.p.me.name,
                epoch=self.p.role().epoch,
                first_lsn=j.first_lsn or 0,
                last_lsn=j.last_lsn,
                mode=mode,
                compression="zstd" if self._zstd is not None else "off",
                start_lsn=start,
            )
        )
        reason = "connection closed"
        listener = asyncio.get_running_loop().create_task(self._listen())
        try:
            if seed:
                start = await self._seed_all()
            streamer = asyncio.get_running_loop().create_task(self._stream(start))
            done, _ = await asyncio.wait({listener, streamer}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = t.exception()
                if exc is not None:
                    reason = str(exc)
            streamer.cancel()
        except (ConnectionError, Error) as exc:
            reason = str(exc)
        finally:
            listener.cancel()
            await hub.disconnected(self.link.member, reason)

    def _send(self, msg: Any) -> None:
        self.writer.write(encode(msg))

    def _push(self, records: list[Record]) -> None:
        self._live.extend(records)
        self._wake.set()

    # ---------------------------------------------------------- seeding

    async def _send_database(self, name: str) -> int:
        loop = asyncio.get_running_loop()
        src = self.p.registry.path(name)
        tmp = self.p.me.data_dir / "seed" / f"{self.link.member}-{name}.copy"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            lsn = await loop.run_in_executor(self.p.executor, make_copy, src, tmp)
            it = iter(chunks(tmp))
            while True:
                part = await loop.run_in_executor(self.p.executor, next, it, None)
                if part is None:
                    break
                offset, data, last, size, digest = part
                self._send(
                    r.SeedFile(
                        db=name,
                        offset=offset,
                        data=data,
                        last=last,
                        size=size,
                        checksum=digest,
                        lsn=lsn,
                    )
                )
                self.link.seed_done += len(data)
                await self.writer.drain()
            return lsn
        finally:
            tmp.unlink(missing_ok=True)

    async def _seed_all(self) -> int:
        self.link.state = "seeding"
        # Every record up to the horizon is committed in its database, so
        # copies taken from now on contain them all; the stream resumes after it.
        start_lsn = self.p.current_horizon()
        names = self.p.registry.names()
        self.link.seed_total = sum(self.p.registry.path(n).stat().st_size for n in names)
        self.link.seed_done = 0
        self.p.event(
            "seeding_started",
            f"base copy of {len(names)} database(s) to member "
            f"{self.link.member} from LSN {start_lsn}",
        )
        self._send(r.SeedBegin(start_lsn=start_lsn, epoch=self.p.role().epoch, databases=names))
        for name in names:
            await self._send_database(name)
        self._send(r.SeedEnd(start_lsn=start_lsn))
        await self.writer.drain()
        self.p.event(
            "seeding_finished",
            f"base copy to member {self.link.member} sent; streaming from LSN {start_lsn + 1}",
        )
        return start_lsn + 1

    # --------------------------------------------------------- streaming

    def _read_batch(self, start: int) -> list[Record]:
        out: list[Record] = []
        size = 0
        try:
            for rec in self.p.journal.read_from(start):
                out.append(rec)
                size += len(rec.payload) + 64
                if size >= MAX_FRAME_RECORDS_BYTES:
                    break
        except JournalError:
            raise
        return out

    def _member_config(self) -> Any:
        return self.p.config().member(self.hello.member)

    async def _send_records(self, records: list[Record]) -> None:
        self.seq += 1
        data = b"".join(encode_record(x) for x in records)
        compressed = False
        if self._zstd is not None and len(data) > 512:
            packed = self._zstd.compress(data)
            if len(packed) < len(data):
                data, compressed = packed, True
        self.link.bytes_sent += len(data)
        self._send(
            r.ReplRecords(
                seq=self.seq,
                first_lsn=records[0].lsn,
                last_lsn=records[-1].lsn,
                data=data,
                compressed=compressed,
            )
        )
        await self.writer.drain()

    async def _stream(self, next_lsn: int) -> None:
        loop = asyncio.get_running_loop()
        j = self.p.journal
        self.link.state = "catching up"
        hb = self.p.config().mirror.heartbeat_ms / 1000
        while True:
            # Behind: read from the journal files.
            while next_lsn <= j.last_lsn:
                batch = await loop.run_in_executor(self.p.executor, self._read_batch, next_lsn)
                if not batch:
                    break
                await self._send_records(batch)
                next_lsn = batch[-1].lsn + 1
            while self._live and self._live[0].lsn < next_lsn:
                self._live.popleft()
            if self.link.state == "catching up" and next_lsn > j.last_lsn:
                self.link.state = "streaming"
                await self.p.hub.acked(self.link.member, 0, 0, 0)  # re-check activation
            await self._send_committed()
            # Caught up: send from memory as records become durable.
            if not self._live:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), hb)
                except TimeoutError:
                    self._send(
                        r.Heartbeat(
                            lsn=j.last_lsn,
                            epoch=self.p.role().epoch,
                            ts_ms=int(time.time() * 1000),
                            committed=self.p.hub.committed_lsn,
                        )
                    )
                    await self.writer.drain()
                    continue
            if self._live and self._live[0].lsn == next_lsn:
                batch = []
                size = 0
                while self._live and size < MAX_FRAME_RECORDS_BYTES:
                    rec = self._live.popleft()
                    if rec.lsn != next_lsn + len(batch):
                        self._live.appendleft(rec)
                        break
                    batch.append(rec)
                    size += len(rec.payload)
                await self._send_records(batch)
                next_lsn = batch[-1].lsn + 1
            # A gap (or records older than next_lsn) sends us back to the files.

    async def _send_committed(self) -> None:
        """Tell a dr/reporting member the commit point, if it moved since last told."""
        committed = self.p.hub.committed_lsn
        if self._tells_commits and committed > self._committed_sent:
            self._committed_sent = committed
            self._send(r.ReplCommitted(lsn=committed))
            await self.writer.drain()

    # ---------------------------------------------------------- listening

    async def _listen(self) -> None:
        self.decoder.set_kind(r.FromMember)
        while True:
            msg = await read_message(
                self.decoder,
                self.reader.read,
                65536,
                closed=lambda: ConnectionError("member closed the connection"),
            )
            if isinstance(msg, r.ReplAck):
                await self.p.hub.acked(self.link.member, msg.received, msg.durable, msg.applied)
            elif isinstance(msg, r.Heartbeat):
                self.p.hub.heard_from(self.link.member)
            elif isinstance(msg, r.SeedRequest):
                # An import is journalled (and streamed) just before its file is
                # in place: give it a moment.
                for _ in range(600):
                    if self.p.registry.exists(msg.db) or not self.p.importing(msg.db):
                        break
                    await asyncio.sleep(0.1)
                if not self.p.registry.exists(msg.db):
                    raise ProtocolError(f"member asked for unknown database {msg.db!r}")
                log.info("sending a copy of database %s to member %s", msg.db, self.link.member)
                await self._send_database(msg.db)


def replica_server(ports: SenderPorts) -> ServeReplica:
    """What a client session calls with a ``ReplHello``: one :class:`Sender`, run to its end."""

    async def serve(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: FrameDecoder[Any],
        hello: r.ReplHello,
        peer: str,
    ) -> None:
        await Sender(ports, reader, writer, decoder, hello, peer).run()

    return serve
