"""ClientSession alone: a memory stream pair, a real registry in tmp, fakes for the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from litemirror.protocol import messages as m
from litemirror.protocol.framing import HEADER, encode
from litemirror.protocol.replication import REPL_VERSION, ReplHello
from litemirror.server.front.session import ClientSession
from litemirror.server.role import Role
from litemirror.testing.fakes import memory_stream_pair
from litemirror.testing.front_fakes import Client, FrontRig, front_config

Scenario = Callable[[FrontRig, Client], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario, **limits: float) -> FrontRig:
    """Run ``scenario`` against one session; returns the rig (closed) to look at afterwards."""

    async def main() -> FrontRig:
        rig = FrontRig(tmp_path, front_config(tmp_path, **limits))
        try:
            await rig.creator.create("app")
            (cr, cw), (sr, sw) = memory_stream_pair()
            session = asyncio.create_task(ClientSession(rig.context(), sr, sw).run())
            try:
                await scenario(rig, Client(cr, cw))
            finally:
                cw.close()
                await asyncio.wait_for(session, 2)
        finally:
            await rig.close()
        return rig

    return asyncio.run(main())


def _hello(database: str = "app", read_only: bool = False) -> m.Hello:
    return m.Hello(version=m.PROTOCOL_VERSION, database=database, read_only=read_only)


def test_hello_execute_commit_answered_in_order(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        # Pipelined: everything sent before the first answer is read.
        c.send(_hello())
        c.send(m.Execute(id=1, sql="CREATE TABLE t (x INTEGER)"))
        c.send(m.Begin(id=2))
        c.send(m.Execute(id=3, sql="INSERT INTO t VALUES (?)", params=[7]))
        c.send(m.Commit(id=4))
        c.send(m.Execute(id=5, sql="SELECT x FROM t"))
        welcome = await c.answer()
        assert isinstance(welcome, m.Welcome)
        assert (welcome.member, welcome.role) == ("a", "primary")
        answers = [await c.answer() for _ in range(5)]
        assert [a.id for a in answers] == [1, 2, 3, 4, 5]
        assert [type(a) for a in answers] == [m.Result, m.Ok, m.Result, m.Ok, m.Result]
        assert answers[0].lsn > 0  # the one-shot write was journalled
        assert answers[1].in_transaction and answers[2].in_transaction
        assert answers[3].lsn > answers[0].lsn
        assert answers[4].rows == [[7]]

    rig = _run(tmp_path, scenario)
    assert len(rig.commits) == 2  # the one-shot write and the COMMIT
    assert rig.sessions == ["127.0.0.1"]


def test_read_only_session_refuses_a_write_and_changes_nothing(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        c.send(_hello(read_only=True))
        assert isinstance(await c.answer(), m.Welcome)
        lsn = rig.journal.last_lsn
        c.send(m.Execute(id=1, sql="CREATE TABLE t (x INTEGER)"))
        err = await c.answer()
        assert isinstance(err, m.Error) and err.id == 1
        assert err.kind == "OperationalError" and "read_only=true" in err.message
        assert rig.journal.last_lsn == lsn
        c.send(m.Ping(id=2))  # the session goes on
        assert isinstance(await c.answer(), m.Ok)

    _run(tmp_path, scenario)


def test_write_session_refused_on_a_member_that_is_not_primary(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        rig.role.set(role=Role.BACKUP, state="active", writable=False)
        c.send(_hello())
        err = await c.answer()
        assert isinstance(err, m.Error) and err.kind == "NotPrimaryError"
        assert "backup, not the primary" in err.message
        assert await c.answer() is None  # closed

    _run(tmp_path, scenario)


def test_frame_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        c.send(_hello(read_only=True))
        assert isinstance(await c.answer(), m.Welcome)
        limit = rig.config.statements.read_request_max_bytes
        frame = encode(m.Execute(id=1, sql="SELECT '" + "x" * limit + "'"))
        # Only the length and the first bytes go out: the refusal cannot wait for the rest.
        c.send_raw(frame[: HEADER.size + 64])
        err = await c.answer()
        assert isinstance(err, m.Error) and err.kind == "FrameTooLargeError"
        assert "read-only session" in err.message and "nothing of it was read" in err.message
        assert await c.answer() is None  # closed

    _run(tmp_path, scenario)


def test_idle_session_is_closed(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        c.send(_hello())
        assert isinstance(await c.answer(), m.Welcome)
        t0 = time.monotonic()
        assert await c.answer() is None  # closed without a word
        assert time.monotonic() - t0 < 1.0

    _run(tmp_path, scenario, idle_timeout_s=0.1)


def test_status_and_admin_go_to_their_ports(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        c.send(_hello(database=""))
        assert isinstance(await c.answer(), m.Welcome)
        c.send(m.StatusRequest(id=1))
        c.send(m.AdminRequest(id=2, action="databases"))
        c.send(m.AdminRequest(id=3, action="no_such_action"))
        status, dbs, unknown = [await c.answer() for _ in range(3)]
        assert isinstance(status, m.Ok) and status.info == {"role": "primary"}
        assert isinstance(dbs, m.Ok) and dbs.info == {"databases": ["app"]}
        assert isinstance(unknown, m.Error) and "no_such_action" in unknown.message

    rig = _run(tmp_path, scenario)
    assert len(rig.status.viewers) == 1


def test_replica_hello_goes_to_serve_replica(tmp_path: Path) -> None:
    async def scenario(rig: FrontRig, c: Client) -> None:
        hello = ReplHello(
            version=REPL_VERSION,
            mirror="test",
            member="b",
            kind="failover",
            last_lsn=0,
            last_epoch=1,
        )
        c.send(hello)
        assert await c.answer() is None  # the fake serve_replica returns at once

    rig = _run(tmp_path, scenario)
    assert len(rig.replicas) == 1
