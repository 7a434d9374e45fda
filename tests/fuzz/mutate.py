"""Structure-aware mutations without coverage feedback.

Random byte edits alone rarely get past a length prefix or a checksum, so
after mutating, ``fixup`` (half of the time) repairs what the format checks
first — the frame length, the record header and body checksums — and the
mutated field reaches the code behind the check. The dictionary holds
MessagePack tokens that parsers mishandle: huge container and string
lengths, the never-used byte 0xc1, extension types, deep nesting.
"""

from __future__ import annotations

import random
import struct

import xxhash

from litemirror.journal import record as rec

from . import tls_hello

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]
TOKENS = [
    b"\xc1",  # never used in MessagePack
    b"\xc0",  # nil
    b"\xdc\xff\xff",  # array 16, 65535 items
    b"\xdd\xff\xff\xff\xff",  # array 32, 4 G items
    b"\xde\xff\xff",  # map 16
    b"\xdf\x7f\xff\xff\xff",  # map 32
    b"\xdb\x7f\xff\xff\xff",  # str 32, 2 GiB
    b"\xc6\xff\xff\xff\xff",  # bin 32
    b"\xa2\xff\xfe",  # str that is not UTF-8
    b"\xa3\xed\xa0\x80",  # a UTF-16 surrogate in UTF-8
    b"\xd6\xff\x00\x00\x00\x00",  # timestamp 32
    b"\xd7\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # timestamp 64, out of range
    b"\xc7\x0c\xff" + b"\xff" * 12,  # timestamp 96
    b"\xd4\x01\x00",  # fixext 1
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # NaN
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # uint64 max
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  # int64 min
    b"\x81\xa1t\xa5hello",  # {"t": "hello"}
    b"\x91" * 40 + b"\xc0",  # 40 nested arrays
    b"\x81\xa1a" * 20 + b"\xc0",  # 20 nested maps
    rec.MAGIC,
]


def mutate(data: bytes, pool: list[bytes], rnd: random.Random, max_len: int) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.choice((1, 1, 2, 3, 4, 8))):
        op = rnd.randrange(10)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        elif op == 2:  # insert random bytes
            buf[pos:pos] = rnd.randbytes(rnd.randrange(1, 9))
        elif op == 3 and buf:  # delete a range
            end = min(len(buf), pos + rnd.randrange(1, 17))
            del buf[pos:end]
        elif op == 4 and buf:  # duplicate a range
            end = min(len(buf), pos + rnd.randrange(1, 65))
            buf[pos:pos] = buf[pos:end]
        elif op == 5:  # insert a dictionary token
            buf[pos:pos] = rnd.choice(TOKENS)
        elif op == 6 and len(buf) >= 4:  # overwrite an interesting integer
            value = rnd.choice(INTERESTING) + rnd.choice((-1, 0, 0, 1))
            size, fmt = rnd.choice(((1, "B"), (2, ">H"), (2, "<H"), (4, ">I"), (4, "<I")))
            at = rnd.randrange(len(buf) - size + 1)
            buf[at : at + size] = struct.pack(fmt, value % (1 << (8 * size)))
        elif op == 7 and pool:  # splice with another input
            other = rnd.choice(pool)
            cut = rnd.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
        elif op == 8:  # deep nesting of arrays or maps
            depth = rnd.choice((10, 100, 1000, 5000))
            nest = b"\x91" if rnd.random() < 0.5 else b"\x81\xa1k"
            buf[pos:pos] = nest * depth + b"\xc0"
        elif op == 9 and buf:  # truncate
            del buf[rnd.randrange(len(buf)) :]
    return bytes(buf[:max_len])


def fixup(target: str, data: bytes, rnd: random.Random) -> bytes:
    """Repair length prefixes and checksums so the mutation reaches deeper checks."""
    if target == "tls_clienthello":
        return tls_hello.fixup(data, rnd)
    # The handshake targets share the frames layout: 2 selector bytes, then frames.
    if target in ("frames", "handshake", "arbiter_handshake") and len(data) >= 6:
        body_len = len(data) - 6
        if rnd.random() < 0.5:
            return data[:2] + struct.pack(">I", body_len) + data[6:]
        cut = rnd.randrange(body_len + 1)  # two frames: first one ends at ``cut``
        first, rest = data[6 : 6 + cut], data[6 + cut :]
        return (
            data[:2] + struct.pack(">I", len(first)) + first + struct.pack(">I", len(rest)) + rest
        )
    if target == "records":
        return data[:1] + _fix_records(bytearray(data[1:]))
    return data


def _fix_records(body: bytearray) -> bytes:
    offset = 0
    for _ in range(4):
        pos = body.find(rec.MAGIC, offset)
        if pos < 0 or len(body) - pos < rec.HEADER_SIZE:
            break
        fields = 36
        body[pos + fields : pos + fields + 4] = struct.pack(
            "<I", xxhash.xxh32_intdigest(bytes(body[pos : pos + fields]))
        )
        db_len = body[pos + 7]
        (payload_len,) = struct.unpack_from("<I", body, pos + 8)
        size = rec.HEADER_SIZE + db_len + payload_len + rec.TRAILER_SIZE
        if pos + size > len(body):
            break
        end = pos + size - rec.TRAILER_SIZE
        body[end : end + 8] = struct.pack("<Q", xxhash.xxh3_64_intdigest(bytes(body[pos:end])))
        offset = pos + size
    return bytes(body)
