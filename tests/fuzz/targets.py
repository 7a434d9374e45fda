"""Fuzz targets: each takes one input and raises ``Finding`` if a parser broke its contract.

The contract of every parser under test is "messages (records, ops) or the
project's documented errors, whatever the bytes". A target feeds the input,
accepts the documented errors, and checks what came out: a decoded value
must re-encode to something that decodes to the same value, and the record
scanner's offsets and records must describe the input exactly. Anything
else — another exception, a wrong result — is a finding.

Targets:

``frames``   FrameDecoder over every message union a connection reads
             (byte 0 picks the union, byte 1 the frame limit and how the
             stream is cut into reads; the rest is the stream).
``records``  the journal record reader: record.scan, decode_record at every
             offset scan reports, find_next_record, and segfile.read_records
             over the same bytes as a file; byte 0 picks the variant.
``ops``      the engine's ops decoder (a journal record's payload).
``handshake``          a member port's first bytes: classify_first_bytes, the
                       opening decoder, check_opening, then what the connection
                       reads next (see :mod:`.openings`).
``arbiter_handshake``  the same at the arbiter's port.
``tls_clienthello``    a member's TLS server side fed mutated and synthetic
                       ClientHellos (see :mod:`.tls_hello`).
``password_hash``      the parser of stored password hashes (see
                       :mod:`.password_hash`); registered when
                       ``litemirror.security.passwords`` exists.
"""

from __future__ import annotations

import importlib.util
import io
import random
from collections.abc import Callable
from typing import Any

import msgspec

from litemirror.engine import ops
from litemirror.errors import JournalCorruptError, ProtocolError
from litemirror.journal import record as rec
from litemirror.journal import segfile
from litemirror.protocol import arbiter, peer, replication
from litemirror.protocol import messages as m
from litemirror.protocol.framing import HEADER, FrameDecoder, encode

from . import openings, tls_hello
from .contract import Finding, _roundtrip, _shape, _unexpected

#: The password target needs the password module (it came later than the others).
HAVE_PASSWORDS = importlib.util.find_spec("litemirror.security.passwords") is not None

#: The unions a FrameDecoder is used with (see server/ and client/).
UNIONS: list[tuple[str, Any]] = [
    ("OpeningMessage", m.OpeningMessage),
    ("ClientMessage", m.ClientMessage),
    ("ServerMessage", m.ServerMessage),
    ("AnyMessage", m.AnyMessage),
    ("replication.FromPrimary", replication.FromPrimary),
    ("replication.FromMember", replication.FromMember),
    ("peer.FromPeer", peer.FromPeer),
    ("arbiter.ArbOpening", arbiter.ArbOpening),
    ("arbiter.FromMember", arbiter.FromMember),
    ("arbiter.FromArbiter", arbiter.FromArbiter),
    ("replication.FromPrimary | Error", replication.FromPrimary | m.Error),  # the receiver's
]
FRAME_LIMITS = [arbiter.MAX_FRAME, 1 << 20, 16]


# ------------------------------------------------------------------- frames


def frames(data: bytes) -> str:
    """Return an outcome label (used as cheap feedback by the mutation engine)."""
    if len(data) < 2:
        return "short"
    name, kind = UNIONS[data[0] % len(UNIONS)]
    limit = FRAME_LIMITS[(data[1] >> 6) % len(FRAME_LIMITS)]
    step = (data[1] & 0x3F) or len(data)  # 0 means "everything in one read"
    stream = data[2:]
    decoder: FrameDecoder[Any] = FrameDecoder(kind, max_frame=limit)
    plain = msgspec.msgpack.Decoder(kind)
    got: list[str] = []
    try:
        for i in range(0, len(stream), step):
            decoder.feed(stream[i : i + step])
            while (msg := decoder.next_message()) is not None:
                got.append(type(msg).__name__)
                _roundtrip(msg, plain.decode, lambda v: encode(v)[HEADER.size :])
        if decoder.buffered > max(limit, 0) + HEADER.size + step:
            raise Finding(f"decoder holds {decoder.buffered} bytes, limit {limit}", "unbounded")
    except (Finding, ProtocolError) as exc:
        if isinstance(exc, Finding):
            raise
        return f"{name}:{type(exc).__name__}:{_shape(exc)}"
    except Exception as exc:
        raise _unexpected(exc) from exc
    return f"{name}:ok:{','.join(got[:4])}"


# ------------------------------------------------------------------ records


def records(data: bytes) -> str:
    if not data:
        return "empty"
    body = data[1:]
    try:
        result = rec.scan(body)
    except Exception as exc:
        raise _unexpected(exc) from exc  # scan is documented never to raise
    if not 0 <= result.good_end <= len(body):
        raise Finding(f"good_end {result.good_end} outside 0..{len(body)}", "good_end-range")
    if (result.problem is None) != (result.good_end == len(body)):
        raise Finding("problem reported inconsistently with good_end", "problem-vs-end")
    joined = b"".join(rec.encode_record(r) for r in result.records)
    if joined != body[: result.good_end]:
        raise Finding("scanned records do not re-encode to the scanned bytes", "scan-reencode")
    try:
        if result.problem is not None:
            try:
                rec.decode_record(body, result.good_end)
            except rec.RecordError:
                pass
            else:
                raise Finding("scan stopped at a record decode_record accepts", "scan-vs-decode")
        nxt = rec.find_next_record(body, (data[0] * 7) % (len(body) + 1))
        if nxt is not None:
            rec.decode_record(body, nxt)  # must not raise: it was reported valid
        _read_as_segment(data[0], body)
    except Finding:
        raise
    except rec.RecordError as exc:
        raise Finding(
            f"find_next_record pointed at an invalid record: {exc}", "next-invalid"
        ) from exc
    except JournalCorruptError as exc:
        return f"segment:{_shape(exc)}"
    except Exception as exc:
        raise _unexpected(exc) from exc
    if result.problem is None:
        return f"ok:{len(result.records) > 0}"
    return f"{result.problem.split(':')[0]}:{_shape(result.problem.split(':', 1)[1])}"


def _read_as_segment(selector: int, body: bytes) -> None:
    """The file reader: a segment header (odd selectors) then records, read two reads each."""
    path = segfile.Path("fuzz.lmj")
    if selector & 1:
        segfile.unpack_segment_header(body, path)
        start = segfile.SEGMENT_HEADER_SIZE
    else:
        start = 0
    f = io.BytesIO(body)
    for offset, item, nxt in segfile.read_records(f, start, len(body)):
        if isinstance(item, rec.Record) and rec.encode_record(item) != body[offset:nxt]:
            raise Finding("read_records returned a record that is not the bytes", "read-records")


# ---------------------------------------------------------------------- ops


def ops_target(data: bytes) -> str:
    try:
        decoded = ops.decode_ops(data)
    except JournalCorruptError as exc:
        return f"corrupt:{_shape(str(exc).split('operations: ', 1)[-1])}"
    except Exception as exc:
        raise _unexpected(exc) from exc
    for op in decoded:
        if not isinstance(op, ops.ChangesetOp | ops.SqlOp):
            raise Finding(f"decode_ops returned a {type(op).__name__}", "ops-type")
    _roundtrip(decoded, ops.decode_ops, ops.encode_ops)
    return f"ok:{len(decoded) > 0}"


TARGETS: dict[str, Callable[[bytes], str]] = {
    "frames": frames,
    "records": records,
    "ops": ops_target,
    "handshake": openings.member_handshake,
    "arbiter_handshake": openings.arbiter_handshake,
    "tls_clienthello": tls_hello.tls_clienthello,
}
if HAVE_PASSWORDS:
    from . import password_hash

    TARGETS["password_hash"] = password_hash.password_hash


# -------------------------------------------------------------------- seeds


def _sample_messages() -> list[msgspec.Struct]:
    return [
        m.Hello(version=1, database="app", user="alice", password="s3cret"),
        m.Welcome(version=1, mirror="mir", member="a", role="primary", epoch=3, lsn=99),
        m.Execute(id=1, sql="INSERT INTO t VALUES (?, ?)", params=[1, "x"]),
        m.Execute(id=2, sql="SELECT :a", params={"a": b"\x00\xff"}, many=None, begin=True),
        m.Execute(id=3, sql="INSERT INTO t VALUES (?)", many=[[1], [2.5], [None]]),
        m.Script(id=4, sql="CREATE TABLE t(a); INSERT INTO t VALUES (1)"),
        m.Begin(id=5),
        m.Commit(id=6, ack="durable"),
        m.Rollback(id=7),
        m.Ping(id=8),
        m.StatusRequest(id=9),
        m.AdminRequest(id=10, action="db_add", args={"name": "x", "from": None}),
        m.Result(id=1, columns=[m.Column(name="a", decltype="INTEGER")], rows=[[1, "b", None]]),
        m.Ok(id=2, lsn=5, info={"segment": 3}),
        m.Error(id=3, kind="NotPrimaryError", message="not primary", primary="h:1"),
        m.Error(
            id=4,
            kind="IntegrityError",
            message="x",
            sqlite_code=19,
            changes=1,
            sqlite_errorcode=2067,
            sqlite_errorname="SQLITE_CONSTRAINT_UNIQUE",
        ),
        m.Snapshot(id=11, min_lsn=3),
        m.FileChunk(id=11, offset=0, data=b"SQLite format 3\x00", last=True, size=16, lsn=3),
        replication.ReplHello(
            version=1, mirror="mir", member="b", kind="failover", last_lsn=7, last_epoch=1
        ),
        replication.ReplWelcome(
            mirror="mir", primary="a", epoch=1, first_lsn=1, last_lsn=9, mode="stream", start_lsn=8
        ),
        replication.ReplRecords(seq=1, first_lsn=1, last_lsn=1, data=_sample_records()[:80]),
        replication.ReplAck(received=3, durable=2, applied=1),
        replication.Heartbeat(lsn=3, epoch=1, ts_ms=1_700_000_000_000),
        replication.SeedBegin(start_lsn=4, epoch=1, databases=["app", "b"]),
        replication.SeedFile(db="app", offset=0, data=b"SQLite format 3\x00", last=True),
        replication.SeedEnd(start_lsn=4),
        replication.SeedRequest(db="app"),
        peer.PeerHello(version=1, mirror="mir", member="a"),
        peer.PeerBeat(state="primary", epoch=2, holder="a", backup_active=True),
        peer.PeerTakeOver(epoch=2),
        arbiter.ArbHello(version=1, mirror="mir", member="a"),
        arbiter.ArbBeat(seq=1),
        arbiter.ArbBeat(seq=2, request=arbiter.WireClaim(member="b", epoch=3, over_epoch=2)),
        arbiter.ArbBeat(seq=3, request=arbiter.WireHandOver(member="a", epoch=3, to="b")),
        arbiter.ArbBeat(seq=4, request=arbiter.WireSetBackup(member="a", epoch=3, active=False)),
        arbiter.ArbAnswer(
            seq=1, epoch=3, holder="a", backup_active=True, handover_to=None, in_contact=["a"]
        ),
    ]


def _sample_ops() -> list[bytes]:
    return [
        ops.encode_ops([]),
        ops.encode_ops([ops.SqlOp("CREATE TABLE t(a INTEGER PRIMARY KEY, b)")]),
        ops.encode_ops([ops.ChangesetOp(b"T\x02\x01\x00t\x00\x12\x00\x01\x01")]),
        ops.encode_ops([ops.SqlOp("PRAGMA user_version = 3"), ops.ChangesetOp(b"\x00" * 9)]),
    ]


def _sample_records() -> bytes:
    kinds = list(rec.RecordKind)
    out = []
    for i, payload in enumerate([*_sample_ops(), b"", b"\x00" * 40]):
        r = rec.Record(
            i + 1, 1 + i // 3, kinds[i % len(kinds)], f"db{i}", 1_700_000_000_000, payload
        )
        out.append(rec.encode_record(r))
    return b"".join(out)


def seeds(target: str) -> list[bytes]:
    """Valid inputs to start from (also what the committed corpus was made of)."""
    if target == "frames":
        msgs = _sample_messages()
        out = []
        for i, msg in enumerate(msgs):
            # Pick a union this message belongs to, so the seed decodes.
            for u, (_, kind) in enumerate(UNIONS):
                try:
                    msgspec.msgpack.Decoder(kind).decode(msgspec.msgpack.encode(msg))
                except msgspec.ValidationError:
                    continue
                step = (i * 5) % 64
                out.append(bytes([u, step]) + encode(msg) + encode(msgs[(i + 1) % len(msgs)]))
                break
        return out
    if target == "records":
        body = _sample_records()
        header = segfile.pack_segment_header(1, 1, 0)
        return [b"\x00" + body, b"\x01" + header + body, b"\x02" + body[:-3]]
    if target == "ops":
        return _sample_ops()
    if target in ("handshake", "arbiter_handshake"):
        return openings.seeds(target)
    if target == "tls_clienthello":
        return tls_hello.seeds()
    if target == "password_hash":
        return password_hash.seeds()
    raise KeyError(target)


def random_structured(target: str, rnd: random.Random) -> bytes:
    """A fresh input built from the formats' structure with random field values."""
    if target in ("handshake", "arbiter_handshake"):
        return openings.random_structured(target, rnd)
    if target == "tls_clienthello":
        return tls_hello.synthetic_client_hello(rnd)
    if target == "password_hash":
        return password_hash.random_structured(rnd)
    if target == "frames":
        msg = rnd.choice(_sample_messages())
        fields = msgspec.structs.asdict(msg)
        for k in list(fields):
            if rnd.random() < 0.3:
                fields[k] = _random_value(rnd, depth=0)
        if rnd.random() < 0.1:
            fields[rnd.choice(["x", "t", "id", ""])] = _random_value(rnd, depth=0)
        tag = msg.__struct_config__.tag
        body = msgspec.msgpack.encode({"t": tag, **fields})
        return bytes([rnd.randrange(256), rnd.randrange(256)]) + HEADER.pack(len(body)) + body
    if target == "ops":
        items = [
            [rnd.choice(["cs", "sql", "x", 1]), _random_value(rnd, 0)]
            for _ in range(rnd.randrange(4))
        ]
        return msgspec.msgpack.encode(items)
    r = rec.Record(
        rnd.randrange(1, 1 << 64),
        rnd.randrange(1 << 64),
        rnd.choice(list(rec.RecordKind)),
        "".join(rnd.choice("ab\u00e9\U0001f600") for _ in range(rnd.randrange(8))),
        rnd.randrange(1 << 64),
        rnd.randbytes(rnd.randrange(64)),
    )
    return bytes([rnd.randrange(256)]) + rec.encode_record(r) * rnd.randrange(1, 3)


def _random_value(rnd: random.Random, depth: int) -> Any:
    choice = rnd.randrange(12 if depth < 3 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rnd.choice([0, -1, 1 << 63, -(1 << 63), (1 << 64) - 1, rnd.randrange(-99, 99)])
    if choice == 2:
        return rnd.choice([0.0, -0.0, float("nan"), float("inf"), 1e308, rnd.random()])
    if choice == 3:
        return "".join(rnd.choice("a\x00\u00e9\ud7ff") for _ in range(rnd.randrange(6)))
    if choice == 4:
        return rnd.randbytes(rnd.randrange(8))
    if choice in (5, 6):
        return rnd.choice([True, False])
    if choice == 7:
        return msgspec.msgpack.Ext(rnd.randrange(-128, 128), rnd.randbytes(rnd.randrange(9)))
    if choice in (8, 9):
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {str(rnd.randrange(9)): _random_value(rnd, depth + 1) for _ in range(rnd.randrange(3))}
