"""Admin actions of a member: create and import databases, switchover, promote, checksums.

The session (and the HTTP API) has already checked that the caller may run
the action; :class:`Admin` checks that *this member* can (the primary for
changes) and does it. It is given what it uses (:mod:`.ports`): the
registry, the journal writer, the user store, and the failover actions as a
port of their own (switchover and promotion belong to the failover agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from litemirror.config import Member
from litemirror.engine.checksum import table_checksums
from litemirror.errors import OperationalError, ProgrammingError
from litemirror.journal import RecordKind
from litemirror.security.roles import OPEN, USER_ACTIONS, Principal, allows
from litemirror.server.front.ports import BackupActions, FailoverActions, UserActions
from litemirror.server.ports import RoleView
from litemirror.server.role import Role
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.registry import SYSTEM_DB, Registry
from litemirror.server.storage.statements import PROGRESS_STEPS, ShutdownFlag

log = logging.getLogger("litemirror.member")


class DatabaseCreator:
    """Creates an empty database on the primary and journals its creation."""

    def __init__(
        self,
        registry: Registry,
        journal: JournalWriter,
        executor: Executor,
        epoch: Callable[[], int],
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.executor = executor
        self.epoch = epoch

    async def create(self, name: str) -> int:
        """Create database ``name``; returns the LSN of its creation record."""
        loop = asyncio.get_running_loop()
        reg = self.registry
        if reg.exists(name):
            raise ProgrammingError(f"database {name!r} already exists")
        await loop.run_in_executor(self.executor, reg.create_file, name)
        rec = await self.journal.append(self.epoch(), RecordKind.CREATE_DB, name, b"")
        await loop.run_in_executor(self.executor, reg.set_lsn, name, rec.lsn)
        reg.add_name(name)
        log.info("database %s created at LSN %d", name, rec.lsn)
        return rec.lsn


class Admin:
    """Runs admin actions; the caller has checked that the actor may (see the module docstring)."""

    def __init__(
        self,
        *,
        me: Member,
        role: RoleView,
        primary_address: Callable[[], str | None],
        registry: Registry,
        databases: DatabaseCreator,
        import_database: Callable[[str, str], Awaitable[int]],
        users: UserActions,
        failover: FailoverActions,
        journal_switch: Callable[[], Awaitable[object]],
        wait_applied: Callable[[int, float], Awaitable[bool]],
        applied_lsn: Callable[[], int],
        read_wait_s: float,
        read_executor: Executor,
        stopping: ShutdownFlag,
        backups: BackupActions,
    ) -> None:
        self.me = me
        self.role = role
        self.primary_address = primary_address
        self.registry = registry
        self.databases = databases
        self.import_database = import_database
        self.users = users
        self.failover = failover
        self.journal_switch = journal_switch
        self.wait_applied = wait_applied
        self.applied_lsn = applied_lsn
        self.read_wait_s = read_wait_s
        self.read_executor = read_executor
        self.stopping = stopping
        self.backups = backups
        #: At most a few whole-database checksums at once (see Checksums).
        self.checksums = Checksums()

    async def run(
        self, action: str, args: dict[str, Any], actor: Principal | None = None
    ) -> dict[str, Any]:
        """Run an admin action; the caller has checked that ``actor`` may (None: anyone)."""
        if action == "journal_switch":
            return {"segment": await self.journal_switch()}
        role = self.role().role
        if role is not Role.PRIMARY and action in ("db_add", *(USER_ACTIONS - {"user_list"})):
            raise OperationalError(
                f"member {self.me.name} is {role}; run {action} on the primary",
                primary=self.primary_address(),
            )
        if action in USER_ACTIONS:
            return await self.users.run(action, args, actor or OPEN)
        if action == "db_add":
            return await self._db_add(args)
        if action == "switchover":
            return await self.failover.switchover(
                str(args.get("to", "")), float(args.get("timeout_s", 30))
            )
        if action == "promote":
            if args.get("force"):
                return await self.failover.force_promote(
                    str(args.get("confirm", "")), bool(args.get("dry_run", False))
                )
            return await self.failover.promote(bool(args.get("to_primary", True)))
        if action == "databases":
            names = self.registry.names()
            # Users see only what they may open; a member (the Monitor) sees every database.
            if actor is not None and not allows(actor.role, "admin") and actor.how != "member":
                names = [n for n in names if n != SYSTEM_DB]
            return {"databases": names}
        if action == "checksum":
            return await self._checksum(args)
        if action == "backup":
            return await self.backups.take(_names(args.get("dbs")), _dir(args.get("to")))
        if action == "backup_scheduled":
            return await self.backups.take_scheduled(
                _number("slot", args.get("slot")), int(_number("keep", args.get("keep", 0)))
            )
        if action == "backup_list":
            return await self.backups.list_sets(_dir(args.get("to")))
        if action == "backup_verify":
            return await self.backups.verify(_dir(args.get("set")))
        raise ProgrammingError(
            f"unknown admin action {action!r}; nothing was done (see `litemirror --help` "
            "for the commands a member runs)"
        )

    async def _db_add(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name", ""))
        if name == SYSTEM_DB:
            raise ProgrammingError(
                f"database name {name!r} is reserved for litemirror's users; choose another"
            )
        Registry.validate_name(name)  # before any file is touched
        src = args.get("from")
        if src:
            lsn = await self.import_database(name, str(src))
        else:
            lsn = await self.databases.create(name)
        return {"database": name, "lsn": lsn}

    async def _checksum(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name", ""))
        min_lsn = int(args.get("min_lsn", 0) or 0)
        me = self.me.name
        if not await self.wait_applied(min_lsn, self.read_wait_s):
            raise OperationalError(
                f"member {me} has not applied LSN {min_lsn} yet (it is at {self.applied_lsn()})",
                retryable=True,
            )
        if not self.registry.exists(name):
            raise ProgrammingError(f"no database named {name!r} on member {me}")
        loop = asyncio.get_running_loop()
        async with self.checksums.turn(me):
            lsn, tables = await loop.run_in_executor(
                self.read_executor, checksums_of, self.registry.path(name), self.stopping
            )
        return {"database": name, "lsn": lsn, "tables": tables, "applied_lsn": self.applied_lsn()}


def _names(value: Any) -> list[str] | None:
    """The ``dbs`` argument of ``backup``: None or empty for every database."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProgrammingError(f"backup: dbs must be a list of database names, not {value!r}")
    return value or None


def _dir(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ProgrammingError(f"backup: to must be a directory path, not {value!r}")
    return value or None


def _number(what: str, value: Any) -> float:
    """A number argument of ``backup_scheduled``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ProgrammingError(f"backup_scheduled: {what} must be a number >= 0, not {value!r}")
    return float(value)


class Checksums:
    """Checksums read whole databases: at most MAX_RUNNING at once, MAX_WAITING queued.

    A checksum is the one admin action a read user may run that reads a whole
    database; without a bound, a few of them in parallel would hold the read
    threads (and the disk) for as long as they take. Beyond the queue a
    request is refused as retryable ("busy").
    """

    MAX_RUNNING = 2
    MAX_WAITING = 8

    def __init__(self) -> None:
        self._slots = asyncio.Semaphore(self.MAX_RUNNING)
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def turn(self, member: str) -> AsyncIterator[None]:
        if self._slots.locked() and self._waiting >= self.MAX_WAITING:
            raise OperationalError(
                f"member {member} is busy computing checksums ({self.MAX_RUNNING} running, "
                f"{self._waiting} waiting); nothing was done, retry later",
                retryable=True,
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


def checksums_of(path: Any, stopping: ShutdownFlag | None = None) -> tuple[int, dict[str, str]]:
    """(meta LSN, per-table checksums) of one database, from one read snapshot.

    Stops (with an error) when the member starts to shut down.
    """
    import apsw

    from litemirror.engine import meta

    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        if stopping is not None:
            conn.set_progress_handler(lambda: stopping.set, PROGRESS_STEPS)
        conn.set_busy_timeout(5000)
        conn.execute("BEGIN")
        try:
            return meta.read_lsn(conn), table_checksums(conn)
        finally:
            conn.execute("COMMIT")
    finally:
        conn.close()
