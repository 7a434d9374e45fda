"""``litemirror db add NAME --from FILE``: bring an existing SQLite file into the mirror, online.

The source is copied with SQLite's online backup API (the source may be in
use by another program while we copy), checked, given our meta table, and
only then journalled and renamed into place — a crash at any point leaves
either no database or a complete one.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import apsw
import msgspec

from litemirror.engine import meta
from litemirror.engine.checksum import database_checksum
from litemirror.errors import DatabaseError, ProgrammingError
from litemirror.journal import RecordKind

if TYPE_CHECKING:
    from .member import MemberServer


def _copy(src: str, dst: Path) -> str:
    if not os.path.isfile(src):
        raise ProgrammingError(f"db add: source file {src!r} does not exist on the member host")
    if dst.exists():
        dst.unlink()
    try:
        source = apsw.Connection(src, flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error as exc:
        raise DatabaseError(f"db add: cannot open {src!r} as SQLite: {exc}") from exc
    target = apsw.Connection(str(dst))
    try:
        try:
            with target.backup("main", source, "main") as b:
                while not b.done:
                    b.step(1024)
            ok = target.execute("PRAGMA quick_check").fetchall()
        except apsw.Error as exc:
            raise DatabaseError(
                f"db add: {src!r} is not a readable SQLite database: {exc}"
            ) from exc
        if ok != [("ok",)]:
            raise DatabaseError(f"db add: {src!r} failed its integrity check: {ok[:3]}")
        target.execute("PRAGMA journal_mode=WAL")
        meta.ensure_meta(target)
        return database_checksum(target)
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
    os.replace(dst, final)


async def import_database(member: MemberServer, name: str, src: str) -> int:
    reg = member.registry
    reg.validate_name(name)
    if reg.exists(name):
        raise ProgrammingError(f"database {name!r} already exists")
    final = reg.path(name)
    tmp = final.with_suffix(".importing")
    member.importing.add(name)
    try:
        return await _import(member, name, src, final, tmp)
    finally:
        member.importing.discard(name)


async def _import(member: MemberServer, name: str, src: str, final: Path, tmp: Path) -> int:
    loop = asyncio.get_running_loop()
    reg = member.registry
    digest = await loop.run_in_executor(member.executor, _copy, src, tmp)
    payload = msgspec.msgpack.encode({"checksum": digest, "source": os.path.basename(src)})
    rec = await member.jw.append(member.epoch, RecordKind.IMPORT_DB, name, payload)
    await loop.run_in_executor(member.executor, _finish, tmp, final, rec.lsn)
    reg.add_name(name)
    return rec.lsn
