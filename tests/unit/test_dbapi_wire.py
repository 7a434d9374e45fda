"""The protocol grows without breaking older peers (see protocol/messages.py, "Growing").

An older driver's decoder is modelled by the answer messages as protocol
version 1 first defined them, with unknown fields refused: what a member sends
to a driver that announced no features must decode there unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from litemirror.protocol import messages as m
from litemirror.protocol.handshake import check_opening


class _Old(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True):
    pass


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


OLD = OldResult | OldError

WITHOUT_FEATURES: list[m.Message] = [
    m.Result(id=1, columns=[m.Column(name="a", decltype="INTEGER")], rows=[[1]], lsn=5),
    m.Result(id=2, rowcount=3, lastrowid=9, in_transaction=True, done=False),
    m.Error(id=3, kind="IntegrityError", message="UNIQUE constraint failed: t.x", sqlite_code=19),
    m.Error(id=4, kind="NotPrimaryError", message="no", retryable=True, primary="h:1"),
]


@pytest.mark.parametrize("message", WITHOUT_FEATURES)
def test_an_older_driver_decodes_answers_sent_without_features(message: m.Message) -> None:
    old = msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=OLD)
    for field in old.__struct_fields__:
        assert getattr(old, field) == getattr(message, field) or field == "columns"


def test_the_newer_fields_reach_a_driver_that_asked() -> None:
    result = m.Result(id=1, changes=4)
    error = m.Error(
        id=2, kind="IntegrityError", message="x", sqlite_code=19, changes=1,
        sqlite_errorcode=2067, sqlite_errorname="SQLITE_CONSTRAINT_UNIQUE",
    )  # fmt: skip
    for message in (result, error):
        data = msgspec.msgpack.encode(message)
        assert msgspec.msgpack.decode(data, type=m.ServerMessage) == message
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(data, type=OLD)  # why the member asks first


@pytest.mark.parametrize(
    ("client", "features"),
    [
        ("litemirror-python", frozenset()),
        ("litemirror-cli", frozenset()),
        (m.client_name("litemirror-python"), frozenset(m.FEATURES)),
        ("litemirror-python+changes", frozenset({"changes"})),
        ("other+changes+unknown", frozenset({"changes", "unknown"})),
    ],
)
def test_client_features(client: str, features: frozenset[str]) -> None:
    assert m.client_features(client) == features
    hello = m.Hello(version=m.PROTOCOL_VERSION, database="app", client=client)
    assert check_opening(hello) is None  # an older member accepts the name as well


def test_snapshot_messages_round_trip() -> None:
    for message in (
        m.Snapshot(id=1, min_lsn=7),
        m.FileChunk(id=1, offset=0, data=b"SQLite format 3\x00"),
        m.FileChunk(id=1, offset=16, data=b"", last=True, size=16, digest="ab" * 8, lsn=7),
    ):
        kind = m.ClientMessage if isinstance(message, m.Snapshot) else m.ServerMessage
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=kind) == message
