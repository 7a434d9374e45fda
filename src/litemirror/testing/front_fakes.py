"""Fakes of the front's ports (:mod:`litemirror.server.front.ports`) for component tests.

:class:`FrontRig` holds a real journal and registry in a temporary
directory (files, not processes) and builds a
:class:`~litemirror.server.front.ports.SessionContext` whose other ports are
the small fakes below; :class:`Client` speaks the wire protocol over one end
of :func:`litemirror.testing.fakes.memory_stream_pair`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from litemirror.config import Config, Member, build
from litemirror.errors import UnavailableError
from litemirror.journal import Journal
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode, read_message
from litemirror.security.roles import Principal
from litemirror.server.front.admin import Admin, DatabaseCreator
from litemirror.server.front.ports import SessionContext
from litemirror.server.front.users import Users
from litemirror.server.role import Role, RoleCell
from litemirror.server.storage.backups import BackupTaker
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.registry import Registry
from litemirror.server.storage.scheduled_backups import ScheduledBackups
from litemirror.server.storage.statements import ShutdownFlag, StatementGuard

from .fakes import EventRecorder

__all__ = [
    "Client",
    "FakeConnections",
    "FakeFailover",
    "FakeLimits",
    "FakeStatus",
    "FrontRig",
    "front_config",
]


def front_config(data_dir: Path, **limits: Any) -> Config:
    """A one-member mirror ``m`` with its data in ``data_dir``; ``limits`` override [limits]."""
    cfg = build(
        {
            "mirror": {"name": "test", "databases": []},
            "members": [{"name": "a", "address": "127.0.0.1:7701", "data_dir": str(data_dir)}],
        },
        environ={},
    )
    if limits:
        # Straight into the frozen section: a test may use timeouts the loader refuses.
        cfg = msgspec.structs.replace(cfg, limits=msgspec.structs.replace(cfg.limits, **limits))
    return cfg


class FakeLimits:
    """Connection limits that admit everyone, or refuse with ``refuse`` when it is set."""

    def __init__(self) -> None:
        self.hellos = 0
        self.admitted: list[Principal | None] = []
        self.refuse: UnavailableError | None = None

    def hello(self, writer: asyncio.StreamWriter) -> None:
        self.hellos += 1

    def admit(
        self, writer: asyncio.StreamWriter, principal: Principal | None
    ) -> UnavailableError | None:
        self.admitted.append(principal)
        return self.refuse


@dataclasses.dataclass
class FakeStatus:
    """A status source answering a fixed mapping (and remembering who asked)."""

    info: dict[str, Any] = dataclasses.field(default_factory=lambda: {"role": "primary"})
    viewers: list[Principal | None] = dataclasses.field(default_factory=list)

    def status(self, viewer: Principal | None = None) -> dict[str, Any]:
        self.viewers.append(viewer)
        return dict(self.info)


@dataclasses.dataclass
class FakeFailover:
    """Failover actions that only record what they were asked."""

    calls: list[tuple[str, tuple[Any, ...]]] = dataclasses.field(default_factory=list)

    async def switchover(self, to: str, timeout: float) -> dict[str, Any]:
        self.calls.append(("switchover", (to, timeout)))
        return {"to": to}

    async def promote(self, to_primary: bool) -> dict[str, Any]:
        self.calls.append(("promote", (to_primary,)))
        return {"promoted": to_primary}

    async def force_promote(self, confirm: str, dry_run: bool) -> dict[str, Any]:
        self.calls.append(("force_promote", (confirm, dry_run)))
        return {"forced": not dry_run}


class FrontRig:
    """A real journal, registry, users and admin in ``data_dir``; the rest fakes.

    Build inside a running loop; ``close()`` at the end. ``role`` is the
    member's role cell (primary and writable unless the test changes it).
    """

    def __init__(self, data_dir: Path, config: Config | None = None) -> None:
        self.config = config or front_config(data_dir)
        self.me: Member = self.config.members[0]
        self.role = RoleCell()
        self.role.set(role=Role.PRIMARY, state="active", writable=True, reason="test")
        self.events = EventRecorder()
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-sqlite")
        self.read_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-read")
        self.journal = Journal.open(data_dir / "journal", fsync=False)
        self.jw = JournalWriter(self.journal, asyncio.get_running_loop())
        self.registry = Registry(
            data_dir,
            executor=self.executor,
            journal=self.jw,
            epoch=lambda: self.role().epoch,
            server=self.config.server,
            on_commit=lambda _db, _lsn: None,
            writable=lambda: self.role().writable,
            read_executor=self.read_executor,
        )
        self.creator = DatabaseCreator(
            self.registry, self.jw, self.executor, lambda: self.role().epoch
        )
        self.users = Users(
            config=lambda: self.config,
            me=self.me,
            databases=self.registry,
            create_database=self.creator.create,
            event=self.events,
            events=self,
            primary_address=self.primary_address,
        )
        self.failover = FakeFailover()
        self.stopping = ShutdownFlag()
        self.admin = Admin(
            me=self.me,
            role=self.role,
            primary_address=self.primary_address,
            registry=self.registry,
            databases=self.creator,
            import_database=self._no_import,
            users=self.users,
            failover=self.failover,
            journal_switch=lambda: self.jw.call(lambda j: j.switch()),
            wait_applied=self._wait_applied,
            applied_lsn=lambda: self.journal.last_lsn,
            read_wait_s=1.0,
            read_executor=self.read_executor,
            stopping=self.stopping,
            backups=ScheduledBackups(
                taker=BackupTaker(
                    mirror=self.config.mirror.name,
                    member=self.me.name,
                    root=data_dir / "backups",
                    names=self.registry.names,
                    path_of=self.registry.path,
                    read_executor=self.read_executor,
                    journal_lsn=lambda: self.journal.last_lsn,
                    epoch=lambda: self.role().epoch,
                    event=self.events,
                    stopping=self.stopping,
                ),
                read_executor=self.read_executor,
                event=self.events,
            ),
        )
        self.limits = FakeLimits()
        self.status = FakeStatus()
        self.commits: list[float] = []
        self.finished: list[StatementGuard] = []
        self.sessions: list[str] = []
        self.refused: list[tuple[str, str]] = []
        self.replicas: list[str] = []

    def primary_address(self) -> str | None:
        return self.me.address if self.role().primary else None

    def emit_limited(
        self, kind: str, key: object, message: str, severity: str = "warning", **data: Any
    ) -> None:
        self.events(kind, message, severity, **data)

    async def _no_import(self, name: str, src: str) -> int:
        raise AssertionError(f"no import expected in this test ({name} from {src})")

    async def _wait_applied(self, lsn: int, timeout: float) -> bool:
        return lsn <= self.journal.last_lsn

    async def _serve_replica(self, *args: Any) -> None:
        self.replicas.append(str(args[-1]))

    def context(self) -> SessionContext:
        return SessionContext(
            config=lambda: self.config,
            me=self.me,
            role=self.role,
            primary_address=self.primary_address,
            last_lsn=lambda: self.journal.last_lsn,
            applied_lsn=lambda: self.journal.last_lsn,
            wait_applied=self._wait_applied,
            databases=self.registry,
            users=self.users,
            admin=self.admin,
            status=self.status,
            limits=self.limits,
            observe_commit=self.commits.append,
            statement_finished=self.finished.append,
            stopping=self.stopping,
            read_executor=self.read_executor,
            decode_executor=self.read_executor,
            session_opened=self.sessions.append,
            tls_refused=lambda peer, why: self.refused.append((peer, why)),
            serve_replica=self._serve_replica,
            peer_inbound=None,
        )

    async def close(self) -> None:
        await self.registry.close_all()
        self.jw.close()
        self.journal.close()
        self.executor.shutdown(wait=True)
        self.read_executor.shutdown(wait=True)


class Client:
    """The client's end of a memory stream pair: send messages, read answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder: FrameDecoder[Any] = FrameDecoder(m.ServerMessage)

    def send(self, msg: m.Message) -> None:
        self.writer.write(encode(msg))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self, timeout: float = 2.0) -> Any:
        """The next answer, or None when the member closed the connection.

        A frame cut short by the close is a ProtocolError: the session writes whole frames.
        """

        async def read(n: int) -> bytes:
            return await asyncio.wait_for(self.reader.read(n), timeout)

        return await read_message(self.decoder, read, 65536)


@dataclasses.dataclass
class FakeConnections:
    """A connection count the test sets."""

    count: int = 0

    def open_connections(self) -> int:
        return self.count
