"""DB-API 2.0 (PEP 249) conformance, against a real member process.

The properties the classic DB-API 2.0 compliance suite checks, written as
our own tests: module globals, the exception hierarchy (also on the
connection), connection and cursor methods, ``description``, ``rowcount``,
the fetch methods and ``arraysize``, ``executemany``, close semantics, the
type constructors and type objects. Where PEP 249 leaves a choice (or says
"should") litemirror does what :mod:`sqlite3` does, and the test says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror.client.dbapi import Connection
from litemirror.testing.cluster import Cluster

DATABASES = [f"c{i}" for i in range(40)]
_next = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dbapi_conformance"), databases=DATABASES)
    c.start()
    yield c
    c.kill_all()


@pytest.fixture
def url(cluster: Cluster) -> str:
    """A URL of a database no other test has used."""
    return cluster.url(DATABASES[next(_next)])


@pytest.fixture
def conn(url: str) -> Iterator[Connection]:
    connection = litemirror.connect(url)
    yield connection
    connection.close()


def _table(conn: Connection, rows: int = 0) -> None:
    conn.execute("CREATE TABLE booze (name VARCHAR(20), n INTEGER, price REAL, img BLOB)")
    conn.executemany(
        "INSERT INTO booze (name, n) VALUES (?, ?)", [(f"b{i}", i) for i in range(rows)]
    )
    conn.commit()


# ------------------------------------------------------------------ module


def test_module_globals() -> None:
    assert litemirror.apilevel == "2.0"
    assert litemirror.threadsafety in (0, 1, 2, 3) and litemirror.threadsafety == 1
    assert litemirror.paramstyle in ("qmark", "numeric", "named", "format", "pyformat")
    assert litemirror.paramstyle == "qmark"
    assert callable(litemirror.connect)


HIERARCHY = [
    ("Warning", Exception),
    ("Error", Exception),
    ("InterfaceError", "Error"),
    ("DatabaseError", "Error"),
    ("DataError", "DatabaseError"),
    ("OperationalError", "DatabaseError"),
    ("IntegrityError", "DatabaseError"),
    ("InternalError", "DatabaseError"),
    ("ProgrammingError", "DatabaseError"),
    ("NotSupportedError", "DatabaseError"),
]


@pytest.mark.parametrize(("name", "parent"), HIERARCHY)
def test_exception_hierarchy(name: str, parent: type | str) -> None:
    cls = getattr(litemirror, name)
    base = getattr(litemirror, parent) if isinstance(parent, str) else parent
    assert issubclass(cls, base)
    if name == "Warning":
        assert not issubclass(cls, litemirror.Error)


def test_exceptions_are_connection_attributes(conn: Connection) -> None:
    for name, _ in HIERARCHY:
        assert getattr(conn, name) is getattr(litemirror, name)


def test_constructors_and_type_objects_exist() -> None:
    assert litemirror.Date(2002, 12, 25).isoformat() == "2002-12-25"
    assert litemirror.Time(13, 45, 30).isoformat() == "13:45:30"
    assert litemirror.Timestamp(2002, 12, 25, 13, 45, 30).year == 2002
    assert litemirror.DateFromTicks(0) is not None
    assert litemirror.TimeFromTicks(0) is not None
    assert litemirror.TimestampFromTicks(0) is not None
    assert bytes(litemirror.Binary(b"Something")) == b"Something"
    for name in ("STRING", "BINARY", "NUMBER", "DATETIME", "ROWID"):
        assert getattr(litemirror, name) is not None


# -------------------------------------------------------------- connection


def test_commit_and_rollback_without_a_transaction(conn: Connection) -> None:
    conn.commit()
    conn.rollback()
    assert not conn.in_transaction


def test_rollback_undoes_and_commit_keeps(conn: Connection, url: str) -> None:
    _table(conn)
    conn.execute("INSERT INTO booze (name) VALUES ('Victoria Bitter')")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM booze").fetchone() == (0,)
    conn.execute("INSERT INTO booze (name) VALUES ('Victoria Bitter')")
    conn.commit()
    other = litemirror.connect(url)
    assert other.execute("SELECT name FROM booze").fetchall() == [("Victoria Bitter",)]
    other.close()


def test_cursors_of_one_connection_see_each_others_changes(conn: Connection) -> None:
    _table(conn)
    cur1, cur2 = conn.cursor(), conn.cursor()
    cur1.execute("INSERT INTO booze (name) VALUES ('Victoria Bitter')")
    assert conn.in_transaction
    cur2.execute("SELECT name FROM booze")
    assert cur2.fetchall() == [("Victoria Bitter",)]


def test_close_semantics(url: str) -> None:
    conn = litemirror.connect(url)
    cur = conn.cursor()
    conn.close()
    conn.close()  # a second close is harmless
    for action in (
        conn.cursor,
        conn.commit,
        lambda: conn.execute("SELECT 1"),
        lambda: cur.execute("SELECT 1"),
        cur.fetchone,
        lambda: conn.total_changes,
    ):
        with pytest.raises(litemirror.Error):
            action()


def test_closed_cursor_refuses_work(conn: Connection) -> None:
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.close()
    for action in (lambda: cur.execute("SELECT 1"), cur.fetchone, cur.fetchall):
        with pytest.raises(litemirror.ProgrammingError):
            action()
    assert conn.execute("SELECT 2").fetchone() == (2,)  # the connection is untouched


# ------------------------------------------------------------------ cursor


def test_description(conn: Connection) -> None:
    _table(conn)
    cur = conn.cursor()
    assert cur.description is None
    cur.execute("INSERT INTO booze (name) VALUES ('Cooper''s')")
    assert cur.description is None  # a statement that returns no rows
    cur.execute("SELECT name, n, price, img, n + 1 AS expr FROM booze")
    assert cur.description is not None and len(cur.description) == 5
    assert all(len(column) == 7 for column in cur.description)
    assert [c[0] for c in cur.description] == ["name", "n", "price", "img", "expr"]
    types = [c[1] for c in cur.description]
    assert types[0] == litemirror.STRING and types[1] == litemirror.NUMBER
    assert types[2] == litemirror.NUMBER and types[3] == litemirror.BINARY
    assert types[4] is None  # an expression has no declared type
    cur.execute("CREATE TABLE other (x)")
    assert cur.description is None


def test_rowcount(conn: Connection) -> None:
    _table(conn, rows=6)
    cur = conn.cursor()
    assert cur.rowcount == -1
    cur.execute("INSERT INTO booze (name) VALUES ('x')")
    assert cur.rowcount == 1
    cur.executemany("INSERT INTO booze (name) VALUES (?)", [("y",), ("z",)])
    assert cur.rowcount == 2
    cur.execute("UPDATE booze SET n = 0")
    assert cur.rowcount == 9
    cur.execute("SELECT * FROM booze")
    assert cur.rowcount == -1  # as sqlite3: not known for a query
    cur.execute("DELETE FROM booze WHERE name = 'nobody'")
    assert cur.rowcount == 0


def test_execute_with_parameters_and_none(conn: Connection) -> None:
    _table(conn)
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO booze (name, n, price, img) VALUES (?, ?, ?, ?)", ("a", None, 1.5, None)
    )
    cur.execute("SELECT name, n, price, img FROM booze WHERE n IS NULL")
    assert cur.fetchall() == [("a", None, 1.5, None)]
    cur.execute("INSERT INTO booze (img) VALUES (?)", (litemirror.Binary(b"\x00\xff"),))
    cur.execute("SELECT img FROM booze WHERE img IS NOT NULL")
    assert cur.fetchone() == (b"\x00\xff",)


def test_executemany(conn: Connection) -> None:
    _table(conn)
    cur = conn.cursor()
    cur.executemany("INSERT INTO booze (name) VALUES (?)", [("a",), ("b",)])
    assert cur.rowcount == 2
    cur.executemany("INSERT INTO booze (name) VALUES (:n)", iter([{"n": "c"}]))
    cur.execute("SELECT name FROM booze ORDER BY name")
    assert cur.fetchall() == [("a",), ("b",), ("c",)]
    with pytest.raises(litemirror.ProgrammingError):
        cur.executemany("SELECT ?", [(1,)])  # only DML


def test_fetchone(conn: Connection) -> None:
    _table(conn, rows=1)
    cur = conn.cursor()
    # PEP 249 says fetching without a result set "should" raise; sqlite3 returns
    # None (and an empty list below), and litemirror does what sqlite3 does.
    assert cur.fetchone() is None
    cur.execute("INSERT INTO booze (name) VALUES ('x')")
    assert cur.fetchone() is None
    cur.execute("SELECT name FROM booze WHERE name = 'nothing'")
    assert cur.fetchone() is None
    cur.execute("SELECT n FROM booze WHERE n = 0")
    assert cur.fetchone() == (0,)
    assert cur.fetchone() is None


def test_fetchmany_and_arraysize(conn: Connection) -> None:
    _table(conn, rows=6)
    cur = conn.cursor()
    assert cur.fetchmany() == []
    assert cur.arraysize == 1
    cur.execute("SELECT n FROM booze ORDER BY n")
    assert cur.fetchmany() == [(0,)]
    assert cur.fetchmany(2) == [(1,), (2,)]
    cur.arraysize = 2
    assert cur.fetchmany() == [(3,), (4,)]
    assert cur.fetchmany(10) == [(5,)]
    assert cur.fetchmany() == [] and cur.fetchmany(3) == []
    cur.execute("SELECT n FROM booze WHERE 0")
    assert cur.fetchmany() == []


def test_fetchall_and_mixed_fetches(conn: Connection) -> None:
    _table(conn, rows=6)
    cur = conn.cursor()
    assert cur.fetchall() == []
    cur.execute("SELECT n FROM booze ORDER BY n")
    assert cur.fetchone() == (0,)
    assert cur.fetchmany(2) == [(1,), (2,)]
    assert cur.fetchall() == [(3,), (4,), (5,)]
    assert cur.fetchall() == [] and cur.fetchone() is None
    cur.execute("SELECT n FROM booze ORDER BY n")
    assert [r[0] for r in cur] == list(range(6))  # iteration, a common extension


def test_optional_methods(conn: Connection) -> None:
    cur = conn.cursor()
    cur.setinputsizes((25,))
    cur.setoutputsize(1000)
    cur.setoutputsize(1000, 0)
    # nextset() and callproc() are optional; sqlite3 has neither, nor do we.
    assert not hasattr(cur, "nextset") and not hasattr(cur, "callproc")
    assert cur.connection is conn  # optional extension, as in sqlite3


def _raises(action: Callable[[], Any], cls: type[BaseException]) -> None:
    with pytest.raises(cls):
        action()


def test_errors_from_the_database(conn: Connection) -> None:
    _table(conn)
    conn.execute("CREATE UNIQUE INDEX u ON booze (name)")
    conn.execute("INSERT INTO booze (name) VALUES ('a')")
    _raises(
        lambda: conn.execute("INSERT INTO booze (name) VALUES ('a')"), litemirror.IntegrityError
    )
    _raises(lambda: conn.execute("SELECT * FROM nowhere"), litemirror.OperationalError)
    _raises(lambda: conn.execute("SELECT ?", (1, 2)), litemirror.ProgrammingError)
    _raises(lambda: conn.execute("SELECT ?", (object(),)), litemirror.ProgrammingError)
    _raises(lambda: conn.create_function("f", 1, abs), litemirror.NotSupportedError)


def test_connect_arguments(url: str, tmp_path: Path) -> None:
    class Mine(Connection):
        pass

    conn = litemirror.connect(url, factory=Mine, isolation_level=None)
    assert isinstance(conn, Mine) and conn.isolation_level is None
    conn.close()
    # sqlite3's own arguments: accepted where they mean what litemirror does anyway.
    same = litemirror.connect(url, check_same_thread=False, cached_statements=64, uri=False)
    same.close()
    for bad in ({"detect_types": 1}, {"check_same_thread": True}, {"uri": True}):
        with pytest.raises(litemirror.InterfaceError, match=f"{next(iter(bad))}=.* not supported"):
            litemirror.connect(url, **bad)
    with pytest.raises(litemirror.InterfaceError, match=r"unknown connect\(\) argument 'colour'"):
        litemirror.connect(url, colour="blue")
