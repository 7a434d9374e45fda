"""Admin actions of a member: create and import databases, switchover, promote, checksums.

The session (and the HTTP API) has already checked that the caller may run
the action; these functions check that *this member* can (the primary for
changes) and do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from litemirror.engine.checksum import table_checksums
from litemirror.errors import OperationalError, ProgrammingError
from litemirror.journal import RecordKind
from litemirror.server.storage.statements import PROGRESS_STEPS, ShutdownFlag

if TYPE_CHECKING:
    from litemirror.server.front.users import Principal
    from litemirror.server.node.member import MemberServer

log = logging.getLogger("litemirror.member")


async def create_database(m: MemberServer, name: str) -> int:
    """Create an empty database on the primary and journal its creation."""
    loop = asyncio.get_running_loop()
    if m.registry.exists(name):
        raise ProgrammingError(f"database {name!r} already exists")
    await loop.run_in_executor(m.executor, m.registry.create_file, name)
    rec = await m.jw.append(m.epoch, RecordKind.CREATE_DB, name, b"")
    await loop.run_in_executor(m.executor, m.registry.set_lsn, name, rec.lsn)
    m.registry.add_name(name)
    log.info("database %s created at LSN %d", name, rec.lsn)
    return rec.lsn


async def admin(
    m: MemberServer, action: str, args: dict[str, Any], actor: Principal | None = None
) -> dict[str, Any]:
    """Run an admin action; the caller has checked that ``actor`` may (None: anyone)."""
    from litemirror.server.front.users import OPEN, USER_ACTIONS, allows
    from litemirror.server.storage.importer import import_database
    from litemirror.server.storage.registry import SYSTEM_DB, Registry

    if action == "journal_switch":
        seg = await m.jw.call(lambda j: j.switch())
        return {"segment": seg}
    if m.role != "primary" and action in ("db_add", *(USER_ACTIONS - {"user_list"})):
        raise OperationalError(
            f"member {m.me.name} is {m.role}; run {action} on the primary",
            primary=m.primary_address,
        )
    if action in USER_ACTIONS:
        return await m.users.run(action, args, actor or OPEN)
    if action == "db_add":
        name = str(args.get("name", ""))
        if name == SYSTEM_DB:
            raise ProgrammingError(
                f"database name {name!r} is reserved for litemirror's users; choose another"
            )
        Registry.validate_name(name)  # before any file is touched
        src = args.get("from")
        if src:
            lsn = await import_database(m, name, str(src))
        else:
            lsn = await create_database(m, name)
        return {"database": name, "lsn": lsn}
    if action == "switchover":
        return await switchover(m, str(args.get("to", "")), float(args.get("timeout_s", 30)))
    if action == "promote":
        if args.get("force"):
            from litemirror.server.ha.promotion import force_promote

            return await force_promote(
                m, str(args.get("confirm", "")), bool(args.get("dry_run", False))
            )
        return await promote(m, bool(args.get("to_primary", True)))
    if action == "databases":
        names = m.registry.names()
        # Users see only what they may open; a member (the Monitor) sees every database.
        if actor is not None and not allows(actor.role, "admin") and actor.how != "member":
            names = [n for n in names if n != SYSTEM_DB]
        return {"databases": names}
    if action == "checksum":
        name = str(args.get("name", ""))
        min_lsn = int(args.get("min_lsn", 0) or 0)
        if not await m.wait_applied(min_lsn, m.config.limits.read_wait_s):
            raise OperationalError(
                f"member {m.me.name} has not applied LSN {min_lsn} yet (it is at {m.applied_lsn})",
                retryable=True,
            )
        if not m.registry.exists(name):
            raise ProgrammingError(f"no database named {name!r} on member {m.me.name}")
        loop = asyncio.get_running_loop()
        async with m.checksums.turn(m.me.name):
            lsn, tables = await loop.run_in_executor(
                m.read_executor, checksums_of, m.registry.path(name), m.stopping
            )
        return {"database": name, "lsn": lsn, "tables": tables, "applied_lsn": m.applied_lsn}
    raise ProgrammingError(f"unknown admin action {action!r}")


async def switchover(m: MemberServer, to: str, timeout: float) -> dict[str, Any]:
    from litemirror.failover import State, SwitchoverRequested, SwitchoverTimeout

    if m.agent is None:
        raise OperationalError("switchover needs an arbiter (mirror.arbiter in the configuration)")
    if m.role != "primary":
        raise OperationalError(
            f"member {m.me.name} is {m.role}; run switchover on the primary",
            primary=m.primary_address,
        )
    if m.peer is None or to != m.peer.name:
        raise ProgrammingError(
            f"switchover target must be the other failover member "
            f"({m.peer.name if m.peer else 'none configured'})"
        )
    t0 = time.monotonic()
    start_epoch = m.epoch
    m.agent.feed(SwitchoverRequested(to))
    if m.agent.state is not State.SWITCHING_OVER:
        raise OperationalError(f"switchover refused: {m.role_reason}")
    told = False
    while time.monotonic() - t0 < timeout:
        v = m.agent.view
        link = m.hub.links.get(to)
        if (
            not told
            and v.state is State.SWITCHING_OVER
            and link is not None
            and link.durable >= m.journal.last_lsn
        ):
            # Writes are stopped and the backup holds every record: hand over.
            told = True
            m.agent.backup_caught_up()
        if v.epoch > start_epoch and v.holder == to:
            pause = time.monotonic() - t0
            m.event(
                "switchover",
                f"switched over from {m.me.name} to {to} at epoch "
                f"{v.epoch} in {pause * 1000:.0f} ms",
            )
            return {
                "from": m.me.name,
                "to": to,
                "epoch": v.epoch,
                "pause_ms": round(pause * 1000, 1),
            }
        await asyncio.sleep(0.01)
    m.agent.feed(SwitchoverTimeout())
    raise OperationalError(
        f"switchover to {to} did not complete within {timeout:g}s: {m.role_reason}"
    )


async def promote(m: MemberServer, to_primary: bool) -> dict[str, Any]:
    from litemirror.failover import PromoteRequested, State

    if m.agent is None:
        raise OperationalError(
            f"member {m.me.name} ({m.me.kind}) is not promoted automatically in a mirror "
            "without an arbiter; if the primary is gone for good, run "
            f"`litemirror promote --member {m.me.name} --force` (it says what may be lost "
            "and asks for confirmation)"
        )
    behind = None
    if m.receiver is not None:
        behind = max(0, m.receiver.primary_lsn - m.receiver.applied)
    seen = m.agent.decision_count
    m.agent.feed(PromoteRequested(to_primary=to_primary, records_behind=behind))
    for _ in range(300):
        if m.agent.state in (
            State.PRIMARY,
            State.PRIMARY_ALONE,
            State.ASYNC,
            State.BACKUP_CATCHING_UP,
        ):
            break
        await asyncio.sleep(0.05)
    return {
        "member": m.me.name,
        "state": m.agent.state.value,
        "reason": m.role_reason,
        "decisions": m.agent.decisions_since(seen),
    }


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
