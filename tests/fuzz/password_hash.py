"""Fuzz target ``password_hash``: the parser of stored password hashes.

Stored hashes come from the system database, a file that may be damaged or
written by someone else, so :func:`litemirror.security.passwords.parse` must
turn any stored value into a hash or :class:`ValueError`. Byte 0 picks how
the rest reaches it — as UTF-8 text (invalid bytes replaced), as Latin-1
text, as raw bytes or as an integer (a SQLite column holds whatever was
written to it); the rest is the value.

Beyond "only ValueError": an accepted hash stays within the member's cost
limits (memory, work, lanes), and formats to a string that parses to the
same hash. Nothing here runs scrypt: parsing is what a hostile string reaches.
"""

from __future__ import annotations

import base64
import random

from litemirror.security import passwords as pw

from .contract import Finding, _kind_of, _unexpected

_AS = ("utf-8", "latin-1", "bytes", "int")


def _value(data: bytes) -> object:
    how = _AS[data[0] % len(_AS)]
    body = data[1:]
    if how == "utf-8":
        return body.decode("utf-8", "replace")
    if how == "latin-1":
        return body.decode("latin-1")
    if how == "bytes":
        return body
    return int.from_bytes(body[:9], "big", signed=True)


def password_hash(data: bytes) -> str:
    if not data:
        return "empty"
    value = _value(data)
    label = _AS[data[0] % len(_AS)]
    try:
        h = pw.parse(value)  # type: ignore[arg-type]  # deliberately any stored value
    except ValueError as exc:
        return f"{label}:refused:{_kind_of(str(exc).split(':', 1)[-1])}"
    except Exception as exc:
        raise _unexpected(exc) from exc
    memory = 128 * h.r * (1 << h.ln)
    if memory > pw.MAX_MEMORY or memory * h.p > pw.MAX_WORK or h.p > pw.MAX_P:
        raise Finding(f"parse accepted ln={h.ln}, r={h.r}, p={h.p}", "cost-beyond-limits")
    try:
        again = pw.parse(h.format())
    except ValueError as exc:
        raise Finding(f"a parsed hash formats to a string parse refuses: {exc}", "format") from exc
    if again != h:
        raise Finding("a parsed hash changes on a format/parse round trip", "roundtrip-differs")
    return f"{label}:ok:p={h.p > 1}:salt={len(h.salt) == 16}:hash={len(h.digest) == 32}"


# -------------------------------------------------------------------- seeds


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def seeds() -> list[bytes]:
    """Valid stored hashes (fixed salts and digests: no scrypt is run) and near misses."""
    salt, digest = bytes(range(16)), bytes(range(100, 132))
    good = [
        f"scrypt$ln=15,r=8,p=1${_b64(salt)}${_b64(digest)}",
        f"scrypt$ln=1,r=1,p=1${_b64(salt[:8])}${_b64(digest[:16])}",
        f"scrypt$ln=17,r=8,p=2${_b64(salt * 4)}${_b64(digest * 2)}",
    ]
    near = [
        "scrypt$ln=31,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,
        "argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "scrypt$ln=15,r=8,p=1$$",
    ]
    return [bytes([i % 2]) + s.encode() for i, s in enumerate(good + near)]


def random_structured(rnd: random.Random) -> bytes:
    """A stored hash with parameters and lengths around the limits."""
    ln = rnd.choice([0, 1, 14, 15, 16, 17, 18, 20, 30, 31, 99, rnd.randrange(100)])
    r = rnd.choice([0, 1, 8, 16, 17, 64, 999, rnd.randrange(1000)])
    p = rnd.choice([0, 1, 2, 16, 17, 99])
    salt = _b64(rnd.randbytes(rnd.choice([0, 7, 8, 16, 64, 65])))
    digest = _b64(rnd.randbytes(rnd.choice([15, 16, 32, 64, 65])))
    if rnd.random() < 0.2:
        salt += rnd.choice(["=", "==", "A", "!", "\u00e9", "\n"])
    text = f"scrypt$ln={ln},r={r},p={p}${salt}${digest}"
    if rnd.random() < 0.1:
        text = text.replace("$", rnd.choice(["$$", "", "\x00"]), 1)
    return bytes([rnd.randrange(2)]) + text.encode()
