"""The handshake checks: what the first bytes are, and whether an opening message is well formed."""

from __future__ import annotations

import ssl
from typing import Any

import msgspec
import pytest

from litemirror import config
from litemirror.errors import ProtocolError
from litemirror.protocol import arbiter, fields, handshake, peer, replication
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.protocol.handshake import check_opening, classify_first_bytes


def client_hello(version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> bytes:
    """The first flight of a real TLS client, captured without a network."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="a.example")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


HELLO = encode(m.Hello(version=m.PROTOCOL_VERSION, database="app"))
REPL = encode(
    replication.ReplHello(
        version=replication.REPL_VERSION,
        mirror="mir",
        member="b",
        kind="failover",
        last_lsn=0,
        last_epoch=0,
    )
)

CLASSIFY = [
    (client_hello(), "tls"),
    (client_hello(ssl.TLSVersion.TLSv1_3), "tls"),
    (b"\x16\x03\x00", "tls"),  # SSL 3.0 record version: still a TLS handshake to refuse
    (HELLO, "litemirror"),
    (REPL, "litemirror"),
    (encode(arbiter.ArbHello(version=1, mirror="mir", member="a")), "litemirror"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "http"),
    (b"POST /admin/switchover HTTP/1.1\r\n", "http"),
    (b"HEAD /health HTTP/1.0\r\n", "http"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http"),
    (b"", "unknown"),
    (b"\x16\x02\x00", "unknown"),  # not a TLS record version
    (b"\x16\x03\x05\x00", "unknown"),  # a TLS version that does not exist
    (b"\x15\x03\x03\x00\x02", "unknown"),  # a TLS alert, not a handshake
    (b"\x00\x00\x00\x00", "unknown"),  # an empty frame
    (b"\x00\x00\x00\x05\x91\xc0", "unknown"),  # a frame that is not a map
    (b"\x00\x00\x00\x05\xa5hello", "unknown"),
    (b"\x01\x00\x00\x00\x80", "unknown"),  # 16 MiB and more: no opening is that large
    (b"get / HTTP/1.1\r\n", "unknown"),  # methods are case-sensitive (RFC 9110 §9.1)
    (b"GETS / HTTP/1.1\r\n", "unknown"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", "unknown"),
    (b"\xff\xfb\x1f", "unknown"),  # telnet negotiation
]


@pytest.mark.parametrize(("data", "kind"), CLASSIFY, ids=lambda v: repr(v)[:24])
def test_first_bytes_are_classified(data: bytes, kind: str) -> None:
    assert classify_first_bytes(data) == kind


@pytest.mark.parametrize(
    "data",
    [client_hello(), HELLO, REPL, b"GET / HTTP/1.1\r\n", b"DELETE /x HTTP/1.1\r\n"],
    ids=["tls", "hello", "replhello", "get", "delete"],
)
def test_every_prefix_of_a_known_start_gets_the_same_answer(data: bytes) -> None:
    """A listener may have only part of the first bytes: a prefix never contradicts the whole."""
    whole = classify_first_bytes(data)
    assert whole != "unknown"
    assert {classify_first_bytes(data[:n]) for n in range(1, len(data) + 1)} == {whole}
    assert classify_first_bytes(data[: handshake.CLASSIFY_BYTES]) == whole


# --------------------------------------------------------------- openings

#: Opening messages as every sender in src/ builds them: all accepted.
GOOD: list[tuple[Any, object]] = [
    (m.OpeningMessage, m.Hello(version=1, database="app")),
    (m.OpeningMessage, m.Hello(version=1, database="", read_only=True, client="litemirror-cli")),
    (m.OpeningMessage, m.Hello(version=1, database="_system", user="alice", password="pw")),
    (m.OpeningMessage, m.Hello(version=1, database="a" * 64, user="u" * 128, password="p" * 1024)),
    (m.OpeningMessage, m.Hello(version=1, database="Sales-2024_q1", user="Jürgen Ø")),
    (
        m.OpeningMessage,
        replication.ReplHello(
            version=replication.REPL_VERSION, mirror="mir", member="dr-1", kind="dr",
            last_lsn=7, last_epoch=2,
            compression="zstd", reseed=True,
        ),
    ),
    (m.OpeningMessage, peer.PeerHello(version=1, mirror="A" * 15, member="b" * 32)),
    (arbiter.ArbOpening, arbiter.ArbHello(version=1, mirror="mir", member="node_1")),
    (arbiter.ArbOpening, m.Hello(version=1, database="", client="litemirror-cli")),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "msg"), GOOD, ids=lambda v: type(v).__name__)
def test_legitimate_openings_pass_the_wire_and_the_check(kind: Any, msg: Any) -> None:
    dec: FrameDecoder[Any] = FrameDecoder(kind, max_frame=handshake.MAX_OPENING_FRAME)
    dec.feed(encode(msg))
    assert dec.next_message() == msg
    assert check_opening(msg) is None


def _hello(**kw: Any) -> m.Hello:
    return m.Hello(**{"version": 1, "database": "app", **kw})


def _repl(**kw: Any) -> replication.ReplHello:
    base = {"version": replication.REPL_VERSION, "mirror": "mir", "member": "b", "kind": "failover"}
    return replication.ReplHello(**{**base, "last_lsn": 0, "last_epoch": 0, **kw})


REFUSED = [
    (_hello(version=2), "client protocol version 2 is not supported"),
    (_hello(version=0), "client protocol version 0"),
    (_hello(database="_litemirror_meta"), "database name '_litemirror_meta' is not valid"),
    (_hello(database="_System"), "database name '_System'"),
    (_hello(database="-app"), "database name '-app'"),
    (_hello(database="app\n"), "database name 'app\\n'"),
    (_hello(database="../etc/passwd"), "is not valid"),
    (_hello(database="café"), "database name 'café'"),
    (_hello(database="a" * 65), "use 1 to 64 letters"),
    (_hello(client="x\x1b[2J"), "client name"),
    (_hello(user=""), "user name '' must not be empty"),
    (_hello(user="bob\nroot"), "control characters"),
    (_repl(version=9), "replication protocol version 9"),
    (_repl(mirror=""), "mirror name '' is not valid"),
    (_repl(mirror="a" * 16), "use 1 to 15 letters or digits"),
    (_repl(mirror="my-mirror"), "mirror name 'my-mirror'"),
    (_repl(member="b\n"), "member name 'b\\n' is not valid"),
    (_repl(member="_b"), "member name '_b'"),
    (_repl(member="b" * 33), "use 1 to 32 letters"),
    (_repl(kind="primary"), "member kind 'primary' is not one of dr, failover, reporting"),
    (_repl(compression="lz4"), "compression 'lz4' is not one of off, zstd"),
    (peer.PeerHello(version=2, mirror="mir", member="a"), "peer protocol version 2"),
    (peer.PeerHello(version=1, mirror="mir", member=""), "member name ''"),
    (arbiter.ArbHello(version=0, mirror="mir", member="a"), "arbiter protocol version 0"),
    (arbiter.ArbHello(version=1, mirror="", member="a"), "mirror name ''"),
    (m.Execute(id=1, sql="SELECT 1"), "must open with Hello"),
    (m.StatusRequest(id=1), "not StatusRequest"),
    (replication.ReplAck(received=1, durable=1, applied=1), "not ReplAck"),
]


@pytest.mark.parametrize(("msg", "said"), REFUSED, ids=lambda v: repr(v)[:40])
def test_malformed_openings_are_refused_with_a_sentence(msg: object, said: str) -> None:
    refusal = check_opening(msg)
    assert refusal is not None and said in refusal


def test_name_patterns_are_the_configs() -> None:
    assert handshake.MIRROR_RE.pattern == config.NAME_RE.pattern
    assert handshake.MEMBER_RE.pattern == config.MEMBER_RE.pattern
    assert handshake.DATABASE_RE.pattern == config.DB_RE.pattern


def test_the_largest_legitimate_hello_fits_the_opening_frame_limit() -> None:
    wide = "\U0001f600"  # 4 bytes in UTF-8: the most a character can take
    hello = m.Hello(
        version=1,
        database="d" * fields.NAME_MAX,
        client=wide * fields.NAME_MAX,
        user=wide * fields.USER_MAX,
        password=wide * fields.PASSWORD_MAX,
    )
    assert len(encode(hello)) < handshake.MAX_OPENING_FRAME / 4


# ----------------------------------------------------------- field bounds

#: (union, message at the bound, the same field one step past it)
BOUNDS: list[tuple[Any, msgspec.Struct, msgspec.Struct]] = [
    (m.OpeningMessage, _hello(database="a" * 64), _hello(database="a" * 65)),
    (m.OpeningMessage, _hello(user="u" * 128), _hello(user="u" * 129)),
    (m.OpeningMessage, _hello(password="p" * 1024), _hello(password="p" * 1025)),
    (m.OpeningMessage, _hello(client="c" * 64), _hello(client="c" * 65)),
    (m.OpeningMessage, _hello(version=0xFFFF), _hello(version=0x10000)),
    (m.OpeningMessage, _hello(version=0), _hello(version=-1)),
    (m.OpeningMessage, _repl(last_lsn=0), _repl(last_lsn=-1)),
    (m.OpeningMessage, _repl(kind="k" * 32), _repl(kind="k" * 33)),
    (m.ClientMessage, m.Commit(id=1, ack="durable"), m.Commit(id=1, ack="d" * 33)),
    (m.ClientMessage, m.Execute(id=0, sql="SELECT 1"), m.Execute(id=-1, sql="SELECT 1")),
    (m.ClientMessage, m.Execute(id=1, sql="", min_lsn=0), m.Execute(id=1, sql="", min_lsn=-5)),
    (
        m.ClientMessage,
        m.AdminRequest(id=1, action="db_add", args={f"k{i}": i for i in range(64)}),
        m.AdminRequest(id=1, action="db_add", args={f"k{i}": i for i in range(65)}),
    ),
    (
        m.ClientMessage,
        m.AdminRequest(id=1, action="db_add", args={"n" * 64: 1}),
        m.AdminRequest(id=1, action="db_add", args={"n" * 65: 1}),
    ),
    (m.ServerMessage, m.Welcome(1, "mir", "a", "primary", 0, 0, "h" * 300),
     m.Welcome(1, "mir", "a", "primary", 0, 0, "h" * 301)),
    (replication.FromPrimary, replication.SeedBegin(1, 1, ["a" * 64]),
     replication.SeedBegin(1, 1, ["a" * 65])),
    (replication.FromPrimary, replication.Heartbeat(0, 0, 0), replication.Heartbeat(0, -1, 0)),
    (replication.FromMember, replication.ReplAck(0, 0, 0), replication.ReplAck(0, 0, -1)),
    (peer.FromPeer, peer.PeerBeat("backup active", 1, "a" * 64),
     peer.PeerBeat("backup active", 1, "a" * 65)),
    (arbiter.FromMember, arbiter.ArbBeat(0, arbiter.WireHandOver("a", 1, "b" * 64)),
     arbiter.ArbBeat(0, arbiter.WireHandOver("a", 1, "b" * 65))),
    (arbiter.FromArbiter, arbiter.ArbAnswer(1, 1, "a", True, None, ["a"], refused="r" * 4096),
     arbiter.ArbAnswer(1, 1, "a", True, None, ["a"], refused="r" * 4097)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "at", "past"), BOUNDS, ids=lambda v: type(v).__name__)
def test_fields_are_bounded_when_decoded(
    kind: Any, at: msgspec.Struct, past: msgspec.Struct
) -> None:
    dec: FrameDecoder[Any] = FrameDecoder(kind)
    dec.feed(encode(at))
    assert dec.next_message() == at
    dec.feed(encode(past))
    with pytest.raises(ProtocolError, match="malformed frame: Expected"):
        dec.next_message()
