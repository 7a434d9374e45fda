"""Messages exchanged between drivers, members and (later) the arbiter.

Theory of operation
-------------------
Every message is a msgspec ``Struct`` tagged with a short name (field ``t``),
encoded as MessagePack and carried in one length-prefixed frame (see
:mod:`litemirror.protocol.framing`). A connection opens with ``Hello`` from
the connecting side and ``Welcome`` (or ``Error``) from the member; the
version in ``Hello`` lets a member refuse drivers it cannot serve. After
that the client sends requests that carry an ``id``; every request gets
exactly one final answer with the same ``id`` (``Result`` with ``done=True``,
``Ok`` or ``Error``). Large results come as several ``Result`` frames, the
last one with ``done=True``.

Authentication (user, password) is carried in ``Hello`` already so that TLS
and roles can be added without changing frames.

Names, user, password, SQL text, ids and LSNs have bounds checked when a
frame is decoded (:mod:`litemirror.protocol.fields`); the opening message's
names are checked in full by :mod:`litemirror.protocol.handshake`.

SQLite values map to MessagePack natively: NULL, 64-bit INTEGER, REAL, TEXT
and BLOB (bin). Parameters are a list (qmark) or a map (named).

Growing the protocol
--------------------
Every message refuses fields it does not know, so a field added to an
answer would make an older driver refuse the whole frame. Answers therefore
leave out fields at their default value (``omit_defaults``), and a member
fills the newer fields only for a driver that asked for them: the driver
lists what it understands in ``Hello.client`` after a ``+``
(``"litemirror-python+changes+errorcodes"``), the one place an older member
accepts any text. The features are:

``changes``     ``Result.changes`` / ``Error.changes``: rows the request's
                statements changed, as SQLite's ``total_changes()`` counts them
``errorcodes``  ``Error.sqlite_errorcode`` / ``sqlite_errorname``: SQLite's
                extended result code and its name
``interrupt``   ``Welcome.features``: what the member accepts beyond version 1,
                i.e. ``interrupt`` when it takes ``Interrupt`` frames

A request an older member does not know (``Snapshot``) is refused by it as
a malformed frame; the driver says the member is too old. ``Interrupt`` is
sent only to a member whose ``Welcome.features`` lists it, since an older
member would close the connection (and the statement with it) on the
unknown frame; the driver refuses ``interrupt()`` otherwise. A field added
to ``Hello`` (``statement_timeout_ms``) is left out at its default, so an
older member refuses a Hello only when a driver asks for what it cannot
give; the driver then says the member is too old.

``Interrupt`` is the one frame that may arrive while a request runs: it
names that request's id, stops its statement (which answers with
``OperationalError("interrupted")``) and is never answered itself, so the
one-answer-per-request order is kept. An ``Interrupt`` that arrives after
its request ended does nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .fields import ARGS_MAX, Address, Count, Digest, Name, Password, Sql, User, Version, Word
from .peer import PeerHello
from .replication import ReplHello

PROTOCOL_VERSION = 1
#: Optional answer fields this release understands (see "Growing the protocol").
FEATURES = ("changes", "errorcodes", "interrupt")
#: What a member of this release accepts beyond version 1 (``Welcome.features``).
MEMBER_FEATURES = ("interrupt",)


def client_name(client: str, features: tuple[str, ...] = FEATURES) -> str:
    """``Hello.client`` for a driver called ``client`` that understands ``features``."""
    return "+".join((client, *features))


def client_features(client: str) -> frozenset[str]:
    """The features a driver announced in ``Hello.client``."""
    return frozenset(client.split("+")[1:])


#: A SQLite value on the wire: None, int, float, str or bytes. msgspec cannot
#: type a union holding both str and bytes, so values are ``Any`` here and
#: :func:`check_params` enforces the set after decoding.
Value = Any
Params = list[Value] | dict[str, Value] | None

_SCALARS = (type(None), int, float, str, bytes)
INT64 = (-(2**63), 2**63 - 1)


def _check_value(v: object, where: str) -> None:
    if not isinstance(v, _SCALARS):
        raise ValueError(
            f"{where}: {type(v).__name__} is not a SQLite value "
            "(use None, int, float, str or bytes)"
        )
    if isinstance(v, int) and not INT64[0] <= v <= INT64[1]:
        raise ValueError(f"{where}: integer {v} does not fit SQLite's 64-bit INTEGER")


def check_params(params: Params, many: list[Any] | None = None) -> None:
    """Raise ValueError naming the first parameter that is not a SQLite value."""
    sets = many if many is not None else ([params] if params is not None else [])
    for n, ps in enumerate(sets):
        check_set(ps, n)


def check_set(ps: Any, n: int) -> None:
    """Raise ValueError if parameter set number ``n`` holds something not a SQLite value."""
    if isinstance(ps, dict):
        for k, v in ps.items():
            _check_value(v, f"parameter :{k} (set {n})")
    elif isinstance(ps, list):
        for i, v in enumerate(ps):
            _check_value(v, f"parameter {i + 1} (set {n})")
    else:
        raise ValueError(f"parameter set {n} must be a list or a map")


class Message(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True):
    """Base of all messages."""


# --------------------------------------------------------------- handshake


class Hello(Message, tag="hello", frozen=True, omit_defaults=True):
    version: Version
    #: "" for a control connection (status, admin actions).
    database: Name
    #: The driver's name, then the optional features it understands, each after a "+".
    client: Name = "litemirror-python"
    read_only: bool = False
    user: User | None = None
    password: Password | None = None
    #: A time limit for this connection's statements, in milliseconds, lower
    #: than the member's own (0: the member's). Left out when 0.
    statement_timeout_ms: Count = 0


class Welcome(Message, tag="welcome", frozen=True, omit_defaults=True):
    version: Version
    mirror: Name
    member: Name
    role: Word
    epoch: Count
    lsn: Count
    primary: Address | None = None
    #: What the member accepts beyond version 1 (for a driver with the
    #: ``interrupt`` feature; empty, and left out, for others).
    features: Annotated[list[Word], msgspec.Meta(max_length=ARGS_MAX)] = []


# ----------------------------------------------------------------- requests


class Execute(Message, tag="exec", frozen=True):
    """Run one statement (or ``many`` parameter sets of it).

    Outside a transaction a writing statement is committed on its own
    (autocommit, joined to a group commit); ``begin=True`` opens a
    transaction first, as :mod:`sqlite3` does implicitly before DML.
    """

    id: Count
    sql: Sql
    params: Params = None
    many: list[Any] | None = None
    begin: bool = False
    min_lsn: Count = 0


class Script(Message, tag="script", frozen=True):
    """Run several statements separated by ``;`` as one transaction."""

    id: Count
    sql: Sql


class Begin(Message, tag="begin", frozen=True):
    id: Count


class Commit(Message, tag="commit", frozen=True):
    id: Count
    ack: Word | None = None


class Rollback(Message, tag="rollback", frozen=True):
    id: Count


class Ping(Message, tag="ping", frozen=True):
    id: Count


class Interrupt(Message, tag="interrupt", frozen=True):
    """Stop the statement of request ``id`` if it is still running (never answered itself)."""

    id: Count


class StatusRequest(Message, tag="status", frozen=True):
    id: Count


class AdminRequest(Message, tag="admin", frozen=True):
    """An administrative action: ``journal_switch``, ``db_add``."""

    id: Count
    action: Name
    args: Annotated[dict[Name, Any], msgspec.Meta(max_length=ARGS_MAX)] = {}


# ------------------------------------------------------------------ answers


class Column(Message, tag="col", frozen=True):
    name: str
    decltype: str | None = None


class Result(Message, tag="result", frozen=True, omit_defaults=True):
    id: Count
    columns: list[Column] | None = None
    rows: list[list[Value]] = []
    rowcount: int = -1
    lastrowid: int | None = None
    lsn: Count = 0
    in_transaction: bool = False
    done: bool = True
    #: Feature ``changes``: rows the statement changed (SQLite's total_changes() delta).
    changes: Count = 0


class Ok(Message, tag="ok", frozen=True):
    id: Count
    lsn: Count = 0
    in_transaction: bool = False
    info: dict[str, Any] = {}


class Error(Message, tag="error", frozen=True, omit_defaults=True):
    id: Count
    kind: Name
    message: str
    sqlite_code: int | None = None
    retryable: bool = False
    primary: Address | None = None
    in_transaction: bool = False
    #: Feature ``changes``: rows the request changed before it failed.
    changes: Count = 0
    #: Feature ``errorcodes``: SQLite's extended result code and its name.
    sqlite_errorcode: int | None = None
    sqlite_errorname: Name | None = None


class Snapshot(Message, tag="snapshot", frozen=True):
    """Send a consistent copy of the database (``Connection.backup`` / ``iterdump``).

    Answered by ``FileChunk`` frames, the last with ``last=True``, or ``Error``.
    The copy is taken from a read snapshot after the member has applied
    ``min_lsn``, and holds no litemirror bookkeeping table.
    """

    id: Count
    min_lsn: Count = 0


class FileChunk(Message, tag="chunk", frozen=True, omit_defaults=True):
    """One piece of a ``Snapshot``; the last carries the size and xxh3_64 digest."""

    id: Count
    offset: Count
    data: bytes
    last: bool = False
    size: Count = 0
    digest: Digest = ""
    #: The LSN of the last record the copy contains.
    lsn: Count = 0


ClientMessage = (
    Hello
    | Execute
    | Script
    | Begin
    | Commit
    | Rollback
    | Ping
    | StatusRequest
    | AdminRequest
    | Snapshot
    | Interrupt
)
#: What may open a connection to a member: a client ``Hello`` or a member's ``ReplHello``.
OpeningMessage = ClientMessage | ReplHello | PeerHello
ServerMessage = Welcome | Result | Ok | Error | FileChunk
AnyMessage = ClientMessage | ServerMessage
