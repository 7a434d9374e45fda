"""Fuzz targets for the first bytes of a connection: the member's and the arbiter's handshake.

An input is what a stranger sends to a port before anything is
authenticated. Byte 0 picks the frame limit, byte 1 how the stream is cut
into reads (0: one read), the rest is the stream — the layout of the
``frames`` target, so the same repairs apply. The target does what a
listener does: :func:`classify_first_bytes` on the first bytes, the opening
decoder, :func:`check_opening` on the opening message, then the union the
connection goes on with (``ClientMessage`` after ``Hello``, the replication
or peer messages after a member's hello, ``ArbBeat`` at the arbiter).

The contract checked, beyond "only ProtocolError":

- ``classify_first_bytes`` answers one of its four words, and a shorter
  prefix never contradicts the answer for the first five bytes;
- a start it calls TLS or HTTP is refused as a too-large frame as soon as
  four bytes are in, whatever the frame limit (it cannot also be a frame);
- ``check_opening`` returns None or one printable line (names are quoted
  with ``repr``, so no newline or terminal escape reaches a log);
- an opening it accepts has names of the configured shapes, and every
  decoded message survives a re-encode round trip.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from litemirror.errors import FrameTooLargeError, ProtocolError
from litemirror.protocol import arbiter, fields, handshake, peer, replication
from litemirror.protocol import messages as m
from litemirror.protocol.framing import DEFAULT_MAX_FRAME, HEADER, FrameDecoder, encode
from litemirror.protocol.handshake import check_opening, classify_first_bytes

from .contract import Finding, _kind_of, _roundtrip, _unexpected

KINDS = ("tls", "litemirror", "http", "unknown")
#: The member port's limits: the opening limit the listener should use, a
#: member configured with 1 MiB frames, the default, and a tiny one.
MEMBER_LIMITS = [handshake.MAX_OPENING_FRAME, 1 << 20, DEFAULT_MAX_FRAME, 16]
ARBITER_LIMITS = [arbiter.MAX_FRAME, 16]

#: What a connection reads after each accepted opening message.
MEMBER_NEXT: dict[type, Any] = {
    m.Hello: m.ClientMessage,
    replication.ReplHello: replication.FromMember,
    peer.PeerHello: peer.FromPeer,
}
ARBITER_NEXT: dict[type, Any] = {arbiter.ArbHello: arbiter.FromMember, m.Hello: m.ClientMessage}


def _classify(stream: bytes) -> str:
    kind = classify_first_bytes(stream[: handshake.CLASSIFY_BYTES])
    if kind not in KINDS:
        raise Finding(f"classify_first_bytes answered {kind!r}", "classify-answer")
    if kind != "unknown":
        for n in range(1, min(len(stream), handshake.CLASSIFY_BYTES)):
            if classify_first_bytes(stream[:n]) != kind:
                raise Finding(
                    f"the first {n} bytes classify as {classify_first_bytes(stream[:n])}, "
                    f"the first {handshake.CLASSIFY_BYTES} as {kind}",
                    "classify-prefix",
                )
    return kind


def _check_names(msg: Any) -> None:
    """An accepted opening: every name must have the configured shape."""
    names = []
    if isinstance(msg, m.Hello):
        if msg.database not in ("", handshake.SYSTEM_DATABASE):
            names.append((handshake.DATABASE_RE, msg.database))
    else:
        names += [(handshake.MIRROR_RE, msg.mirror), (handshake.MEMBER_RE, msg.member)]
    for pattern, name in names:
        if not pattern.fullmatch(name):
            raise Finding(f"check_opening accepted the name {name!r}", "accepted-bad-name")


def _opening(data: bytes, union: Any, limits: list[int], following: dict[type, Any]) -> str:
    if len(data) < 2:
        return "short"
    limit = limits[data[0] % len(limits)]
    step = (data[1] & 0x3F) or len(data)
    stream = data[2:]
    kind = _classify(stream)
    decoder: FrameDecoder[Any] = FrameDecoder(union, max_frame=limit)
    plain = msgspec.msgpack.Decoder(union)
    got: list[str] = []
    said = "ok"
    try:
        for i in range(0, len(stream), step):
            decoder.feed(stream[i : i + step])
            while (msg := decoder.next_message()) is not None:
                got.append(type(msg).__name__)
                _roundtrip(msg, plain.decode, lambda v: encode(v)[HEADER.size :])
                if len(got) > 1:
                    continue
                refusal = check_opening(msg)
                if refusal is not None:
                    if not isinstance(refusal, str) or not refusal or not refusal.isprintable():
                        raise Finding(f"check_opening said {refusal!r}", "refusal-not-a-line")
                    return f"{kind}:{got[0]}:refused:{_kind_of(refusal)}"
                _check_names(msg)
                union = following[type(msg)]
                decoder.set_kind(union)
                plain = msgspec.msgpack.Decoder(union)
        if decoder.buffered > limit + HEADER.size + step:
            raise Finding(f"decoder holds {decoder.buffered} bytes, limit {limit}", "unbounded")
    except Finding:
        raise
    except ProtocolError as exc:
        said = f"{type(exc).__name__}:{_kind_of(str(exc))}"
        if not isinstance(exc, FrameTooLargeError) and kind in ("tls", "http") and not got:
            raise Finding(
                f"a {kind} start was read as a frame: {exc}", "tls-or-http-as-frame"
            ) from exc
        return f"{kind}:{','.join(got[:3])}:{said}"
    except Exception as exc:
        raise _unexpected(exc) from exc
    if kind in ("tls", "http") and len(stream) >= HEADER.size:
        raise Finding(f"a {kind} start was not refused as a frame", "tls-or-http-as-frame")
    return f"{kind}:{','.join(got[:3])}:{said}"


def member_handshake(data: bytes) -> str:
    return _opening(data, m.OpeningMessage, MEMBER_LIMITS, MEMBER_NEXT)


def arbiter_handshake(data: bytes) -> str:
    return _opening(data, arbiter.ArbOpening, ARBITER_LIMITS, ARBITER_NEXT)


# -------------------------------------------------------------------- seeds

#: Not a real ClientHello (see the tls_clienthello target for those): the
#: record and handshake headers are what the classification looks at.
TLS_START = bytes.fromhex("16030100c4010000c00303") + bytes(32)
HTTP_START = b"GET /health HTTP/1.1\r\nHost: a:7701\r\n\r\n"


def _member_openings() -> list[tuple[msgspec.Struct, msgspec.Struct]]:
    """(opening, a message the connection goes on with) as the senders in src/ build them."""
    return [
        (m.Hello(version=1, database="app", user="alice", password="s3cret"), m.Ping(id=1)),
        (m.Hello(version=1, database="", read_only=True, client="litemirror-cli"),
         m.AdminRequest(id=1, action="db_add", args={"name": "x", "from": None})),
        (m.Hello(version=1, database="_system", user="admin", password="p" * 12),
         m.Execute(id=1, sql="SELECT 1", params=[1])),
        (replication.ReplHello(version=replication.REPL_VERSION, mirror="mir", member="b",
                               kind="failover", last_lsn=7, last_epoch=1, compression="zstd"),
         replication.ReplAck(received=3, durable=2, applied=1)),
        (replication.ReplHello(version=replication.REPL_VERSION, mirror="mir", member="dr-1",
                               kind="dr", last_lsn=0, last_epoch=0, reseed=True),
         replication.SeedRequest(db="app")),
        (peer.PeerHello(version=1, mirror="mir", member="a"),
         peer.PeerBeat(state="backup active", epoch=2, holder="a", backup_active=True)),
    ]  # fmt: skip


def _arbiter_openings() -> list[tuple[msgspec.Struct, msgspec.Struct]]:
    return [
        (arbiter.ArbHello(version=1, mirror="mir", member="a"),
         arbiter.ArbBeat(seq=1, request=arbiter.WireClaim(member="a", epoch=3, over_epoch=2))),
        (arbiter.ArbHello(version=1, mirror="mir", member="b"), arbiter.ArbBeat(seq=1)),
        (m.Hello(version=1, database="", read_only=True, client="litemirror-cli"),
         m.StatusRequest(id=1)),
    ]  # fmt: skip


def seeds(target: str) -> list[bytes]:
    pairs = _member_openings() if target == "handshake" else _arbiter_openings()
    out = [bytes([i, (i * 7) % 64]) + encode(a) + encode(b) for i, (a, b) in enumerate(pairs)]
    return [*out, b"\x00\x00" + TLS_START, b"\x00\x05" + HTTP_START]


# ------------------------------------------------------ structured inputs

_GOOD_CHARS = "abcXYZ019"
_ODD = ["_", "-", "\n", " ", "\x00", "\x1b", "é", "\u202e", "/", ".", "$", "\U0001f600"]


def random_name(rnd: random.Random) -> str:
    """A name near the shapes and lengths the checks care about."""
    r = rnd.random()
    if r < 0.15:
        return rnd.choice(["", "_system", "_System", "arbiter", "a\n", "../x", "A" * 15])
    n = rnd.choice([1, 2, 14, 15, 16, 31, 32, 33, 63, 64, 65, rnd.randrange(1, 80)])
    chars = [rnd.choice(_GOOD_CHARS) for _ in range(n)]
    for _ in range(rnd.choice((0, 0, 1, 2))):
        chars[rnd.randrange(n)] = rnd.choice(_ODD)
    return "".join(chars)


def _number(rnd: random.Random) -> int:
    return rnd.choice([0, 1, 1, 1, 2, -1, 0xFFFF, 0x10000, 1 << 63, -(1 << 63), (1 << 64) - 1])


def random_structured(target: str, rnd: random.Random) -> bytes:
    """An opening with random names and numbers, encoded field by field (so any value fits)."""
    pairs = _member_openings() if target == "handshake" else _arbiter_openings()
    opening, then = rnd.choice(pairs)
    fields_ = msgspec.structs.asdict(opening)
    for k, v in fields_.items():
        if rnd.random() < 0.5:
            if isinstance(v, str) or v is None:
                fields_[k] = random_name(rnd) if rnd.random() < 0.9 else rnd.randbytes(4)
            elif isinstance(v, int) and not isinstance(v, bool):
                fields_[k] = _number(rnd)
    if rnd.random() < 0.05:
        fields_["password"] = "p" * rnd.choice([fields.PASSWORD_MAX, fields.PASSWORD_MAX + 1])
    body = msgspec.msgpack.encode({"t": opening.__struct_config__.tag, **fields_})
    stream = HEADER.pack(len(body)) + body + encode(then)
    return bytes([rnd.randrange(256), rnd.randrange(256)]) + stream
