"""Fuzz target ``tls_clienthello``: a member's TLS server side fed hostile first flights.

The TLS handshake is the first thing a stranger's bytes reach on a member
or arbiter port with ``[tls]``. The target builds, once, a throwaway CA and
member certificate with :mod:`litemirror.security.certs` (in a temporary
directory, removed as soon as the contexts are loaded) and the server
contexts a member uses (client certificate required, and optional as
``security.tls.setup`` makes it). Each input goes to a fresh server-side
``ssl.SSLObject`` over memory BIOs, so no socket and no clock is involved:

- byte 0: bits 0-5 cut the stream into reads of 16 * n bytes (0: one read),
  bit 6 picks the context, bit 7 closes the stream after the last read;
- the rest: what the client sends — mutated real ClientHellos (the corpus's
  ``*-seed`` files were captured from Python clients with our contexts) or
  ClientHellos built from their structure (:func:`synthetic_client_hello`).

The contract: ``do_handshake`` raises ``ssl.SSLWantReadError`` (wants
more), another ``ssl.SSLError`` (refused) — nothing else, and never
completes (no input can hold the client's Finished). A hang inside OpenSSL
cannot be interrupted by the runner's CPU time box; its watchdog stops the
run instead (see :mod:`.run`).
"""

from __future__ import annotations

import random
import shutil
import ssl
import struct
import tempfile
from pathlib import Path

from litemirror.protocol.handshake import classify_first_bytes
from litemirror.security import certs

from .contract import Finding, _unexpected

HERE = Path(__file__).resolve().parent
SEED_DIR = HERE / "corpus" / "tls_clienthello"

_contexts: list[ssl.SSLContext] = []


def _make_contexts() -> list[ssl.SSLContext]:
    d = Path(tempfile.mkdtemp(prefix="litemirror-fuzz-tls-"))
    try:
        ca = certs.create_ca(d)
        leaf = certs.issue(d, "a", certs.Role.MEMBER, hosts=["a.example", "127.0.0.1"])
        client = certs.issue(d, "app", certs.Role.CLIENT)
        found = [
            certs.load_context(ca.cert, leaf.cert, leaf.key, server=True),
            certs.load_context(
                ca.cert, leaf.cert, leaf.key, server=True, require_client_cert=False
            ),
            # Client sides, for capturing seeds: a driver, a member, a client certificate.
            certs.load_context(ca.cert, None, None, server=False),
            certs.load_context(ca.cert, leaf.cert, leaf.key, server=False),
            certs.load_context(ca.cert, client.cert, client.key, server=False),
        ]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return found


def contexts() -> list[ssl.SSLContext]:
    if not _contexts:
        _contexts.extend(_make_contexts())
    return _contexts


def tls_clienthello(data: bytes) -> str:
    if not data:
        return "empty"
    server = contexts()[(data[0] >> 6) & 1]
    step = ((data[0] & 0x3F) * 16) or len(data)
    eof = bool(data[0] & 0x80)
    stream = data[1:]
    kind = classify_first_bytes(stream[:5])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server.wrap_bio(incoming, outgoing, server_side=True)
    answered = 0
    try:
        try:
            for i in range(0, len(stream), step):
                incoming.write(stream[i : i + step])
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                answered += len(outgoing.read())
            if eof:
                incoming.write_eof()
            obj.do_handshake()
        except ssl.SSLWantReadError:
            return f"{kind}:wants-more:{answered > 0}"
        except ssl.SSLError as exc:
            return f"{kind}:{type(exc).__name__}:{exc.reason or exc.strerror}"
    except Exception as exc:
        raise _unexpected(exc) from exc
    raise Finding(
        f"the server completed a TLS handshake from {len(stream)} bytes of a client that "
        "never had the keys",
        "tls-completed",
    )


# -------------------------------------------------------------------- seeds


def capture(ctx: ssl.SSLContext, host: str | None = "a.example") -> bytes:
    """A client's first flight (its ClientHello), without a network."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def fresh_seeds() -> list[bytes]:
    """ClientHellos captured now (they differ every time: random, key shares)."""
    ctxs = contexts()
    out = []
    for i, ctx in enumerate(ctxs[2:]):
        out.append(bytes([0x40 * (i & 1)]) + capture(ctx))
    tls12 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls12.check_hostname = False
    tls12.verify_mode = ssl.CERT_NONE
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_alpn_protocols(["litemirror/1", "h2"])
    out.append(b"\x83" + capture(tls12, host=None))  # reads of 48 bytes, then EOF
    tls13 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    tls13.check_hostname = False
    tls13.verify_mode = ssl.CERT_NONE
    out.append(b"\x41" + capture(tls13, host="127.0.0.1"))
    return out


def seeds() -> list[bytes]:
    """The committed captures (``*-seed``), or fresh ones when there are none yet."""
    committed = sorted(SEED_DIR.glob("*-seed")) if SEED_DIR.is_dir() else []
    return [p.read_bytes() for p in committed] or fresh_seeds()


# ------------------------------------------------------ structured inputs

SUITES = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009E]
SUITES += [0x00FF, 0x5600, 0x0000, 0xC013, 0x002F, 0x0035, 0x000A]
GROUPS = [0x001D, 0x0017, 0x0018, 0x0019, 0x001E, 0x0100, 0x0101, 0x6399, 0xFFFF]
SIGALGS = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0201, 0x0807]
VERSIONS = [0x0304, 0x0303, 0x0302, 0x0301, 0x0300, 0x7F1C, 0xFAFA]
KEY_SIZE = {0x001D: 32, 0x001E: 56, 0x0017: 65, 0x0018: 97, 0x0019: 133}


def _vec(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def _u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack(">H", v & 0xFFFF) for v in values)


def _extension(rnd: random.Random) -> tuple[int, bytes]:
    pick = rnd.randrange(15)
    if pick == 0:  # server_name
        name = rnd.choice([b"a.example", b"", b"a" * 300, rnd.randbytes(8), b"127.0.0.1"])
        return 0, _vec(b"\x00" + _vec(name, 2), 2)
    if pick == 1:  # supported_groups
        return 10, _vec(_u16s(rnd.sample(GROUPS, rnd.randrange(len(GROUPS)))), 2)
    if pick == 2:  # signature_algorithms
        return 13, _vec(_u16s(rnd.sample(SIGALGS, rnd.randrange(len(SIGALGS)))), 2)
    if pick == 3:  # supported_versions
        return 43, _vec(_u16s(rnd.sample(VERSIONS, rnd.randrange(1, len(VERSIONS)))), 1)
    if pick == 4:  # key_share, keys of the right size (or not)
        shares = b""
        for g in rnd.sample(list(KEY_SIZE), rnd.randrange(1, 3)):
            size = KEY_SIZE[g] + rnd.choice((0, 0, 0, -1, 1))
            key = (b"\x04" if g in (0x17, 0x18, 0x19) else b"") + rnd.randbytes(size)
            shares += struct.pack(">H", g) + _vec(key[:size], 2)
        return 51, _vec(shares, 2)
    if pick == 5:  # psk_key_exchange_modes
        return 45, _vec(bytes(rnd.sample([0, 1, 2, 255], rnd.randrange(1, 4))), 1)
    if pick == 6:  # ALPN
        protos = [b"litemirror/1", b"h2", b"http/1.1", b"x" * 255, rnd.choice([b"", b"y"])]
        return 16, _vec(b"".join(_vec(p, 1) for p in rnd.sample(protos, 2)), 2)
    if pick == 7:  # ec_point_formats
        return 11, _vec(bytes([0, 1, 2][: rnd.randrange(4)]), 1)
    if pick == 8:  # renegotiation_info
        return 0xFF01, _vec(rnd.randbytes(rnd.choice((0, 0, 12))), 1)
    if pick == 9:  # extended_master_secret, encrypt_then_mac, post_handshake_auth
        return rnd.choice([23, 22, 49]), b""
    if pick == 10:  # session_ticket
        return 35, rnd.randbytes(rnd.choice((0, 0, 32, 200)))
    if pick == 11:  # pre_shared_key: one identity and one binder
        ident = _vec(rnd.randbytes(rnd.randrange(64)), 2) + rnd.randbytes(4)
        return 41, _vec(ident, 2) + _vec(_vec(rnd.randbytes(32), 1), 2)
    if pick == 12:  # status_request, signed_certificate_timestamp
        return rnd.choice([5, 18]), rnd.choice([b"\x01\x00\x00\x00\x00", b""])
    if pick == 13:  # early_data, cookie
        return rnd.choice([42, 44]), rnd.choice([b"", _vec(rnd.randbytes(16), 2)])
    return rnd.randrange(65536), rnd.randbytes(rnd.randrange(16))  # anything


def synthetic_client_hello(rnd: random.Random) -> bytes:
    """A ClientHello record built from its parts (RFC 8446 §4.1.2), lengths consistent."""
    exts = []
    if rnd.random() < 0.7:  # most real clients: TLS 1.3 with an X25519 share
        exts += [(43, _vec(_u16s([0x0304, 0x0303]), 1)), (10, _vec(_u16s([0x1D, 0x17]), 2))]
        exts += [(13, _vec(_u16s(SIGALGS[:6]), 2)), (45, b"\x01\x01")]
        exts += [(51, _vec(struct.pack(">H", 0x1D) + _vec(rnd.randbytes(32), 2), 2))]
    exts += [_extension(rnd) for _ in range(rnd.randrange(8))]
    if rnd.random() < 0.9:  # a repeated extension is refused before anything else is read
        exts = list({t: (t, v) for t, v in reversed(exts)}.values())
    rnd.shuffle(exts)
    if rnd.random() < 0.9:  # pre_shared_key must come last (RFC 8446 §4.2.11)
        exts.sort(key=lambda e: e[0] == 41)
    body = struct.pack(">H", rnd.choice([*VERSIONS[:4], rnd.randrange(65536)]))
    body += rnd.randbytes(32)
    body += _vec(rnd.randbytes(rnd.choice((0, 32, 32, rnd.randrange(40)))), 1)
    suites = rnd.sample(SUITES, rnd.randrange(1, len(SUITES)))
    if rnd.random() < 0.7:
        suites.insert(rnd.randrange(len(suites) + 1), rnd.choice(SUITES[:5]))
    body += _vec(_u16s(suites), 2)
    body += _vec(b"\x00" if rnd.random() < 0.85 else rnd.choice([b"\x01\x00", b"", b"\x01"]), 1)
    body += _vec(b"".join(struct.pack(">H", t) + _vec(v, 2) for t, v in exts), 2)
    hello = b"\x01" + _vec(body, 3)
    record = b"\x16" + struct.pack(">H", rnd.choice((0x0301, 0x0301, 0x0303, 0x0300)))
    record += _vec(hello, 2)
    head = rnd.randrange(256) & ~0x80 if rnd.random() < 0.9 else rnd.randrange(256)
    return bytes([head]) + record


# ------------------------------------------------------------------ repairs


def fixup(data: bytes, rnd: random.Random) -> bytes:
    """Repair the record, handshake and extension lengths after a mutation."""
    if len(data) < 1 + 9:
        return data
    buf = bytearray(data)
    rec_len = len(buf) - 6
    if rec_len > 0x4000 + 256 or rnd.random() < 0.2:
        return bytes(buf)
    buf[4:6] = struct.pack(">H", rec_len)
    buf[7:10] = (rec_len - 4).to_bytes(3, "big")
    # ClientHello body: version 2, random 32, session id, suites, compression, extensions.
    at = 10 + 2 + 32
    try:
        at += 1 + buf[at]
        at += 2 + struct.unpack_from(">H", buf, at)[0]
        at += 1 + buf[at]
        if at + 2 > len(buf):
            return bytes(buf)
        buf[at : at + 2] = struct.pack(">H", len(buf) - at - 2)
        at += 2
        while at + 4 <= len(buf):
            (length,) = struct.unpack_from(">H", buf, at + 2)
            if at + 4 + length > len(buf):
                buf[at + 2 : at + 4] = struct.pack(">H", len(buf) - at - 4)
                break
            at += 4 + length
    except (IndexError, struct.error):
        pass
    return bytes(buf)
