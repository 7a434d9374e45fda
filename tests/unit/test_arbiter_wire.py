"""Arbiter wire messages: every request kind survives the wire, answers become reports."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from litemirror.errors import FrameTooLargeError, ProtocolError
from litemirror.failover import (
    Arbiter,
    ArbiterRecord,
    ArbiterReport,
    ArbiterRequest,
    Claim,
    HandOver,
    SetBackup,
)
from litemirror.protocol import arbiter as wire
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode

REQUESTS: list[ArbiterRequest] = [
    Claim("b", 3, 2),
    Claim("c", 7, 6, force=True),
    SetBackup("a", 2, True),
    SetBackup("a", 2, False),
    HandOver("a", 4, "b"),
]


def through_frames(msg: msgspec.Struct, kind: object) -> object:
    dec: FrameDecoder[object] = FrameDecoder(kind, max_frame=wire.MAX_FRAME)
    dec.feed(encode(msg))
    out = dec.next_message()
    assert dec.next_message() is None and dec.buffered == 0
    return out


@pytest.mark.parametrize("req", REQUESTS, ids=repr)
def test_request_round_trip(req: ArbiterRequest) -> None:
    w = wire.wire_request(req)
    assert wire.from_wire(w) == req
    beat = through_frames(wire.ArbBeat(seq=5, request=w), wire.FromMember)
    assert isinstance(beat, wire.ArbBeat) and beat.seq == 5
    assert beat.request is not None and wire.from_wire(beat.request) == req


def test_plain_beat_carries_no_request() -> None:
    assert through_frames(wire.ArbBeat(seq=1), wire.FromMember) == wire.ArbBeat(1, None)


@pytest.mark.parametrize("req", [None, *REQUESTS], ids=repr)
@pytest.mark.parametrize("refused", [None, "the arbiter still has contact with the primary a"])
def test_answer_round_trip(req: ArbiterRequest | None, refused: str | None) -> None:
    report = ArbiterReport(
        record=ArbiterRecord(epoch=4, holder="a", backup_active=True, handover_to="b"),
        in_contact=frozenset({"b", "a"}),
        answered=req,
        refused=refused if req is not None else None,
    )
    ans = through_frames(wire.answer_of(9, report), wire.FromArbiter)
    assert isinstance(ans, wire.ArbAnswer)
    assert ans.seq == 9 and ans.in_contact == ["a", "b"]
    assert wire.to_report(ans) == report


@given(
    member=st.text(min_size=1, max_size=12),
    epoch=st.integers(0, 2**62),
    other=st.text(min_size=1, max_size=12),
    flag=st.booleans(),
    kind=st.sampled_from(["claim", "setbackup", "handover"]),
)
def test_any_request_round_trips(
    member: str, epoch: int, other: str, flag: bool, kind: str
) -> None:
    req: ArbiterRequest
    if kind == "claim":
        req = Claim(member, epoch + 1, epoch, flag)
    elif kind == "setbackup":
        req = SetBackup(member, epoch, flag)
    else:
        req = HandOver(member, epoch, other)
    beat = through_frames(wire.ArbBeat(1, wire.wire_request(req)), wire.FromMember)
    assert isinstance(beat, wire.ArbBeat) and beat.request is not None
    assert wire.from_wire(beat.request) == req


def test_pure_arbiter_answers_survive_the_wire() -> None:
    """What the arbiter process sends is exactly what the pure arbiter decided."""
    arb = Arbiter()
    steps: list[tuple[str, ArbiterRequest | None]] = [
        ("a", None),
        ("a", Claim("a", 1, 0)),
        ("b", Claim("b", 1, 0)),  # refused: epoch 1 is taken
        ("b", SetBackup("b", 1, True)),  # refused: b does not hold it
        ("a", SetBackup("a", 1, True)),
        ("a", HandOver("a", 1, "b")),
        ("b", Claim("b", 2, 1)),
    ]
    for seq, (member, req) in enumerate(steps, 1):
        arb, report = arb.handle(member, req)
        ans = through_frames(wire.answer_of(seq, report), wire.FromArbiter)
        assert isinstance(ans, wire.ArbAnswer)
        assert wire.to_report(ans) == report
    assert arb.record == ArbiterRecord(epoch=2, holder="b")


def test_opening_accepts_member_hello_and_control_hello() -> None:
    hello = wire.ArbHello(version=wire.ARB_VERSION, mirror="m", member="a")
    assert through_frames(hello, wire.ArbOpening) == hello
    ctl = m.Hello(version=m.PROTOCOL_VERSION, database="")
    assert through_frames(ctl, wire.ArbOpening) == ctl


def test_error_reaches_the_member() -> None:
    err = m.Error(id=0, kind="ConfigError", message="wrong mirror")
    assert through_frames(err, wire.FromArbiter) == err


@pytest.mark.parametrize(
    "body",
    [
        msgspec.msgpack.encode({"t": "abeat", "seq": 1, "bogus": True}),  # unknown field
        msgspec.msgpack.encode({"t": "abeat", "seq": "one"}),  # wrong type
        msgspec.msgpack.encode({"t": "abeat", "seq": 1, "request": {"t": "hello"}}),
        msgspec.msgpack.encode({"t": "exec", "id": 1, "sql": "x"}),  # not an arbiter message
        b"\xc1\xc1",
    ],
)
def test_malformed_beats_are_refused(body: bytes) -> None:
    dec: FrameDecoder[object] = FrameDecoder(wire.FromMember, max_frame=wire.MAX_FRAME)
    dec.feed(struct.pack(">I", len(body)) + body)
    with pytest.raises(ProtocolError, match="malformed frame"):
        dec.next_message()


def test_frame_limit_is_64_kib() -> None:
    dec: FrameDecoder[object] = FrameDecoder(wire.FromMember, max_frame=wire.MAX_FRAME)
    with pytest.raises(FrameTooLargeError):
        dec.feed(struct.pack(">I", 64 * 1024 + 1))


def test_describe_names_member_and_epoch() -> None:
    assert wire.describe(Claim("b", 3, 2)) == "b's claim to epoch 3 over epoch 2"
    assert "operator promote" in wire.describe(Claim("c", 3, 2, force=True))
    assert wire.describe(SetBackup("a", 2, False)) == (
        "a's request to record its backup inactive at epoch 2"
    )
    assert wire.describe(HandOver("a", 4, "b")) == "a's handover of epoch 4 to b"
