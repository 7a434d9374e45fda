"""The journal record format: round trips, corruption and truncation detection, fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from litemirror.journal import record as rec
from litemirror.journal.record import (
    BadRecord,
    Record,
    RecordKind,
    TruncatedRecord,
    decode_record,
    encode_record,
    scan,
)


def make(lsn: int = 1, **kw: Any) -> Record:
    fields: dict[str, object] = {
        "lsn": lsn,
        "epoch": 3,
        "kind": RecordKind.CHANGES,
        "db": "main",
        "ts_ms": 1_700_000_000_000,
        "payload": b"changeset-bytes",
    }
    fields.update(kw)
    return Record(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(RecordKind))
@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 3])
def test_round_trip_every_kind(kind: RecordKind, payload: bytes) -> None:
    r = make(kind=kind, payload=payload)
    data = encode_record(r)
    assert len(data) == rec.HEADER_SIZE + 4 + len(payload) + rec.TRAILER_SIZE
    decoded, end = decode_record(data)
    assert decoded == r
    assert decoded.kind is kind
    assert end == len(data)


@pytest.mark.parametrize("db", ["données", "日本語のデータ", "🦊db", "", "d" * 255, "é" * 127])
def test_round_trip_unicode_and_edge_db_names(db: str) -> None:
    r = make(db=db)
    assert decode_record(encode_record(r))[0] == r


def test_round_trip_5_mb_payload_and_extreme_integers() -> None:
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    r = make(lsn=2**64 - 1, epoch=2**64 - 1, ts_ms=0, payload=big)
    decoded, end = decode_record(b"junk" + encode_record(r), 4)
    assert decoded == r
    assert end == 4 + len(encode_record(r))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"db": "x" * 256}, "limit is 255"),
        ({"db": "é" * 128}, "limit is 255"),
        ({"lsn": 0}, "lsn 0"),
        ({"lsn": 2**64}, "lsn"),
        ({"epoch": -1}, "epoch"),
        ({"ts_ms": 2**64}, "ts_ms"),
        ({"kind": 9}, "kind"),
    ],
)
def test_encode_refuses_out_of_range_fields(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_record(make(**change))


def test_every_single_byte_change_is_detected_as_bad() -> None:
    data = encode_record(make(lsn=42, payload=b"some payload bytes"))
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            mutated = bytearray(data)
            mutated[i] ^= mask
            with pytest.raises(BadRecord):
                decode_record(bytes(mutated))


def test_truncation_at_every_offset_is_torn() -> None:
    data = encode_record(make(payload=b"p" * 50))
    for cut in range(len(data)):
        with pytest.raises(TruncatedRecord):
            decode_record(data[:cut])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"db_len": 0, "payload_len": rec.MAX_PAYLOAD + 1}, "payload length"),
        ({"kind": 0}, "kind"),
        ({"kind": 6}, "kind"),
        ({"flags": 1}, "flags"),
        ({"lsn": 0}, "lsn 0"),
    ],
)
def test_header_beyond_limits_is_bad_even_with_a_valid_checksum(
    fields: dict[str, int], message: str
) -> None:
    # A header that passes its checksum but breaks a limit must be "bad", not
    # "torn": otherwise recovery would cut a file at a corrupt length field.
    args = {"kind": 1, "db_len": 0, "payload_len": 0, "lsn": 1, "epoch": 0, "ts_ms": 0}
    args.update(fields)
    header = rec._pack_header(**args)
    with pytest.raises(BadRecord, match=message):
        decode_record(header)


def test_unknown_version_and_invalid_utf8_name_are_bad() -> None:
    data = bytearray(encode_record(make()))
    data[4] = 2
    fields = bytes(data[: rec._FIELDS.size])
    data[rec._FIELDS.size : rec.HEADER_SIZE] = rec._HEADER_CHECK.pack(rec._header_checksum(fields))
    with pytest.raises(BadRecord, match="version 2"):
        decode_record(bytes(data))

    header = rec._pack_header(1, 2, 0, 1, 0, 0)
    body = header + b"\xff\xfe"
    trailer = rec._TRAILER.pack(xxhash.xxh3_64_intdigest(body))
    with pytest.raises(BadRecord, match="UTF-8"):
        decode_record(body + trailer)


def test_garbage_prefix_is_bad_not_torn() -> None:
    with pytest.raises(BadRecord):
        decode_record(b"\x00\x00")
    with pytest.raises(TruncatedRecord):
        decode_record(b"LMJ")
    with pytest.raises(TruncatedRecord):
        decode_record(b"")


def test_scan_reports_good_end_and_problem() -> None:
    records = [make(lsn=i, payload=bytes([i]) * i) for i in range(1, 6)]
    blobs = [encode_record(r) for r in records]
    stream = b"".join(blobs)

    whole = scan(stream)
    assert whole.records == records
    assert whole.good_end == len(stream)
    assert whole.problem is None

    torn = scan(stream[:-3])
    assert torn.records == records[:4]
    assert torn.good_end == len(stream) - len(blobs[-1])
    assert torn.problem is not None and torn.problem.startswith("torn")

    damaged = bytearray(stream)
    damaged[len(blobs[0]) + 45] ^= 0x10  # inside record 2's payload
    bad = scan(bytes(damaged))
    assert bad.records == records[:1]
    assert bad.good_end == len(blobs[0])
    assert bad.problem is not None and bad.problem.startswith("corrupt")


def test_find_next_record_skips_garbage() -> None:
    blob = encode_record(make(lsn=7))
    assert rec.find_next_record(b"LMJR garbage LMJR" + blob + b"tail", 0) == 17
    assert rec.find_next_record(b"LMJR" * 100) is None
    assert rec.find_next_record(blob, 1) is None


# -- fuzzing ----------------------------------------------------------------------------------

records_st = st.builds(
    Record,
    lsn=st.integers(1, 2**64 - 1),
    epoch=st.integers(0, 2**64 - 1),
    kind=st.sampled_from(RecordKind),
    db=st.text(max_size=20),
    ts_ms=st.integers(0, 2**64 - 1),
    payload=st.binary(max_size=300),
)


def check_scan(data: bytes) -> None:
    result = scan(data)
    assert 0 <= result.good_end <= len(data)
    assert (result.problem is None) == (result.good_end == len(data))
    # What scan accepted is exactly what it was given, byte for byte.
    assert b"".join(encode_record(r) for r in result.records) == data[: result.good_end]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_scan_random_bytes_never_raises(data: bytes) -> None:
    check_scan(data)
    check_scan(b"LMJR" + data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(records_st, min_size=1, max_size=5),
    st.lists(
        st.tuples(st.sampled_from(["flip", "insert", "delete", "cut"]), st.integers(0, 10**6)),
        max_size=4,
    ),
    st.binary(min_size=1, max_size=8),
)
def test_scan_mutated_records_never_raises(
    records: list[Record], mutations: list[tuple[str, int]], noise: bytes
) -> None:
    data = bytearray(b"".join(encode_record(r) for r in records))
    assert scan(bytes(data)).records == records
    for op, where in mutations:
        pos = where % (len(data) + 1)
        if op == "flip" and pos < len(data):
            data[pos] ^= noise[0] or 1
        elif op == "insert":
            data[pos:pos] = noise
        elif op == "delete":
            del data[pos : pos + len(noise)]
        elif op == "cut":
            del data[pos:]
    check_scan(bytes(data))
