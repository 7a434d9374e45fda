"""The real arbiter process, talked to by the real client members use.

Each test starts ``litemirror arbiter`` in a child process on a free port,
with a short QoS timeout so that silence is noticed quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from litemirror import errors
from litemirror.client.control import call
from litemirror.failover import ArbiterRecord, ArbiterReport, Claim, HandOver, SetBackup
from litemirror.protocol import arbiter as wire
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.server.arbiter.service import ArbiterServer
from litemirror.server.ha.arbiter_client import ArbiterClient, ArbiterUnreachable
from litemirror.testing.cluster import free_port

QOS = 0.5
T = TypeVar("T")


class ArbiterProcess:
    def __init__(self, data_dir: Path, mirror: str | None = None, qos: float = QOS) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.mirror = mirror
        self.qos = qos
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        a = [sys.executable, "-m", "litemirror.cli.main", "arbiter", "--listen", self.address]
        a += ["--data-dir", str(self.data_dir), "--qos-timeout-ms", str(int(self.qos * 1000))]
        return a + (["--mirror", self.mirror] if self.mirror else [])

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"arbiter exited:\n{self.log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"arbiter did not start listening:\n{self.log()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict[str, Any]:
        return call("127.0.0.1", self.port, m.StatusRequest(id=1), timeout=5)

    def client(self, member: str, mirror: str = "mx") -> ArbiterClient:
        return ArbiterClient(self.address, mirror, member, QOS, source=("127.0.0.1", 0))


@pytest.fixture
def arbiter(tmp_path: Path) -> Iterator[ArbiterProcess]:
    made = ArbiterProcess(tmp_path / "arb")
    made.start()
    yield made
    if made.alive():
        made.kill()


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


def granted(rep: ArbiterReport) -> bool:
    return rep.answered is not None and rep.refused is None


# ------------------------------------------------------------------ claims


def test_two_claims_to_the_same_epoch_one_wins(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a, b = arbiter.client("a"), arbiter.client("b")
        await a.exchange()
        await b.exchange()
        ra, rb = await asyncio.gather(a.exchange(Claim("a", 1, 0)), b.exchange(Claim("b", 1, 0)))
        assert [granted(ra), granted(rb)].count(True) == 1
        winner, loser = ("a", rb) if granted(ra) else ("b", ra)
        assert loser.refused is not None and "not newer than the stored epoch 1" in loser.refused
        # Both see the same record afterwards, naming the winner.
        for c in (a, b):
            rep = await c.exchange()
            assert rep.record == ArbiterRecord(epoch=1, holder=winner)
            assert rep.in_contact == {"a", "b"}
        await a.close()
        await b.close()

    run(scenario)
    assert "granted" in arbiter.log() and "refused" in arbiter.log()


def test_set_backup_rules(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a, b = arbiter.client("a"), arbiter.client("b")
        assert granted(await a.exchange(Claim("a", 1, 0)))
        await b.exchange()
        # Only the holder may change the flag.
        rep = await b.exchange(SetBackup("b", 1, True))
        assert rep.refused is not None and "b does not hold epoch 1" in rep.refused
        assert not rep.record.backup_active
        assert (await a.exchange(SetBackup("a", 1, True))).record.backup_active
        # The primary is in contact: the backup's claim is refused.
        rep = await b.exchange(Claim("b", 2, 1))
        assert rep.refused is not None and "still has contact with the primary a" in rep.refused
        # The primary commits alone: from now on the backup may never take over.
        assert not (await a.exchange(SetBackup("a", 1, False))).record.backup_active
        await a.close()
        rep = await b.exchange()
        assert rep.in_contact == {"b"}
        rep = await b.exchange(Claim("b", 2, 1))
        assert rep.refused is not None and "marked its backup inactive" in rep.refused
        # Backup active again, then the primary goes away: the claim is granted.
        a = arbiter.client("a")
        assert (await a.exchange(SetBackup("a", 1, True))).record.backup_active
        await a.close()
        rep = await b.exchange(Claim("b", 2, 1))
        assert granted(rep) and rep.record == ArbiterRecord(epoch=2, holder="b")
        # The deposed primary's requests at its old epoch are refused.
        a = arbiter.client("a")
        rep = await a.exchange(SetBackup("a", 1, False))
        assert rep.refused is not None and rep.record.holder == "b"
        await a.close()
        await b.close()

    run(scenario)


def test_handover(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a, b = arbiter.client("a"), arbiter.client("b")
        assert granted(await a.exchange(Claim("a", 1, 0)))
        await b.exchange()
        rep = await a.exchange(HandOver("a", 1, "b"))
        assert rep.refused is not None and "not recorded as an active backup" in rep.refused
        await a.exchange(SetBackup("a", 1, True))
        rep = await a.exchange(HandOver("a", 1, "b"))
        assert granted(rep) and rep.record.handover_to == "b"
        # Granted although the arbiter still has contact with a: a asked for it.
        rep = await b.exchange(Claim("b", 2, 1))
        assert granted(rep)
        assert rep.record == ArbiterRecord(epoch=2, holder="b", backup_active=False)
        assert rep.in_contact == {"a", "b"}
        await a.close()
        await b.close()

    run(scenario)


def test_request_in_another_members_name_is_refused(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a = arbiter.client("a")
        with pytest.raises(ArbiterUnreachable, match="in the name of b"):
            await a.exchange(Claim("b", 1, 0))
        assert (await a.exchange()).record.holder is None  # reconnects by itself
        await a.close()

    run(scenario)


# -------------------------------------------------------------- durability


def test_record_survives_kill_9(arbiter: ArbiterProcess) -> None:
    async def grant() -> None:
        a = arbiter.client("a")
        assert granted(await a.exchange(Claim("a", 1, 0)))
        assert (await a.exchange(SetBackup("a", 1, True))).record.backup_active
        # Kill right after the answer: it was durable before it was sent.
        arbiter.kill()
        with pytest.raises(ArbiterUnreachable):
            await a.exchange()
        await a.close()

    run(grant)
    stored = json.loads((arbiter.data_dir / "arbiter.json").read_text())
    assert stored["epoch"] == 1 and stored["holder"] == "a" and stored["backup_active"] is True
    arbiter.start()
    st = arbiter.status()
    assert st["record"] == {"epoch": 1, "holder": "a", "backup_active": True, "handover_to": None}
    assert st["in_contact"] == []
    assert st["mirror"] == "mx"

    async def after() -> None:
        b = arbiter.client("b")
        rep = await b.exchange()
        assert rep.record == ArbiterRecord(epoch=1, holder="a", backup_active=True)
        assert rep.in_contact == {"b"}
        # a is not in contact after the restart, and its backup was active.
        assert granted(await b.exchange(Claim("b", 2, 1)))
        await b.close()

    run(after)


def test_client_reconnects_after_arbiter_restart(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a = arbiter.client("a")
        await a.exchange(Claim("a", 1, 0))
        arbiter.terminate()
        with pytest.raises(ArbiterUnreachable):
            await a.exchange()
        with pytest.raises(ArbiterUnreachable, match="cannot reach"):
            await a.exchange()  # nothing listening: refused at once
        await asyncio.to_thread(arbiter.start)
        rep = await a.exchange()
        assert rep.record.holder == "a" and rep.in_contact == {"a"}
        await a.close()

    run(scenario)


# ----------------------------------------------------------------- contact


def test_silent_member_leaves_in_contact_and_returns(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a, b = arbiter.client("a"), arbiter.client("b")
        await a.exchange()
        assert (await b.exchange()).in_contact == {"a", "b"}
        await asyncio.sleep(QOS * 0.5)
        assert "a" in (await b.exchange()).in_contact  # not yet silent long enough
        await asyncio.sleep(QOS * 1.2)
        assert (await b.exchange()).in_contact == {"b"}
        assert arbiter.status()["in_contact"] == ["b"]
        assert (await a.exchange()).in_contact == {"a", "b"}  # back with its next beat
        await a.close()
        await b.close()

    run(scenario)
    assert "lost contact with a: no beat for" in arbiter.log()


def test_second_session_for_a_member_refused_while_first_is_live(
    arbiter: ArbiterProcess,
) -> None:
    async def scenario() -> None:
        a1, a2 = arbiter.client("a"), arbiter.client("a")
        await a1.exchange()
        with pytest.raises(ArbiterUnreachable, match="already has a live session"):
            await a2.exchange()
        assert (await a1.exchange()).in_contact == {"a"}
        await asyncio.sleep(QOS * 1.5)  # a1 silent: its session may be replaced
        assert (await a2.exchange()).in_contact == {"a"}
        with pytest.raises(ArbiterUnreachable):
            await a1.exchange()  # the replaced session was closed
        await a2.close()
        await a1.close()

    run(scenario)


# -------------------------------------------------------------- refusals


def test_wrong_mirror_refused_and_name_remembered(tmp_path: Path) -> None:
    arb = ArbiterProcess(tmp_path / "arb", mirror="mx")
    arb.start()
    try:

        async def wrong() -> None:
            c = arb.client("a", mirror="other")
            with pytest.raises(ArbiterUnreachable, match="belongs to mirror 'other'"):
                await c.exchange()
            await c.close()

        run(wrong)
        arb.terminate()
        # Without --mirror the stored name still holds.
        arb.mirror = None
        arb.start()
        assert arb.status()["mirror"] == "mx"
        run(wrong)
        arb.terminate()
        # A data dir serves one mirror: another --mirror does not start.
        arb.mirror = "other"
        res = subprocess.run(arb.args(), capture_output=True, text=True, timeout=30)
        assert res.returncode == 2
        assert "does not match mirror 'mx'" in res.stderr
    finally:
        if arb.alive():
            arb.kill()


def test_first_member_names_the_mirror(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a = arbiter.client("a", mirror="first")
        await a.exchange()
        b = arbiter.client("b", mirror="second")
        with pytest.raises(ArbiterUnreachable, match="serves mirror 'first'"):
            await b.exchange()
        await a.close()

    run(scenario)
    assert json.loads((arbiter.data_dir / "arbiter.json").read_text())["mirror"] == "first"


def _raw_answer(port: int, data: bytes) -> m.Error | None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        dec: FrameDecoder[Any] = FrameDecoder(wire.FromArbiter)
        while True:
            msg = dec.next_message()
            if msg is not None:
                assert isinstance(msg, m.Error)
                # The arbiter closes after the error.
                assert s.recv(100) == b""
                return msg
            chunk = s.recv(65536)
            if not chunk:
                return None
            dec.feed(chunk)


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize(
    ("data", "kind", "text"),
    [
        (_frame(b"\xc1\xc1 not msgpack"), "ProtocolError", "malformed frame"),
        (struct.pack(">I", 64 * 1024 + 1), "FrameTooLargeError", "exceeds the limit of 65536"),
        (
            _frame(msgspec.msgpack.encode({"t": "abeat", "seq": 1})),
            "ProtocolError",
            "malformed frame",
        ),
        (
            encode(wire.ArbHello(version=99, mirror="mx", member="a")),
            "ProtocolError",
            "arbiter protocol version 99",
        ),
        (
            encode(wire.ArbHello(version=wire.ARB_VERSION, mirror="mx", member="a"))
            + _frame(b"\x00garbage"),
            "ProtocolError",
            "malformed frame",
        ),
        (
            encode(m.Hello(version=m.PROTOCOL_VERSION, database="app")),
            "UnavailableError",
            "holds no databases",
        ),
    ],
    ids=["garbage", "oversized", "beat-before-hello", "version", "garbage-after-hello", "db"],
)
def test_bad_input_refused_and_arbiter_stays_up(
    arbiter: ArbiterProcess, data: bytes, kind: str, text: str
) -> None:
    err = _raw_answer(arbiter.port, data)
    assert err is not None and err.kind == kind and text in err.message
    assert arbiter.alive()

    async def still_serving() -> None:
        a = arbiter.client("a")
        assert granted(await a.exchange(Claim("a", 1, 0)))
        await a.close()

    run(still_serving)


def test_handshake_timeout(tmp_path: Path) -> None:
    """In-process server (same code as the process), with a short handshake timeout."""

    async def scenario() -> None:
        port = free_port()
        srv = ArbiterServer(tmp_path, "127.0.0.1", port, qos_timeout=QOS, handshake_timeout=0.3)
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            data = await asyncio.wait_for(reader.read(), 5)  # until the arbiter closes
            assert 0.25 < time.monotonic() - started < 3
            dec: FrameDecoder[Any] = FrameDecoder(wire.FromArbiter)
            dec.feed(data)
            err = dec.next_message()
            assert isinstance(err, m.Error) and "handshake timeout" in err.message
            writer.close()
        finally:
            await srv.close()

    run(scenario)


def test_second_arbiter_on_the_same_data_dir_does_not_start(arbiter: ArbiterProcess) -> None:
    other = ArbiterProcess(arbiter.data_dir)
    res = subprocess.run(other.args(), capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "another arbiter is running" in res.stderr


def test_unreadable_state_refuses_to_start(tmp_path: Path) -> None:
    arb = ArbiterProcess(tmp_path / "arb")
    arb.data_dir.mkdir()
    (arb.data_dir / "arbiter.json").write_text('{"epoch": 3, "holder": ')
    res = subprocess.run(arb.args(), capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "cannot be read" in res.stderr


# -------------------------------------------------------- status, signals


def test_status_query(arbiter: ArbiterProcess) -> None:
    async def scenario() -> None:
        a = arbiter.client("a")
        await a.exchange(Claim("a", 1, 0))
        st = await asyncio.to_thread(arbiter.status)
        assert st["role"] == "arbiter" and st["mirror"] == "mx"
        assert st["record"] == {
            "epoch": 1,
            "holder": "a",
            "backup_active": False,
            "handover_to": None,
        }
        assert st["in_contact"] == ["a"] and set(st["sessions"]) == {"a"}
        assert st["qos_timeout_ms"] == int(QOS * 1000)
        await a.close()

    run(scenario)
    with pytest.raises(errors.ProtocolError, match="only status and ping"):
        call("127.0.0.1", arbiter.port, m.AdminRequest(id=1, action="journal_switch"))


def test_sigterm_exits_cleanly(arbiter: ArbiterProcess) -> None:
    # A member session left open (raw socket, hello and one beat answered):
    # shutdown must not wait for it.
    with socket.create_connection(("127.0.0.1", arbiter.port), timeout=5) as s:
        s.sendall(encode(wire.ArbHello(version=wire.ARB_VERSION, mirror="mx", member="a")))
        s.sendall(encode(wire.ArbBeat(seq=1)))
        dec: FrameDecoder[Any] = FrameDecoder(wire.FromArbiter)
        while (ans := dec.next_message()) is None:
            dec.feed(s.recv(65536))
        assert isinstance(ans, wire.ArbAnswer) and ans.in_contact == ["a"]
        started = time.monotonic()
        assert arbiter.terminate() == 0
        assert time.monotonic() - started < 5
        assert s.recv(100) == b""  # the arbiter closed the session
    assert "arbiter shutting down" in arbiter.log()
    assert os.path.exists(arbiter.data_dir / "arbiter.json")
