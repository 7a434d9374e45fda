"""The first bytes and the first message of a connection, checked before anything else (pure).

Theory of operation
-------------------
A member port and an arbiter port speak TLS or plain litemirror frames, and
both are reached by mistake by HTTP clients (a browser pointed at the wrong
port, a load balancer's health check). :func:`classify_first_bytes` tells
them apart from the first :data:`CLASSIFY_BYTES` bytes, so a listener can
start a TLS handshake, read frames, or answer with one clear sentence:

==============  ==========================================================
first bytes     what they are
==============  ==========================================================
16 03 00..04    a TLS handshake record (ClientHello), record version
                SSL 3.0 .. TLS 1.3 (RFC 8446 §5.1 fixes 03 01 or 03 03
                for TLS 1.3; older clients use 03 00 .. 03 03)
00 xx xx xx 8x  a litemirror frame: 4-byte big-endian length below 16 MiB
(or de, df)     (an opening message is a few hundred bytes) and a
                MessagePack map, the encoding of every message
``GET`` etc.    an HTTP/1.x request line (or the HTTP/2 preface ``PRI *``)
==============  ==========================================================

The three are disjoint in their first byte (0x16, 0x00, an upper-case
letter), so the answer never depends on a configured limit. Fewer bytes
than :data:`CLASSIFY_BYTES` are judged on what is there: a prefix that only
one kind can start with is that kind; the empty prefix is "unknown".

:func:`check_opening` then checks the decoded opening message beyond its
types and the bounds of :mod:`.fields`: the protocol version, and names
shaped as the configuration allows them (mirror, member and database
names; see :mod:`litemirror.config`). It returns the refusal sentence to
send back and log, or None. It does not authorise anything: whether this
member is the one named, or the user may log in, is decided afterwards.
"""

from __future__ import annotations

import re
from typing import Literal

from . import arbiter, peer, replication
from . import messages as m

Kind = Literal["tls", "litemirror", "http", "unknown"]

#: How many bytes :func:`classify_first_bytes` needs for a final answer.
CLASSIFY_BYTES = 5
#: Frame limit for the opening message: the largest legitimate one (a
#: ``Hello`` with the longest user and password) is under 8 KiB.
MAX_OPENING_FRAME = 64 * 1024

#: The same patterns as :mod:`litemirror.config` (a unit test keeps them equal),
#: matched with ``fullmatch`` so that a trailing newline is refused too.
MIRROR_RE = re.compile(r"^[A-Za-z0-9]{1,15}$")
MEMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
DATABASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: The one internal database a client may name (users and roles live there);
#: every other name starting with '_' is refused.
SYSTEM_DATABASE = "_system"
#: Member kinds (config ``members[].kind``) and replication compressions.
MEMBER_KINDS = frozenset({"failover", "dr", "reporting"})
COMPRESSIONS = frozenset({"off", "zstd"})

_TLS_RECORD = (0x16, 0x03)
_TLS_MAX_MINOR = 0x04
#: The MessagePack map headers: fixmap, map 16, map 32.
_MAP_FIRST = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}
_HTTP_METHODS = (
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI ",
)


def classify_first_bytes(data: bytes) -> Kind:
    """What a connection that starts with ``data`` speaks (see the module's table)."""
    if not data:
        return "unknown"
    first = data[0]
    if first == _TLS_RECORD[0]:
        if len(data) >= 2 and data[1] != _TLS_RECORD[1]:
            return "unknown"
        if len(data) >= 3 and data[2] > _TLS_MAX_MINOR:
            return "unknown"
        return "tls"
    if first == 0x00:
        if len(data) >= 4 and int.from_bytes(data[:4], "big") == 0:
            return "unknown"  # an empty frame: nothing decodes from it
        if len(data) >= 5 and data[4] not in _MAP_FIRST:
            return "unknown"
        return "litemirror"
    head = data[: max(len(word) for word in _HTTP_METHODS)]
    if any(head.startswith(word) or word.startswith(head) for word in _HTTP_METHODS):
        return "http"
    return "unknown"


def check_opening(msg: object) -> str | None:
    """Why the opening message ``msg`` is refused, or None when its fields are well formed.

    ``msg`` is what the opening decoder returned: :data:`messages.OpeningMessage`
    on a member port, :data:`arbiter.ArbOpening` on the arbiter's.
    """
    if isinstance(msg, m.Hello):
        return _check_hello(msg)
    if isinstance(msg, replication.ReplHello):
        return (
            _version("replication", msg.version, replication.REPL_VERSION)
            or _names(msg.mirror, msg.member)
            or _one_of("member kind", msg.kind, MEMBER_KINDS)
            or _one_of("compression", msg.compression, COMPRESSIONS)
        )
    if isinstance(msg, peer.PeerHello):
        return _version("peer", msg.version, peer.PEER_VERSION) or _names(msg.mirror, msg.member)
    if isinstance(msg, arbiter.ArbHello):
        return _version("arbiter", msg.version, arbiter.ARB_VERSION) or _names(
            msg.mirror, msg.member
        )
    return (
        f"a connection must open with Hello (clients), ReplHello or PeerHello (members), "
        f"or ArbHello (members, at the arbiter), not {type(msg).__name__}"
    )


def _check_hello(msg: m.Hello) -> str | None:
    if refusal := _version("client", msg.version, m.PROTOCOL_VERSION):
        return refusal
    db = msg.database
    if db and db != SYSTEM_DATABASE and not DATABASE_RE.fullmatch(db):
        return (
            f"database name {db!r} is not valid: use 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    if not msg.client.isprintable():
        return f"client name {msg.client!r} must not contain control characters"
    if msg.user is not None and (not msg.user or not msg.user.isprintable()):
        return f"user name {msg.user!r} must not be empty or contain control characters"
    return None


def _version(protocol: str, got: int, speaks: int) -> str | None:
    if got == speaks:
        return None
    return (
        f"{protocol} protocol version {got} is not supported: this side speaks version "
        f"{speaks}; run the same litemirror release on both sides"
    )


def _names(mirror: str, member: str) -> str | None:
    if not MIRROR_RE.fullmatch(mirror):
        return f"mirror name {mirror!r} is not valid: use 1 to 15 letters or digits"
    if not MEMBER_RE.fullmatch(member):
        return (
            f"member name {member!r} is not valid: use 1 to 32 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return None


def _one_of(what: str, got: str, allowed: frozenset[str]) -> str | None:
    if got in allowed:
        return None
    return f"{what} {got!r} is not one of {', '.join(sorted(allowed))}"
