"""Admin actions through the Admin component: real registry and journal in tmp, fakes beside."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from litemirror.errors import Error, OperationalError, PermissionDeniedError, ProgrammingError
from litemirror.security.roles import Principal
from litemirror.server.role import Role
from litemirror.testing.front_fakes import FrontRig

READER = Principal("bob", "read", "password")


def _run(tmp_path: Path, body: Callable[[FrontRig], Awaitable[None]]) -> FrontRig:
    async def main() -> FrontRig:
        rig = FrontRig(tmp_path)
        try:
            await body(rig)
        finally:
            await rig.close()
        return rig

    return asyncio.run(main())


async def _refused(call: Awaitable[object], kind: type[Error]) -> str:
    with pytest.raises(kind) as info:
        await call
    return info.value.message


def test_non_admin_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        before = (rig.registry.names(), rig.journal.last_lsn)
        args = {"name": "sales"}
        why = await _refused(
            rig.users.authorize_action(READER, "db_add", args, "10.0.0.9:5000"),
            PermissionDeniedError,
        )
        assert "db_add needs the admin role" in why and "'bob' has the read role" in why
        assert rig.events.kinds() == ["auth_refused"]
        assert (rig.registry.names(), rig.journal.last_lsn) == before
        assert not (tmp_path / "databases" / "sales.db").exists()

    _run(tmp_path, body)


def test_changes_are_refused_on_a_member_that_is_not_primary(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        rig.role.set(role=Role.BACKUP, state="active", writable=False)
        why = await _refused(rig.admin.run("db_add", {"name": "sales"}), OperationalError)
        assert why == "member a is backup; run db_add on the primary"
        assert rig.registry.names() == [] and rig.journal.last_lsn == 0

    _run(tmp_path, body)


def test_create_database(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        out = await rig.admin.run("db_add", {"name": "sales"})
        assert out == {"database": "sales", "lsn": rig.journal.last_lsn}
        assert out["lsn"] > 0
        assert rig.registry.names() == ["sales"]
        assert (await rig.admin.run("databases", {})) == {"databases": ["sales"]}
        # A second time, a reserved name, a bad name: refused, nothing more journalled.
        lsn = rig.journal.last_lsn
        again = await _refused(rig.admin.run("db_add", {"name": "sales"}), ProgrammingError)
        assert "already exists" in again
        reserved = await _refused(rig.admin.run("db_add", {"name": "_system"}), ProgrammingError)
        assert "reserved" in reserved
        await _refused(rig.admin.run("db_add", {"name": "no/such"}), ProgrammingError)
        assert rig.journal.last_lsn == lsn and rig.registry.names() == ["sales"]

    _run(tmp_path, body)


def test_unknown_action_gets_a_clear_error(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        why = await _refused(rig.admin.run("frobnicate", {}), ProgrammingError)
        assert "unknown admin action 'frobnicate'" in why and "nothing was done" in why

    _run(tmp_path, body)


def test_failover_actions_go_to_their_port(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        assert await rig.admin.run("switchover", {"to": "b", "timeout_s": 5}) == {"to": "b"}
        await rig.admin.run("promote", {})
        await rig.admin.run("promote", {"force": True, "confirm": "a", "dry_run": True})
        assert rig.failover.calls == [
            ("switchover", ("b", 5.0)),
            ("promote", (True,)),
            ("force_promote", ("a", True)),
        ]

    _run(tmp_path, body)


def test_checksum_of_a_database(tmp_path: Path) -> None:
    async def body(rig: FrontRig) -> None:
        await rig.admin.run("db_add", {"name": "app"})
        db = await rig.registry.get("app")
        await db.write("exec", "CREATE TABLE t (x)", None)
        out = await rig.admin.run("checksum", {"name": "app"})
        assert out["database"] == "app" and set(out["tables"]) == {"(schema)", "t"}
        missing = await _refused(rig.admin.run("checksum", {"name": "nope"}), ProgrammingError)
        assert "no database named 'nope' on member a" in missing

    _run(tmp_path, body)
