"""A driver of an older release (no features in its Hello) against a member of this one.

The member must answer it with the frames protocol version 1 defined: the
newer optional fields (rows changed, extended error codes) only go to a
driver that announced it understands them. Raw frames over a real socket.
"""

from __future__ import annotations

import socket
from typing import Any

import msgspec

import litemirror
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode


class _Old(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True):
    pass


class OldWelcome(_Old, tag="welcome", frozen=True):
    version: int
    mirror: str
    member: str
    role: str
    epoch: int
    lsn: int
    primary: str | None = None


class OldResult(_Old, tag="result", frozen=True):
    id: int
    columns: list[Any] | None = None
    rows: list[list[Any]] = []
    rowcount: int = -1
    lastrowid: int | None = None
    lsn: int = 0
    in_transaction: bool = False
    done: bool = True


class OldError(_Old, tag="error", frozen=True):
    id: int
    kind: str
    message: str
    sqlite_code: int | None = None
    retryable: bool = False
    primary: str | None = None
    in_transaction: bool = False


class OldOk(_Old, tag="ok", frozen=True):
    id: int
    lsn: int = 0
    in_transaction: bool = False
    info: dict[str, Any] = {}


def test_an_older_driver_still_understands_every_answer(member: Any) -> None:
    host, port = member.proc.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    decoder: FrameDecoder[Any] = FrameDecoder(OldWelcome | OldResult | OldError | OldOk)

    def ask(message: m.Message) -> Any:
        sock.sendall(encode(message))
        while (answer := decoder.next_message()) is None:
            decoder.feed(sock.recv(65536))
        return answer

    try:
        welcome = ask(m.Hello(version=1, database="app", client="litemirror-python"))
        assert isinstance(welcome, OldWelcome)
        requests = [
            m.Execute(id=1, sql="CREATE TABLE t (x UNIQUE)"),
            m.Execute(id=2, sql="INSERT INTO t VALUES (1), (2)"),
            m.Execute(id=3, sql="INSERT INTO t VALUES (1)"),
            m.Execute(id=4, sql="INSERT INTO t VALUES (3)", begin=True),
            m.Commit(id=5),
            m.Execute(id=6, sql="SELECT count(*) FROM t"),
            m.Execute(id=7, sql="SELEC"),
        ]
        answers = [ask(r) for r in requests]
    finally:
        sock.close()
    kinds = [type(a).__name__ for a in answers]
    assert kinds == [
        "OldResult", "OldResult", "OldError", "OldResult", "OldOk", "OldResult", "OldError",
    ]  # fmt: skip
    assert answers[1].rowcount == 2
    assert answers[2].kind == "IntegrityError" and answers[2].sqlite_code == 19
    assert answers[5].rows == [[3]]
    # This release's driver, on the same member, gets the newer fields.
    conn = litemirror.connect(member.url())
    conn.execute("INSERT INTO t VALUES (4)")
    try:
        conn.execute("INSERT INTO t VALUES (4)")
    except litemirror.IntegrityError as exc:
        assert exc.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
    assert conn.total_changes == 1
    conn.close()
