"""Large requests: a frame's kind from its first bytes, big Execute frames read in pieces.

The piecewise reader must give exactly what decoding the whole frame gives
(the same message, the same parameter sets, the same refusals), and the
admission check must refuse a frame from its header, before its body is
buffered.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litemirror.errors import FrameTooLargeError, ProtocolError
from litemirror.protocol import messages as m
from litemirror.protocol.framing import HEADER, FrameDecoder, encode
from litemirror.protocol.large import MAX_PARAMS, PEEK_BYTES, decode_execute, peek_tag

EVERY_REQUEST: list[m.ClientMessage] = [
    m.Hello(version=1, database="app"),
    m.Execute(id=1, sql="SELECT 1"),
    m.Script(id=2, sql="SELECT 1;"),
    m.Begin(id=3),
    m.Commit(id=4, ack="durable"),
    m.Rollback(id=5),
    m.Ping(id=6),
    m.StatusRequest(id=7),
    m.AdminRequest(id=8, action="checksum", args={"name": "app"}),
    m.Snapshot(id=9),
    m.Interrupt(id=10),
]


@pytest.mark.parametrize("message", EVERY_REQUEST, ids=lambda msg: type(msg).__name__)
def test_the_kind_of_every_request_is_read_from_its_first_bytes(message: m.ClientMessage) -> None:
    body = encode(message)[HEADER.size :]
    tag = type(message).__struct_config__.tag
    assert peek_tag(body[:PEEK_BYTES]) == tag


@pytest.mark.parametrize(
    "prefix", [b"", b"\x80", b"\x81\xa1", b"\x81\xa2tt\xa4exec", b"\x91\xa1t", b"\x81\xa1t\x05"]
)
def test_what_does_not_open_like_a_message_has_no_kind(prefix: bytes) -> None:
    assert peek_tag(prefix) is None


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=300),
)
SETS = st.one_of(
    st.lists(SCALARS, max_size=6),
    st.dictionaries(st.text(min_size=1, max_size=8), SCALARS, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(
    sql=st.text(max_size=200),
    params=st.one_of(st.none(), SETS),
    many=st.one_of(st.none(), st.lists(SETS, max_size=20)),
    begin=st.booleans(),
    min_lsn=st.integers(min_value=0, max_value=2**40),
)
def test_a_large_execute_reads_as_the_whole_frame_does(
    sql: str, params: Any, many: Any, begin: bool, min_lsn: int
) -> None:
    message = m.Execute(id=5, sql=sql, params=params, many=many, begin=begin, min_lsn=min_lsn)
    body = encode(message)[HEADER.size :]
    whole = msgspec.msgpack.decode(body, type=m.Execute)
    head, sets = decode_execute(body)
    assert head == msgspec.structs.replace(whole, many=None)
    if many is None:
        assert sets is None
    else:
        assert sets is not None and len(sets) == len(many)
        assert list(sets) == whole.many
        assert list(sets) == whole.many  # iterable again (a job may run twice)


def _refused(body: bytes) -> str:
    try:
        _, sets = decode_execute(body)
        if sets is not None:
            list(sets)
    except ProtocolError as exc:
        return exc.message
    return ""


def _body(**fields: Any) -> bytes:
    return msgspec.msgpack.encode({"t": "exec", "id": 1, "sql": "SELECT ?", **fields})


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (_body(params=[[1, 2]]), "not a SQLite value"),
        (_body(params=[{"a": 1}]), "not a SQLite value"),
        (_body(many=[[1], [[1] * 1000]]), "not a SQLite value"),
        (_body(many=[[1], 2]), "must be a list or a map"),
        (_body(many={"a": [1]}), "many must be a list"),
        (_body(params=[1] * (MAX_PARAMS + 1)), "more than SQLite binds"),
        (_body(many=[[2**64 - 1]]), "does not fit SQLite's 64-bit INTEGER"),
        (_body(many=[[msgspec.msgpack.Ext(1, b"x")]]), "not a SQLite value"),
        (_body(extra=1), "unknown field"),
        (_body(id=-1), "malformed frame"),
        (_body(many=[[1]])[:-1], "ends in the middle"),
        (_body(many=[[1]]) + b"\x00", "bytes after the message"),
        (msgspec.msgpack.encode([1, 2]), "a message is a map"),
        (_body(many=[["\u00e9"]]).replace(b"\xa2\xc3\xa9", b"\xa2\xff\xfe"), "malformed"),
    ],
)
def test_what_the_whole_frame_refuses_the_pieces_refuse(body: bytes, said: str) -> None:
    assert said in _refused(body)


def test_an_admission_check_refuses_a_frame_before_its_body_is_buffered() -> None:
    seen: list[tuple[int, bytes]] = []

    def admit(length: int, prefix: bytes) -> None:
        seen.append((length, prefix))
        if peek_tag(prefix) == "exec" and length > 1000:
            raise FrameTooLargeError(f"request of {length} bytes is too large")

    decoder: FrameDecoder[Any] = FrameDecoder(m.ClientMessage)
    decoder.set_admission(admit, PEEK_BYTES)
    small = encode(m.Ping(id=1))
    decoder.feed(small)
    assert decoder.next_message() == m.Ping(id=1)
    big = encode(m.Execute(id=2, sql="x" * 5000))
    with pytest.raises(FrameTooLargeError, match="5"):
        decoder.feed(big[: HEADER.size + PEEK_BYTES])  # header and a peek: enough to refuse
    assert [length for length, _ in seen] == [len(small) - HEADER.size, len(big) - HEADER.size]


def test_each_frame_is_admitted_once_even_when_it_arrives_byte_by_byte() -> None:
    seen: list[int] = []
    decoder: FrameDecoder[Any] = FrameDecoder(m.ClientMessage)
    decoder.set_admission(lambda length, _prefix: seen.append(length), PEEK_BYTES)
    frames = encode(m.Ping(id=1)) + encode(m.Execute(id=2, sql="SELECT 1"))
    got = []
    for i in range(len(frames)):
        decoder.feed(frames[i : i + 1])
        while (body := decoder.next_body()) is not None:
            got.append(decoder.decode(body))
    assert got == [m.Ping(id=1), m.Execute(id=2, sql="SELECT 1")]
    assert len(seen) == 2


@settings(max_examples=2000, deadline=None)
@given(
    many=st.lists(SETS, min_size=1, max_size=5),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
    cut=st.integers(min_value=0),
)
def test_damaged_frames_are_refused_as_malformed_and_nothing_else(
    many: Any, flips: list[tuple[int, int]], cut: int
) -> None:
    """Any damage to a frame gives a message or ProtocolError, never another exception."""
    body = bytearray(encode(m.Execute(id=1, sql="INSERT INTO t VALUES (?)", many=many))[4:])
    for where, value in flips:
        body[where % len(body)] = value
    body = body[: len(body) - cut % 4]
    try:
        _, sets = decode_execute(bytes(body))
        if sets is not None:
            list(sets)
    except ProtocolError:
        pass
