"""Framing: bytes in, messages out — no sockets."""

from __future__ import annotations

import asyncio
import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litemirror.errors import FrameTooLargeError, ProtocolError
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode, read_body, read_message

SAMPLES: list[m.Message] = [
    m.Hello(version=1, database="app", user="u", password="p"),
    m.Execute(id=7, sql="INSERT INTO t VALUES (?, ?)", params=[2**63 - 1, b"\x00\xff"]),
    m.Execute(id=8, sql="SELECT :a", params={"a": -(2**63)}),
    m.Execute(id=9, sql="INSERT INTO t VALUES (?)", many=[[1], [2.5], [None], ["x"]]),
    m.Result(id=7, columns=[m.Column(name="a", decltype="INT")], rows=[[1, "x", None, b"b"]]),
    m.Error(id=3, kind="IntegrityError", message="UNIQUE constraint failed: t.id", sqlite_code=19),
    m.Commit(id=4, ack="durable"),
]


def test_round_trip_byte_by_byte() -> None:
    stream = b"".join(encode(x) for x in SAMPLES)
    dec: FrameDecoder[m.AnyMessage] = FrameDecoder()
    out: list[object] = []
    for i in range(len(stream)):
        dec.feed(stream[i : i + 1])
        while (msg := dec.next_message()) is not None:
            out.append(msg)
    assert out == SAMPLES


def test_oversized_length_refused_before_body() -> None:
    dec: FrameDecoder[m.AnyMessage] = FrameDecoder(max_frame=1024)
    with pytest.raises(FrameTooLargeError, match="exceeds the limit of 1024"):
        dec.feed(struct.pack(">I", 1025))


def test_unknown_tag_and_bad_field_types() -> None:
    dec: FrameDecoder[m.AnyMessage] = FrameDecoder()
    body = msgspec.msgpack.encode({"t": "nope", "id": 1})
    dec.feed(struct.pack(">I", len(body)) + body)
    with pytest.raises(ProtocolError, match="malformed frame"):
        dec.next_message()
    dec = FrameDecoder()
    body = msgspec.msgpack.encode({"t": "exec", "id": "one", "sql": "x"})
    dec.feed(struct.pack(">I", len(body)) + body)
    with pytest.raises(ProtocolError):
        dec.next_message()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    dec: FrameDecoder[m.AnyMessage] = FrameDecoder(max_frame=4096)
    try:
        dec.feed(data)
        while dec.next_message() is not None:
            pass
    except ProtocolError:
        pass


class Chunks:
    """A stream's ``read`` that hands out the given chunks (cut to ``n``), then b""."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.asked: list[int] = []

    async def read(self, n: int) -> bytes:
        self.asked.append(n)
        if not self.chunks:
            return b""
        head = self.chunks.pop(0)
        if len(head) > n:
            self.chunks.insert(0, head[n:])
        return head[:n]


async def read_all(dec: FrameDecoder[m.AnyMessage], src: Chunks) -> list[m.AnyMessage]:
    out: list[m.AnyMessage] = []
    while True:
        msg = await read_message(dec, src.read, 7)
        if msg is None:
            return out
        out.append(msg)


def test_read_message_reads_until_each_message_is_complete() -> None:
    stream = b"".join(encode(x) for x in SAMPLES)
    src = Chunks(stream[:3], stream[3:50], stream[50:])
    assert asyncio.run(read_all(FrameDecoder(), src)) == SAMPLES
    assert set(src.asked) == {7}


def test_read_message_returns_buffered_messages_before_reading() -> None:
    src = Chunks(encode(SAMPLES[0]) + encode(SAMPLES[1]))
    dec: FrameDecoder[m.AnyMessage] = FrameDecoder()

    async def two() -> list[m.AnyMessage | None]:
        return [await read_message(dec, src.read, 1 << 20) for _ in range(2)]

    assert asyncio.run(two()) == SAMPLES[:2]
    assert src.asked == [1 << 20]


def test_read_message_end_between_frames_is_none_inside_one_is_an_error() -> None:
    assert asyncio.run(read_message(FrameDecoder(), Chunks().read)) is None
    torn = Chunks(encode(SAMPLES[0])[:-1])
    with pytest.raises(ProtocolError, match="middle of a frame"):
        asyncio.run(read_message(FrameDecoder(), torn.read))


class Gone(Exception):
    """A caller's own error for a peer that went away."""


def test_read_message_with_closed_raises_it_at_any_end_of_the_stream() -> None:
    def gone() -> Gone:
        return Gone("peer left")

    with pytest.raises(Gone, match="peer left"):
        asyncio.run(read_message(FrameDecoder(), Chunks().read, closed=gone))
    torn = Chunks(encode(SAMPLES[0])[:-1])
    with pytest.raises(Gone):
        asyncio.run(read_message(FrameDecoder(), torn.read, closed=gone))
    # Messages that did arrive are still handed out first.
    whole = Chunks(encode(SAMPLES[0]))
    assert asyncio.run(read_message(FrameDecoder(), whole.read, closed=gone)) == SAMPLES[0]


def test_read_body_hands_out_the_frame_undecoded() -> None:
    frame = encode(SAMPLES[1])
    src = Chunks(frame[:5], frame[5:])
    dec: FrameDecoder[m.AnyMessage] = FrameDecoder()
    body = asyncio.run(read_body(dec, src.read, 3))
    assert body == frame[4:]
    assert dec.decode(body) == SAMPLES[1]
    assert asyncio.run(read_body(dec, src.read)) is None
    with pytest.raises(ProtocolError, match="middle of a frame"):
        asyncio.run(read_body(FrameDecoder(), Chunks(frame[:-1]).read))


def test_read_message_malformed_frame_is_a_protocol_error_even_with_closed() -> None:
    body = msgspec.msgpack.encode({"t": "nope", "id": 1})
    src = Chunks(struct.pack(">I", len(body)) + body)
    with pytest.raises(ProtocolError, match="malformed frame"):
        asyncio.run(read_message(FrameDecoder(), src.read, closed=lambda: Gone()))
