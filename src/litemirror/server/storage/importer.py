"""``litemirror db add NAME --from FILE``: bring an existing SQLite file into the mirror, online.

The source is copied with SQLite's online backup API (the source may be in
use by another program while we copy), checked, given our meta table, and
only then journalled and renamed into place — a crash at any point leaves
either no database or a complete one.

What may be imported: the member reads files with its own OS user's rights,
which reach much more than a client should see (private SQLite files of
other programs, and the member's own ``_system`` database with the password
hashes). So the source must be a regular file inside ``server.import_dir``
after every symlink is resolved, and not one of the member's own files; with
no ``import_dir`` configured, imports are off. The caller gets one answer for
"no such file", "not readable" and "not SQLite", so the import cannot be used
to probe the member's file system; the member's log says which it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path

import apsw
import msgspec

from litemirror.config import Config, Member
from litemirror.durable import replace_file
from litemirror.engine import meta
from litemirror.engine.checksum import database_checksum
from litemirror.errors import DatabaseError, ProgrammingError
from litemirror.journal import RecordKind
from litemirror.server.storage.journal_writer import JournalWriter
from litemirror.server.storage.registry import Registry

log = logging.getLogger("litemirror.member")


def _within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def resolve_source(src: str, import_dir: str | None, internal: Iterable[Path], member: str) -> Path:
    """The real path of import source ``src``; :class:`ProgrammingError` if it may not be read.

    ``internal`` are directories the member's own files live in (data_dirs):
    nothing under them is importable, whatever the import directory says.
    """
    if import_dir is None:
        raise ProgrammingError(
            f"db add --from is turned off on member {member}: set server.import_dir in the "
            "mirror's configuration to a directory that holds only the files meant for "
            "import, put the file there, and run the command again; nothing was changed"
        )
    if "\x00" in src:
        raise ProgrammingError(f"db add: {src!r} holds a NUL character; nothing was changed")
    base = Path(import_dir)
    real = Path(os.path.realpath(base / src))
    if not _within(real, base) or real == base:
        raise ProgrammingError(
            f"db add: {src!r} is not inside the import directory {import_dir} of member "
            f"{member} (symlinks are followed to where they lead); copy the file there; "
            "nothing was changed"
        )
    for d in internal:
        if _within(real, Path(os.path.realpath(d))):
            raise ProgrammingError(
                f"db add: {src!r} is one of the member's own files; those cannot be imported; "
                "nothing was changed"
            )
    return real


def _unusable(src: str, import_dir: str, why: str) -> DatabaseError:
    """The one answer for a source that is missing, unreadable or not SQLite."""
    log.warning("db add: cannot import %r: %s", src, why)
    return DatabaseError(
        f"db add: {src!r} cannot be imported: it is not a readable SQLite database file in "
        f"the import directory {import_dir} (the member's log says why); nothing was changed"
    )


def _copy(src: str, real: Path, import_dir: str, dst: Path) -> str:
    if not real.is_file():  # also keeps FIFOs and devices out: opening one could hang
        raise _unusable(src, import_dir, "no such regular file")
    if dst.exists():
        dst.unlink()
    try:
        # NOFOLLOW: the path was resolved above; a symlink swapped in since is refused.
        source = apsw.Connection(
            str(real), flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_NOFOLLOW
        )
    except apsw.Error as exc:
        raise _unusable(src, import_dir, f"cannot open it: {exc}") from None
    target = apsw.Connection(str(dst))
    try:
        try:
            with target.backup("main", source, "main") as b:
                while not b.done:
                    b.step(1024)
            ok = target.execute("PRAGMA quick_check").fetchall()
        except apsw.Error as exc:
            raise _unusable(src, import_dir, f"not a readable SQLite database: {exc}") from None
        if ok != [("ok",)]:
            raise DatabaseError(f"db add: {src!r} failed its integrity check: {ok[:3]}")
        target.execute("PRAGMA journal_mode=WAL")
        meta.ensure_meta(target)
        return database_checksum(target)
    except BaseException:
        target.close()
        for extra in ("", "-wal", "-shm"):  # a refused source leaves nothing behind
            Path(str(dst) + extra).unlink(missing_ok=True)
        raise
    finally:
        source.close()
        target.close()


def _finish(dst: Path, final: Path, lsn: int) -> None:
    conn = apsw.Connection(str(dst))
    try:
        with conn:
            meta.write_lsn(conn, lsn)
        conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
    finally:
        conn.close()
    for extra in ("-wal", "-shm"):
        p = Path(str(dst) + extra)
        if p.exists():
            p.unlink()
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
    replace_file(dst, final)


class Importer:
    """``db add NAME --from FILE``: copy a database from the import directory, journalled.

    The copy is checked and its checksum goes into an ``IMPORT_DB`` record, so
    every member (and a replay) can verify the file it brings in.
    """

    def __init__(
        self,
        *,
        me: Member,
        config: Callable[[], Config],
        registry: Registry,
        writer: JournalWriter,
        executor: Executor,
        epoch: Callable[[], int],
    ) -> None:
        self._me = me
        self._config = config
        self._registry = registry
        self._jw = writer
        self._executor = executor
        self._epoch = epoch
        #: Databases being imported right now (a replica may not be seeded with them).
        self.importing: set[str] = set()

    async def run(self, name: str, src: str) -> int:
        reg = self._registry
        reg.validate_name(name)
        if reg.exists(name):
            raise ProgrammingError(f"database {name!r} already exists")
        config = self._config()
        import_dir = config.server.import_dir
        internal = [self._me.data_dir, *(mb.data_dir for mb in config.members)]
        real = resolve_source(src, import_dir, internal, self._me.name)
        assert import_dir is not None
        final = reg.path(name)
        tmp = final.with_suffix(".importing")
        self.importing.add(name)
        try:
            return await self._import(name, src, real, import_dir, final, tmp)
        finally:
            self.importing.discard(name)

    async def _import(
        self, name: str, src: str, real: Path, import_dir: str, final: Path, tmp: Path
    ) -> int:
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(self._executor, _copy, src, real, import_dir, tmp)
        payload = msgspec.msgpack.encode({"checksum": digest, "source": os.path.basename(src)})
        rec = await self._jw.append(self._epoch(), RecordKind.IMPORT_DB, name, payload)
        await loop.run_in_executor(self._executor, _finish, tmp, final, rec.lsn)
        self._registry.add_name(name)
        return rec.lsn
