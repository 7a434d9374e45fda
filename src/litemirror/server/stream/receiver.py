"""A backup, DR or reporting member's side of replication.

Theory of operation
-------------------
The receiver keeps one connection to the primary. Every ``ReplRecords``
frame is checked before anything is done with it — its sequence number,
every record's checksum, LSN continuity with the local journal, epochs
not older than the newest seen — then appended to the member's own journal
(fsynced: that is the ``durable`` acknowledgement) and handed to the
applier, which applies records in order through the same code as crash
recovery (``engine.apply.apply_record``) and reports ``applied``. A frame
that fails a check is refused whole, logged, and the stream is reset by
reconnecting from the local journal's end: nothing is ever skipped.

Because the member journals what it receives, it survives its own crash
(recovery replays the journal end, as on a primary) and can later serve
catch-up itself.

What it applies is bounded by its *commit point* (``confirmed``; rules in
``replication/commit.py``): the backup applies what it receives, ``dr`` and
``reporting`` members only what the primary says is committed. Records in
the journal above the commit point — received early, or a deposed primary's
last records whose fate was unknown — are applied once the primary's start
plan or commit point confirms them, and rolled back without ever having been
visible if the new primary never had them.

It is given :class:`~.ports.ReceiverPorts`, never the member: it finds the
primary by asking the members for their status (``status_of``), dials it
(``dial``), asks the failover side whether it may acknowledge and tells it of
newer epochs (``failover``), and writes only its own journal and databases.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import apsw

from litemirror.config import Member
from litemirror.engine import apply as engine_apply
from litemirror.errors import Error, ProtocolError
from litemirror.journal import Record, RecordKind
from litemirror.protocol import messages as m
from litemirror.protocol import replication as r
from litemirror.protocol.framing import FrameDecoder, encode, read_message
from litemirror.replication import check_frame
from litemirror.replication.commit import follower_confirmed
from litemirror.server.stream.ports import ReceiverPorts
from litemirror.server.stream.seeding import FileReceiver

log = logging.getLogger("litemirror.receiver")

MAX_APPLY_CONNECTIONS = 64
SEED_MARKER = "SEEDING"


class StreamReset(Exception):
    """The stream must restart from the local journal's end."""


class Receiver:
    def __init__(
        self, ports: ReceiverPorts, confirmed: int, missing_imports: list[str] | None = None
    ) -> None:
        """``confirmed``: the member's commit point; every journal record up to it is
        applied to the databases, none after it. ``missing_imports``: imported
        databases whose file recovery did not find (their copies are asked for)."""
        self.p = ports
        self.state = "connecting"
        self.primary: Member | None = None
        self.primary_lsn = 0
        self.received = ports.journal.last_lsn
        self.applied = confirmed
        #: The commit point: records up to here may be applied (made visible).
        self.confirmed = confirmed
        self._failover_kind = ports.me.kind == "failover"
        #: The commit point the primary of this session last sent (dr/reporting).
        self._primary_committed = 0
        #: Acknowledgements wait for the session's welcome: before it, the journal's
        #: end may hold records the primary never had.
        self._welcomed = False
        #: No member answered as primary at the last look.
        self.primary_missing = False
        self.last_contact = 0.0
        self.resets = 0
        self.refused = 0
        self.last_error: str | None = None
        self.journal_thread = ThreadPoolExecutor(1, thread_name_prefix="repl-journal")
        #: Journal records waiting to be applied, in LSN order; applied up to ``confirmed``.
        self._pending: deque[Record] = deque()
        self._apply_wake = asyncio.Event()
        self._conns: OrderedDict[str, apsw.Connection] = OrderedDict()
        self._writer: asyncio.StreamWriter | None = None
        self._seed_files: dict[str, FileReceiver] = {}
        self._seed_waiters: dict[str, asyncio.Future[None]] = {}
        self._applied_cond = asyncio.Condition()
        self._seeding: dict[str, Any] | None = None
        self.missing_imports: list[str] = list(missing_imports or ())

    @property
    def seed_marker(self) -> Path:
        return self.p.me.data_dir / SEED_MARKER

    # ---------------------------------------------------------- main loop

    async def run(self) -> None:
        applier = asyncio.get_running_loop().create_task(self._applier())
        delay = 0.05
        try:
            while True:
                target = await self._find_primary()
                self.primary_missing = target is None
                if target is None:
                    self.state = "waiting for a primary"
                    await asyncio.sleep(min(delay, 1.0))
                    delay = min(delay * 2, 1.0)
                    continue
                try:
                    await self._session(target)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the receiver must outlive any frame
                    if not isinstance(exc, (StreamReset, Error, ConnectionError, OSError)):
                        log.exception("replication from %s failed unexpectedly", target.name)
                    msg = exc.message if isinstance(exc, Error) else str(exc)
                    self.last_error = msg
                    self.resets += 1
                    if isinstance(exc, (StreamReset, ProtocolError)):
                        self.p.event(
                            "stream_reset",
                            f"replication from {target.name} reset: {msg}",
                            severity="error",
                        )
                    else:
                        log.info("replication from %s interrupted: %s", target.name, msg)
                finally:
                    if self._writer is not None:
                        self._writer.close()
                        self._writer = None
                    for fr in self._seed_files.values():
                        fr.abort()
                    self._seed_files.clear()
                self.state = "disconnected"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        finally:
            applier.cancel()
            self._close_conns()

    async def _find_primary(self) -> Member | None:
        best: tuple[int, Member] | None = None
        # Any member may be primary: failover members normally, a promoted dr member
        # after a disaster. The highest epoch wins.
        for mb in self.p.config().members:
            if mb.name == self.p.me.name or mb.kind == "reporting":
                continue
            st = await self.p.status_of(mb)
            if st.get("role") == "primary":
                epoch = int(st.get("epoch", 0))
                if best is None or epoch > best[0]:
                    best = (epoch, mb)
        return best[1] if best else None

    # ------------------------------------------------------------ session

    def _send(self, msg: Any) -> None:
        if isinstance(msg, r.ReplAck) and (
            not self._welcomed or not self.p.failover.may_acknowledge()
        ):
            # Taking over (or waiting): acknowledge nothing of the old primary;
            # before the welcome, the journal's end may not be the primary's.
            return
        if self._writer is not None:
            self._writer.write(encode(msg))

    async def _session(self, target: Member) -> None:
        j = self.p.journal
        reader, writer = await self.p.dial(target)
        self._writer = writer
        self.primary = target
        self.state = "connecting"
        self._welcomed = False
        self._primary_committed = 0
        reseed = self.seed_marker.exists()
        self._send(
            r.ReplHello(
                version=r.REPL_VERSION,
                mirror=self.p.config().mirror.name,
                member=self.p.me.name,
                kind=self.p.me.kind,
                last_lsn=j.last_lsn,
                last_epoch=j.last_epoch,
                reseed=reseed,
                compression="zstd",
            )
        )
        dec: FrameDecoder[Any] = FrameDecoder(
            r.FromPrimary | m.Error, max_frame=self.p.config().limits.max_frame_bytes
        )
        expected_seq = 1
        qos = self.p.config().mirror.qos_timeout_ms / 1000
        hb = self.p.config().mirror.heartbeat_ms / 1000
        last_beat = time.monotonic()

        async def read(n: int) -> bytes:
            try:
                return await asyncio.wait_for(reader.read(n), qos)
            except TimeoutError:
                raise ConnectionError(
                    f"primary {target.name} silent for {qos * 1000:.0f} ms"
                ) from None

        def closed() -> ConnectionError:
            # Torn or not, the end of the stream is the primary gone (killed mid-frame,
            # say): a lost connection, not a protocol error and its stream_reset event.
            return ConnectionError(f"primary {target.name} closed the connection")

        while True:
            msg = await read_message(dec, read, 1024 * 1024, closed=closed)
            self.last_contact = time.monotonic()
            if isinstance(msg, m.Error):
                raise Error(f"primary {target.name} refused replication: {msg.message}")
            if isinstance(msg, r.ReplWelcome):
                if msg.mode == "rewind":
                    await self._rewind(msg.start_lsn - 1)
                    if self.seed_marker.exists():
                        raise StreamReset(
                            "diverged records could not be undone; a base copy follows"
                        )
                if msg.epoch > self.p.role().epoch:
                    self.p.failover.newer_epoch_seen(msg.epoch, msg.primary)
                    self.p.note_epoch(msg.epoch)
                self._welcomed = True
                if msg.mode != "seed":
                    # The journal now ends where the primary's history agrees with it.
                    await self._journal_matches_primary()
                self.primary_lsn = msg.last_lsn
                self.state = "seeding" if msg.mode == "seed" else "catching up"
                log.info(
                    "replicating from %s (%s from LSN %d; primary at LSN %d)",
                    target.name,
                    msg.mode,
                    msg.start_lsn,
                    msg.last_lsn,
                )
                # Ask (again) for the copies still needed: a reconnect loses requests.
                for db in [*self.missing_imports, *self._seed_waiters]:
                    self._send(r.SeedRequest(db=db))
            elif isinstance(msg, r.ReplRecords):
                await self._records(msg, expected_seq)
                expected_seq += 1
            elif isinstance(msg, r.ReplCommitted):
                self._primary_says_committed(msg.lsn)
            elif isinstance(msg, r.Heartbeat):
                self.primary_lsn = max(self.primary_lsn, msg.lsn)
                self._primary_says_committed(msg.committed)
                if self.state == "catching up" and self.received >= msg.lsn:
                    self.state = "streaming"
            elif isinstance(msg, r.SeedBegin):
                await self._seed_begin(msg)
            elif isinstance(msg, r.SeedFile):
                await self._seed_file(msg)
            elif isinstance(msg, r.SeedEnd):
                await self._seed_end(msg)
            now = time.monotonic()
            if now - last_beat >= hb:
                last_beat = now
                self._send(
                    r.ReplAck(received=self.received, durable=j.last_lsn, applied=self.applied)
                )
                await writer.drain()

    # ------------------------------------------------------------ records

    async def _records(self, msg: r.ReplRecords, expected_seq: int) -> None:
        j = self.p.journal
        data = msg.data
        if msg.compressed:
            import zstandard

            try:
                data = zstandard.ZstdDecompressor().decompress(
                    data, max_output_size=self.p.config().limits.max_frame_bytes
                )
            except zstandard.ZstdError as exc:
                self.refused += 1
                raise StreamReset(
                    f"frame {msg.seq} does not decompress ({exc}); nothing of it was applied"
                ) from None
        verdict = check_frame(
            seq=msg.seq,
            expected_seq=expected_seq,
            first_lsn=msg.first_lsn,
            last_lsn=msg.last_lsn,
            data=data,
            journal_last_lsn=j.last_lsn,
            journal_last_epoch=j.last_epoch,
        )
        if verdict.refused is not None:
            self.refused += 1
            raise StreamReset(verdict.refused)
        recs = list(verdict.records)
        if self.primary is not None and recs[-1].epoch > self.p.role().epoch:
            self.p.failover.newer_epoch_seen(recs[-1].epoch, self.primary.name)
            self.p.note_epoch(recs[-1].epoch)
        self.received = recs[-1].lsn
        self._send(r.ReplAck(received=self.received, durable=j.last_lsn, applied=self.applied))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.journal_thread, j.append_records, recs)
        self._send(r.ReplAck(received=self.received, durable=j.last_lsn, applied=self.applied))
        if self.state == "catching up" and self.received >= self.primary_lsn:
            self.state = "streaming"
        self.primary_lsn = max(self.primary_lsn, self.received)
        self._pending.extend(recs)
        self._confirm()

    # ------------------------------------------------------- commit point

    def _confirm(self) -> None:
        """Move the commit point as far as this session allows; wake the applier."""
        new = follower_confirmed(
            self.confirmed,
            failover_kind=self._failover_kind,
            received=self.p.journal.last_lsn,
            primary_committed=self._primary_committed,
        )
        if new != self.confirmed:
            self.confirmed = new
        self._apply_wake.set()

    def _primary_says_committed(self, lsn: int) -> None:
        if lsn > self._primary_committed:
            self._primary_committed = lsn
            self._confirm()

    async def _journal_matches_primary(self) -> None:
        """After the welcome: our journal is a prefix of the primary's history.

        Records of it not applied yet (a deposed primary's last records, or
        records received early) are queued again for the applier, which applies
        them once they are confirmed.
        """
        j = self.p.journal
        start = self.applied + 1
        if j.last_lsn >= start:
            recs = await asyncio.get_running_loop().run_in_executor(
                self.journal_thread, lambda: list(j.read_from(start))
            )
            self._pending = deque(recs)
        else:
            self._pending.clear()
        self._confirm()

    async def _rewind(self, common: int) -> None:
        from litemirror.server.stream.rejoin import CannotRollBack, rollback_divergent

        loop = asyncio.get_running_loop()
        self.state = "rolling back"
        self._drain_queue()
        await self.p.registry.close_all()
        await loop.run_in_executor(self.p.executor, self._close_conns)
        try:
            rep = await loop.run_in_executor(
                self.journal_thread,
                rollback_divergent,
                self.p.journal,
                self.p.registry,
                common,
                self.p.me.data_dir / "diverged",
            )
        except CannotRollBack as exc:
            self.p.event(
                "rejoin_reseed",
                f"{exc.message}; re-seeding from the primary "
                "(the diverged records are kept in the data dir)",
                "warning",
            )
            await loop.run_in_executor(None, self.seed_marker.touch)
            return
        self.received = self.applied = min(self.applied, common)
        if self.confirmed > common:
            self.p.event(
                "committed_rolled_back",
                f"records after LSN {common} that this member had as committed (up to LSN "
                f"{self.confirmed}) were rolled back: the primary was promoted without them",
                "critical",
            )
            self.confirmed = common
        if rep.removed:
            self.p.event(
                "rejoin_rolled_back",
                rep.sentence(),
                "warning",
                kept_file=str(rep.kept_file),
                tables=rep.databases,
            )

    # ------------------------------------------------------------ applying

    async def wait_applied(self, lsn: int, timeout: float) -> bool:
        async with self._applied_cond:
            try:
                await asyncio.wait_for(
                    self._applied_cond.wait_for(lambda: self.applied >= lsn), timeout
                )
            except TimeoutError:
                return False
        return True

    def _conn(self, db: str) -> apsw.Connection:
        c = self._conns.get(db)
        if c is not None:
            self._conns.move_to_end(db)
            return c
        while len(self._conns) >= MAX_APPLY_CONNECTIONS:
            _, old = self._conns.popitem(last=False)
            old.close()
        c = engine_apply.open_apply_connection(str(self.p.registry.path(db)))
        self._conns[db] = c
        return c

    def _close_conns(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    def _apply_one(self, rec: Record) -> None:
        reg = self.p.registry
        if rec.kind == RecordKind.CHANGES:
            if reg.exists(rec.db):
                engine_apply.apply_record(self._conn(rec.db), rec.lsn, rec.payload)
        elif rec.kind == RecordKind.CREATE_DB and not reg.exists(rec.db):
            reg.create_file(rec.db)
            reg.set_lsn(rec.db, rec.lsn)
            reg.add_name(rec.db)
        elif rec.kind == RecordKind.MARKER:
            self.p.marker_applied(rec.payload)

    async def _applier(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._apply_wake.wait()
            self._apply_wake.clear()
            while self._pending and self._pending[0].lsn <= self.confirmed:
                batch: list[Record] = []
                while self._pending and len(batch) < 256 and self._pending[0].lsn <= self.confirmed:
                    batch.append(self._pending.popleft())
                for rec in batch:
                    if rec.lsn <= self.applied:
                        continue
                    if rec.kind == RecordKind.IMPORT_DB and not self.p.registry.exists(rec.db):
                        await self._fetch_database(rec.db)
                    else:
                        try:
                            await loop.run_in_executor(self.p.executor, self._apply_one, rec)
                        except Error as exc:
                            # The copy no longer matches the primary: never guess; re-seed.
                            self.p.event(
                                "apply_failed",
                                f"applying record {rec.lsn} to "
                                f"{rec.db} failed: {exc.message}; this member will be "
                                "re-seeded",
                                severity="critical",
                            )
                            await loop.run_in_executor(None, self.seed_marker.touch)
                            if self._writer is not None:
                                self._writer.close()
                            self._drain_queue()
                            break
                    self.applied = rec.lsn
                async with self._applied_cond:
                    self._applied_cond.notify_all()
                self._send(
                    r.ReplAck(
                        received=self.received,
                        durable=self.p.journal.last_lsn,
                        applied=self.applied,
                    )
                )

    def _drain_queue(self) -> None:
        self._pending.clear()

    async def _fetch_database(self, db: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seed_waiters[db] = fut
        self._send(r.SeedRequest(db=db))
        log.info("asking the primary for a copy of database %s", db)
        await fut

    # ------------------------------------------------------------- seeding

    async def _seed_begin(self, msg: r.SeedBegin) -> None:
        loop = asyncio.get_running_loop()
        self.state = "seeding"
        self._seeding = {
            "start_lsn": msg.start_lsn,
            "epoch": msg.epoch,
            "databases": list(msg.databases),
            "done": 0,
        }
        self.p.event(
            "seeding_started",
            f"receiving a base copy of {len(msg.databases)} database(s) from LSN {msg.start_lsn}",
        )
        # Wait for the applier to go idle, then close everything that holds the files.
        self._drain_queue()
        await loop.run_in_executor(None, self.seed_marker.touch)
        await self.p.registry.close_all()
        await loop.run_in_executor(self.p.executor, self._close_conns)

    async def _seed_file(self, msg: r.SeedFile) -> None:
        loop = asyncio.get_running_loop()
        fr = self._seed_files.get(msg.db)
        if fr is None:
            self.p.registry.validate_name(msg.db)
            fr = FileReceiver(self.p.registry.path(msg.db))
            self._seed_files[msg.db] = fr
        await loop.run_in_executor(self.p.executor, fr.write, msg.offset, msg.data)
        if not msg.last:
            return
        del self._seed_files[msg.db]
        await self.p.registry.forget_quietly(msg.db)
        await loop.run_in_executor(self.p.executor, self._drop_conn, msg.db)
        await loop.run_in_executor(self.p.executor, fr.finish, msg.size, msg.checksum)
        self.p.registry.add_name(msg.db)
        if self._seeding is not None:
            self._seeding["done"] += 1
        waiter = self._seed_waiters.pop(msg.db, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
            log.info("database %s installed from the primary's copy (LSN %d)", msg.db, msg.lsn)
        if msg.db in self.missing_imports:
            self.missing_imports.remove(msg.db)

    def _drop_conn(self, db: str) -> None:
        c = self._conns.pop(db, None)
        if c is not None:
            c.close()

    async def _seed_end(self, msg: r.SeedEnd) -> None:
        loop = asyncio.get_running_loop()
        seeding = self._seeding or {}
        keep = set(seeding.get("databases", []))
        for name in self.p.registry.names():
            if name not in keep:
                await self.p.registry.drop_files(name)
        j = self.p.journal
        await loop.run_in_executor(
            self.journal_thread,
            lambda: j.restart_at(msg.start_lsn + 1, epoch=int(seeding.get("epoch", 1))),
        )
        self.received = self.applied = msg.start_lsn
        # The copy holds only what the primary had committed in its databases.
        self.confirmed = msg.start_lsn
        self._seeding = None
        await loop.run_in_executor(None, self.seed_marker.unlink)
        self.state = "catching up"
        self.p.event(
            "seeding_finished", f"base copy installed; streaming from LSN {msg.start_lsn + 1}"
        )

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "primary": self.primary.name if self.primary else None,
            "primary_lsn": self.primary_lsn,
            "received_lsn": self.received,
            "durable_lsn": self.p.journal.last_lsn,
            "applied_lsn": self.applied,
            "confirmed_lsn": self.confirmed,
            "lag_records": max(0, self.primary_lsn - self.applied),
            "last_contact_s": round(time.monotonic() - self.last_contact, 3)
            if self.last_contact
            else None,
            "stream_resets": self.resets,
            "frames_refused": self.refused,
            "last_error": self.last_error,
        }
        if self._seeding is not None:
            out["seeding"] = dict(self._seeding)
        return out
