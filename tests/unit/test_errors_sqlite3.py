"""litemirror's exceptions are sqlite3's: the same classes catch them, with the same codes.

Pure checks of the class tree and the code attributes, then a side-by-side
table: the same failing statement on Python's sqlite3 and on apsw (what the
member runs) translated by ``engine.sqlerrors`` must give the same class,
message, ``sqlite_errorcode`` and ``sqlite_errorname``; and the error must
survive the trip over the wire to the driver unchanged.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import apsw
import msgspec
import pytest

from litemirror import errors
from litemirror.client.transport import wire_error
from litemirror.engine.sqlerrors import translate
from litemirror.protocol import messages as m

PEP249 = [
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
]


@pytest.mark.parametrize("name", PEP249)
def test_each_pep249_class_is_the_sqlite3_class_of_the_same_name(name: str) -> None:
    ours, theirs = getattr(errors, name), getattr(sqlite3, name)
    assert issubclass(ours, theirs)
    with pytest.raises(theirs):
        raise ours("boom")


def test_warning_is_sqlite3_warning_and_not_an_error() -> None:
    assert issubclass(errors.Warning, sqlite3.Warning)
    assert not issubclass(errors.Warning, sqlite3.Error)


# litemirror's own errors keep their place in litemirror's tree and land under
# the sqlite3 class a sqlite3 program would expect for them.
OWN = [
    (errors.NotPrimaryError, errors.OperationalError, sqlite3.OperationalError),
    (errors.ConnectionLostError, errors.OperationalError, sqlite3.OperationalError),
    (errors.TransactionAbortedError, errors.OperationalError, sqlite3.OperationalError),
    (errors.CommitUnknownError, errors.OperationalError, sqlite3.OperationalError),
    (errors.UnavailableError, errors.OperationalError, sqlite3.OperationalError),
    (errors.AuthenticationError, errors.OperationalError, sqlite3.OperationalError),
    (errors.PermissionDeniedError, errors.OperationalError, sqlite3.OperationalError),
    (errors.DiskFullError, errors.OperationalError, sqlite3.OperationalError),
    (errors.FrameTooLargeError, errors.ProtocolError, sqlite3.Error),
    (errors.ProtocolError, errors.Error, sqlite3.Error),
    (errors.ConfigError, errors.Error, sqlite3.Error),
    (errors.JournalCorruptError, errors.JournalError, sqlite3.Error),
]


@pytest.mark.parametrize(("cls", "parent", "sqlite3_class"), OWN)
def test_litemirror_errors_keep_their_tree(cls: type, parent: type, sqlite3_class: type) -> None:
    assert issubclass(cls, parent) and issubclass(cls, sqlite3_class)
    if sqlite3_class is sqlite3.Error:
        assert not issubclass(cls, sqlite3.DatabaseError)


def test_retryable_and_primary_survive_the_new_bases() -> None:
    exc = errors.NotPrimaryError("not primary", primary="h:1")
    assert exc.retryable and exc.primary == "h:1" and str(exc) == "not primary"


PK = "SQLITE_CONSTRAINT_PRIMARYKEY"
CODES: list[tuple[dict[str, Any], int | None, int | None, str | None]] = [
    # keyword arguments -> sqlite_code, sqlite_errorcode, sqlite_errorname (None: absent)
    ({}, None, None, None),
    ({"sqlite_code": 19}, 19, 19, "SQLITE_CONSTRAINT"),
    ({"sqlite_errorcode": 2067, "sqlite_errorname": "SQLITE_CONSTRAINT_UNIQUE"}, 19, 2067,
     "SQLITE_CONSTRAINT_UNIQUE"),
    ({"sqlite_code": 19, "sqlite_errorcode": 1555, "sqlite_errorname": PK}, 19, 1555, PK),
    ({"sqlite_errorcode": 8}, 8, 8, "SQLITE_READONLY"),
    # An extended code without its name (a member that sent only the code): the primary name.
    ({"sqlite_errorcode": 2067}, 19, 2067, "SQLITE_CONSTRAINT"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "code", "errorcode", "errorname"), CODES)
def test_code_attributes(
    kwargs: dict[str, Any], code: int | None, errorcode: int | None, errorname: str | None
) -> None:
    exc = errors.IntegrityError("x", **kwargs)
    assert exc.sqlite_code == code
    if errorcode is None:
        # As in sqlite3: an error that did not come from SQLite has no such attributes.
        assert not hasattr(exc, "sqlite_errorcode") and not hasattr(exc, "sqlite_errorname")
        assert not hasattr(sqlite3.ProgrammingError("x"), "sqlite_errorcode")
    else:
        assert (exc.sqlite_errorcode, exc.sqlite_errorname) == (errorcode, errorname)


# ------------------------------------------------------------ side by side

SETUP = """
CREATE TABLE p (id INTEGER PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL DEFAULT 'n',
                c INTEGER CHECK (c >= 0));
CREATE TABLE k (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));
CREATE TABLE s (x INTEGER) STRICT;
CREATE TABLE w (x) ;
CREATE TRIGGER w_no BEFORE INSERT ON w WHEN new.x < 0 BEGIN SELECT RAISE(ABORT, 'negative'); END;
INSERT INTO p (id, u, c) VALUES (1, 'a', 1);
"""

FAILING = [
    "INSERT INTO p (id, u) VALUES (1, 'z')",
    "INSERT INTO p (u) VALUES ('a')",
    "INSERT INTO p (u, n) VALUES ('b', NULL)",
    "INSERT INTO p (u, c) VALUES ('c', -1)",
    "INSERT INTO k (p) VALUES (99)",
    "INSERT INTO s VALUES ('not a number')",
    "INSERT INTO w VALUES (-1)",
    "SELEC 1",
    "SELECT * FROM nowhere",
    "SELECT nosuchcolumn FROM p",
    "SELECT abs(-9223372036854775808)",
    "PRAGMA query_only = 1; INSERT INTO w VALUES (1)",
]


def _sqlite3_error(sql: str) -> BaseException:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SETUP)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        *before, last = sql.split("; ")
        for statement in before:
            conn.execute(statement)
        conn.execute(last)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"sqlite3 ran {sql!r} without an error")


def _member_error(sql: str) -> errors.Error:
    conn = apsw.Connection(":memory:")
    conn.execute(SETUP)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        *before, last = sql.split("; ")
        for statement in before:
            conn.execute(statement)
        conn.execute(last).fetchall()
    except apsw.Error as exc:
        return translate(exc)
    finally:
        conn.close()
    raise AssertionError(f"apsw ran {sql!r} without an error")


@pytest.mark.parametrize("sql", FAILING)
def test_same_error_as_sqlite3_also_after_the_wire(sql: str) -> None:
    expected = _sqlite3_error(sql)
    ours = _member_error(sql)
    # What the member sends, decoded by the driver.
    frame = m.Error(
        id=1,
        kind=type(ours).__name__,
        message=ours.message,
        sqlite_code=ours.sqlite_code,
        sqlite_errorcode=ours.sqlite_errorcode,
        sqlite_errorname=ours.sqlite_errorname,
    )
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(frame), type=m.ServerMessage)
    assert isinstance(decoded, m.Error)
    for got in (ours, wire_error(decoded)):
        assert isinstance(got, type(expected)), (type(got), type(expected))
        assert type(got).__name__ == type(expected).__name__
        assert str(got) == str(expected)
        assert got.sqlite_errorcode == expected.sqlite_errorcode  # type: ignore[attr-defined]
        name = expected.sqlite_errorname  # type: ignore[attr-defined]
        # Python 3.11's sqlite3 calls codes newer than its table "unknown"
        # (SQLITE_CONSTRAINT_DATATYPE); the member names them.
        assert got.sqlite_errorname == name or (name == "unknown" and got.sqlite_errorname)
        assert got.sqlite_code == expected.sqlite_errorcode & 0xFF  # type: ignore[attr-defined]
