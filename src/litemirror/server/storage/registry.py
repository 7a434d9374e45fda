"""The databases of a member: where they live, opening on demand, closing when idle.

A member may hold thousands of databases (one per tenant). Each open
database costs a writer connection and up to ``readers_per_database``
reader connections, so at most ``max_open_databases`` are open at once;
the least recently used idle one is closed to make room, and any database
idle for ``idle_close_s`` is closed by the sweeper. All SQLite work runs on
one shared, bounded thread pool, so the thread count does not grow with the
number of databases.

Files: ``<data_dir>/databases/<name>.db`` — plain SQLite files.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path

import apsw

from litemirror.config import DB_RE, ServerSection, SqliteSection
from litemirror.durable import replace_file
from litemirror.engine import meta
from litemirror.errors import OperationalError, ProgrammingError
from litemirror.security.roles import SYSTEM_DB
from litemirror.server.storage.database import Database, open_writer
from litemirror.server.storage.journal_writer import JournalWriter

log = logging.getLogger("litemirror.registry")

SUFFIX = ".db"
#: SYSTEM_DB (security.roles) holds litemirror's own tables (users). Its name
#: starts with "_", which database names in the config and `db add` cannot.
__all__ = ["SUFFIX", "SYSTEM_DB", "Registry"]


class Registry:
    def __init__(
        self,
        data_dir: Path,
        *,
        executor: Executor,
        journal: JournalWriter,
        epoch: Callable[[], int],
        server: ServerSection,
        on_commit: Callable[[str, int], None],
        replicate: Callable[[int, str], Awaitable[None]] | None = None,
        ack: str = "durable",
        writable: Callable[[], bool] = lambda: True,
        sqlite: SqliteSection | None = None,
        read_executor: Executor | None = None,
    ) -> None:
        self.dir = data_dir / "databases"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._executor = executor
        #: Reads of every database run here (``server.read_threads``).
        self._read_executor = read_executor
        self._journal = journal
        self._epoch = epoch
        self._cfg = server
        self._on_commit = on_commit
        self._replicate = replicate
        self._ack = ack
        self._writable = writable
        self._sqlite = sqlite or SqliteSection()
        self._open: OrderedDict[str, Database] = OrderedDict()
        self._opening: dict[str, asyncio.Future[Database]] = {}
        self._names: set[str] = {p.name[: -len(SUFFIX)] for p in self.dir.glob("*" + SUFFIX)}

    def path(self, name: str) -> Path:
        return self.dir / (name + SUFFIX)

    def names(self) -> list[str]:
        return sorted(self._names)

    def exists(self, name: str) -> bool:
        return name in self._names

    def add_name(self, name: str) -> None:
        self._names.add(name)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def open_databases(self) -> list[Database]:
        return list(self._open.values())

    async def get(self, name: str) -> Database:
        """The open Database ``name``, opening it (and closing an idle one) if needed."""
        db = self._open.get(name)
        if db is not None and not db.closed:
            self._open.move_to_end(name)
            return db
        if name not in self._names:
            raise ProgrammingError(
                f"no database named {name!r} on this member "
                f"(it holds {len(self._names)}; add one with `litemirror db add`)"
            )
        pending = self._opening.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Database] = asyncio.get_running_loop().create_future()
        self._opening[name] = fut
        try:
            await self._make_room()
            db = Database(
                name,
                self.path(name),
                executor=self._executor,
                read_executor=self._read_executor,
                journal=self._journal,
                epoch=self._epoch,
                group_max=self._cfg.group_max,
                readers=self._cfg.readers_per_database,
                txn_idle_timeout=self._cfg.transaction_idle_timeout_s,
                checkpoint_pages=self._cfg.checkpoint_pages,
                on_commit=self._on_commit,
                replicate=self._replicate,
                ack=self._ack,
                writable=self._writable,
                foreign_keys=self._sqlite.foreign_keys_for(name),
            )
            await db.open()
            self._open[name] = db
            fut.set_result(db)
            return db
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            del self._opening[name]

    async def _make_room(self) -> None:
        while len(self._open) >= self._cfg.max_open_databases:
            victim = next((d for d in self._open.values() if not d.busy), None)
            if victim is None:
                # Every open database is in use: go over the limit rather than
                # deadlock; the sweeper brings the count back down.
                return
            del self._open[victim.name]
            await victim.close()

    async def sweep(self) -> None:
        """Close databases idle for longer than ``idle_close_s``."""
        now = time.monotonic()
        for db in list(self._open.values()):
            if not db.busy and now - db.last_used > self._cfg.idle_close_s:
                self._open.pop(db.name, None)
                await db.close()

    def abort_transactions(self, reason: str) -> None:
        """Roll back every open interactive transaction (the member stops writing)."""
        for db in self._open.values():
            db.abort_transaction(reason)

    async def close_all(self) -> None:
        for db in list(self._open.values()):
            await db.close()
        self._open.clear()

    @staticmethod
    def validate_name(name: str) -> None:
        # fullmatch: with match, "$" would also accept a trailing newline ("nl\n").
        if not DB_RE.fullmatch(name) and name != SYSTEM_DB:
            raise ProgrammingError(
                f"database name {name!r}: use letters, digits, '_' or '-' (at most 64, "
                "starting with a letter or digit)"
            )

    def create_file(self, name: str) -> None:
        """Create an empty database file with our meta table (blocking; run in a thread)."""
        self.validate_name(name)
        path = self.path(name)
        tmp = path.with_suffix(".creating")
        if tmp.exists():
            tmp.unlink()
        conn = open_writer(str(tmp))
        conn.close()
        for extra in ("-wal", "-shm"):
            p = Path(str(tmp) + extra)
            if p.exists():
                p.unlink()
        replace_file(tmp, path)

    def set_lsn(self, name: str, lsn: int) -> None:
        conn = apsw.Connection(str(self.path(name)))
        try:
            conn.set_busy_timeout(5000)
            with conn:
                meta.write_lsn(conn, lsn)
        finally:
            conn.close()

    def ensure_closed(self, name: str) -> Database | None:
        return self._open.get(name)

    async def forget_quietly(self, name: str) -> None:
        """Close ``name`` if open (before its file is replaced)."""
        db = self._open.pop(name, None)
        if db is not None:
            await db.close()

    async def drop_files(self, name: str) -> None:
        """Close and delete database ``name`` (a member dropping what the primary no longer has)."""
        await self.forget_quietly(name)
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path(name)) + suffix).unlink(missing_ok=True)
        self._names.discard(name)

    async def forget(self, name: str) -> None:
        db = self._open.pop(name, None)
        if db is not None:
            await db.close()
        if name not in self._names:
            raise OperationalError(f"no database named {name!r}")
