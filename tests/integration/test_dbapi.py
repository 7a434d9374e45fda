"""The DB-API driver against a real member process (fixture ``member`` in tests/conftest.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.client.dbapi import Connection


@pytest.fixture
def conn(member: Any) -> Iterator[Connection]:
    connection = litemirror.connect(member.url())
    yield connection
    connection.close()


def test_module_globals() -> None:
    assert litemirror.apilevel == "2.0"
    assert litemirror.threadsafety == 1
    assert litemirror.paramstyle == "qmark"
    assert issubclass(litemirror.IntegrityError, litemirror.DatabaseError)


def test_crud_with_qmark_and_named_parameters(conn: Connection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)")
    conn.execute("INSERT INTO t (name, n) VALUES (?, ?)", ("one", 1))
    conn.execute("INSERT INTO t (name, n) VALUES (:name, :n)", {"name": "two", "n": 2})
    conn.commit()
    rows = conn.execute("SELECT id, name, n FROM t ORDER BY id").fetchall()
    assert rows == [(1, "one", 1), (2, "two", 2)]
    cur = conn.execute("UPDATE t SET n = n * 10 WHERE name = :name", {"name": "two"})
    assert cur.rowcount == 1
    cur = conn.execute("DELETE FROM t WHERE id = ?", [1])
    assert cur.rowcount == 1
    conn.commit()
    assert conn.execute("SELECT id, name, n FROM t").fetchall() == [(2, "two", 20)]


def test_types_round_trip(conn: Connection) -> None:
    conn.execute("CREATE TABLE v (x)")
    blob = bytes(range(256)) * 4096  # 1 MiB, spans several reads of the socket
    values: list[object] = [
        None,
        0,
        2**63 - 1,
        -(2**63),
        1.5,
        -0.0,
        1e308,
        "",
        "ünïcødé ✓ \x00 inside",
        b"",
        blob,
    ]
    conn.executemany("INSERT INTO v (x) VALUES (?)", [(v,) for v in values])
    conn.execute("INSERT INTO v (x) VALUES (?)", (bytearray(b"ba"),))
    conn.execute("INSERT INTO v (x) VALUES (?)", (memoryview(b"mv"),))
    conn.execute("INSERT INTO v (x) VALUES (?)", (True,))
    conn.commit()
    got = [row[0] for row in conn.execute("SELECT x FROM v ORDER BY rowid")]
    assert got == [*values, b"ba", b"mv", 1]
    assert [type(v) for v in got] == [type(v) for v in [*values, b"", b"", 1]]
    with pytest.raises(OverflowError):
        conn.execute("SELECT ?", (2**63,))


def test_description_rowcount_lastrowid(conn: Connection) -> None:
    cur = conn.cursor()
    assert cur.description is None and cur.rowcount == -1 and cur.lastrowid is None
    cur.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)")
    assert cur.description is None
    cur.execute("INSERT INTO t (a) VALUES ('x')")
    assert cur.lastrowid == 1 and cur.rowcount == 1 and cur.description is None
    cur.execute("INSERT INTO t (id, a) VALUES (41, 'y')")
    assert cur.lastrowid == 41
    cur.execute("SELECT id, a AS alias FROM t WHERE 0")
    # The type code is the declared type (sqlite3 gives None), see README "From Python".
    assert cur.description == (
        ("id", "INTEGER", None, None, None, None, None),
        ("alias", "TEXT", None, None, None, None, None),
    )
    assert cur.fetchall() == []
    cur.executemany("INSERT INTO t (a) VALUES (?)", [("p",), ("q",), ("r",)])
    assert cur.rowcount == 3
    cur.execute("UPDATE t SET a = 'z'")
    assert cur.rowcount == 5


def test_fetchmany_arraysize_iteration_and_big_results(conn: Connection) -> None:
    cur = conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50000) "
        "SELECT i, printf('row %d', i) FROM c"
    )
    assert cur.fetchone() == (1, "row 1")
    assert cur.fetchmany() == [(2, "row 2")]
    cur.arraysize = 3
    assert [r[0] for r in cur.fetchmany()] == [3, 4, 5]
    assert [r[0] for r in cur.fetchmany(2)] == [6, 7]
    rest = list(cur)
    assert len(rest) == 50000 - 7 and rest[-1] == (50000, "row 50000")
    assert cur.fetchone() is None and cur.fetchall() == []


def test_uncommitted_rows_are_invisible_to_another_connection(member: Any) -> None:
    a = litemirror.connect(member.url())
    b = litemirror.connect(member.url())
    try:
        a.execute("CREATE TABLE t (x)")
        a.execute("INSERT INTO t VALUES (1)")
        assert a.in_transaction
        assert b.execute("SELECT count(*) FROM t").fetchone() == (0,)
        a.commit()
        assert not a.in_transaction
        assert b.execute("SELECT count(*) FROM t").fetchone() == (1,)
        a.execute("INSERT INTO t VALUES (2)")
        a.rollback()
        assert not a.in_transaction
        assert a.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert b.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        a.close()
        b.close()


def test_explicit_transaction_sql_and_autocommit(member: Any) -> None:
    auto = litemirror.connect(member.url(), isolation_level=None)
    other = litemirror.connect(member.url())
    try:
        auto.execute("CREATE TABLE t (x)")
        auto.execute("INSERT INTO t VALUES (1)")
        assert not auto.in_transaction
        assert auto.last_lsn > 0
        assert other.execute("SELECT count(*) FROM t").fetchone() == (1,)
        auto.execute("BEGIN")
        assert auto.in_transaction
        with pytest.raises(errors.OperationalError, match="within a transaction"):
            auto.execute("BEGIN IMMEDIATE")
        auto.execute("INSERT INTO t VALUES (2)")
        assert other.execute("SELECT count(*) FROM t").fetchone() == (1,)
        lsn = auto.last_lsn
        auto.execute("COMMIT")
        assert not auto.in_transaction and auto.last_lsn > lsn
        assert other.execute("SELECT count(*) FROM t").fetchone() == (2,)
        auto.execute("begin transaction")
        auto.execute("DELETE FROM t")
        auto.execute("ROLLBACK;")
        assert auto.execute("SELECT count(*) FROM t").fetchone() == (2,)
        with pytest.raises(errors.OperationalError, match="no transaction is active"):
            auto.execute("COMMIT")
    finally:
        auto.close()
        other.close()


def test_context_manager_commits_or_rolls_back(conn: Connection) -> None:
    conn.execute("CREATE TABLE t (x)")
    with conn:
        conn.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction
    with pytest.raises(ZeroDivisionError), conn:
        conn.execute("INSERT INTO t VALUES (2)")
        raise ZeroDivisionError
    assert not conn.in_transaction
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not conn.closed


def test_integrity_error_carries_sqlite_code(conn: Connection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE NOT NULL)")
    conn.execute("INSERT INTO t (u) VALUES ('a')")
    with pytest.raises(conn.IntegrityError) as info:
        conn.execute("INSERT INTO t (u) VALUES ('a')")
    assert info.value.sqlite_code == sqlite3.SQLITE_CONSTRAINT
    assert "UNIQUE" in str(info.value)
    assert conn.in_transaction  # like sqlite3, the failed statement leaves the transaction open
    conn.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_programming_errors(conn: Connection) -> None:
    with pytest.raises(errors.ProgrammingError, match="bindings"):
        conn.execute("SELECT ?, ?", (1,))
    with pytest.raises(errors.ProgrammingError):
        conn.execute("SELECT 1; SELECT 2")
    with pytest.raises(errors.ProgrammingError, match="not supported"):
        conn.execute("SELECT ?", (object(),))
    # Like sqlite3: SQL errors are OperationalError.
    with pytest.raises(errors.OperationalError, match="syntax error"):
        conn.execute("SELEC 1")
    with pytest.raises(errors.OperationalError, match="no such table"):
        conn.execute("SELECT * FROM nowhere")
    with pytest.raises(errors.ProgrammingError):
        conn.execute("SELECT :a", {"b": 1})
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable


def test_closed_connection_and_cursor(member: Any) -> None:
    conn = litemirror.connect(member.url())
    cur = conn.cursor()
    cur.close()
    with pytest.raises(errors.ProgrammingError, match="closed cursor"):
        cur.execute("SELECT 1")
    conn.close()
    conn.close()  # closing twice is allowed
    for action in (
        lambda: conn.execute("SELECT 1"),
        conn.cursor,
        conn.commit,
        conn.rollback,
        lambda: conn.in_transaction,
    ):
        with pytest.raises(errors.ProgrammingError, match=r"Cannot operate on a closed database\."):
            action()


def test_executescript_commits_first_and_stops_like_sqlite3(member: Any) -> None:
    conn = litemirror.connect(member.url())
    other = litemirror.connect(member.url())
    try:
        conn.execute("CREATE TABLE t (x UNIQUE)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.in_transaction
        conn.executescript("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);")
        assert not conn.in_transaction
        assert other.execute("SELECT count(*) FROM t").fetchone() == (3,)
        with pytest.raises(errors.IntegrityError):
            conn.executescript("INSERT INTO t VALUES (4); INSERT INTO t VALUES (1);")
        # As in sqlite3: the statements before the failing one stay.
        assert other.execute("SELECT count(*) FROM t").fetchone() == (4,)
        with pytest.raises(errors.IntegrityError):
            conn.executescript("BEGIN; INSERT INTO t VALUES (5); INSERT INTO t VALUES (1); COMMIT;")
        assert other.execute("SELECT count(*) FROM t").fetchone() == (4,)
    finally:
        conn.close()
        other.close()


def test_row_factory_and_exception_attributes(conn: Connection) -> None:
    assert conn.Error is errors.Error and conn.OperationalError is errors.OperationalError
    conn.row_factory = lambda cursor, row: {
        d[0]: v for d, v in zip(cursor.description, row, strict=True)
    }
    assert conn.execute("SELECT 1 AS a, 'b' AS b").fetchone() == {"a": 1, "b": "b"}
    assert isinstance(conn.member, str) and conn.member


def test_isolation_level(conn: Connection) -> None:
    assert conn.isolation_level == ""
    with pytest.raises(ValueError):
        conn.isolation_level = "SOMETIMES"
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    conn.isolation_level = None  # sqlite3 commits the pending transaction here
    assert not conn.in_transaction
    conn.execute("INSERT INTO t VALUES (2)")
    assert not conn.in_transaction
    conn.isolation_level = "IMMEDIATE"
    conn.execute("INSERT INTO t VALUES (3)")
    assert conn.in_transaction
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


# ------------------------------------------------------------------ failure


def test_lost_member_aborts_transaction_then_reconnects(member: Any) -> None:
    conn = litemirror.connect(member.url())
    try:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.execute("INSERT INTO t VALUES (1)")
        member.kill()
        member.start()
        with pytest.raises(errors.TransactionAbortedError) as info:
            conn.execute("INSERT INTO t VALUES (2)")
        assert info.value.retryable
        assert not conn.in_transaction
        conn.execute("INSERT INTO t VALUES (3)")  # reconnects by itself
        conn.commit()
        assert conn.execute("SELECT x FROM t").fetchall() == [(3,)]
    finally:
        conn.close()


def test_lost_member_in_autocommit(member: Any) -> None:
    plain = litemirror.connect(member.url(), isolation_level=None)
    retrying = litemirror.connect(member.url(retry=2, timeout=1), isolation_level=None)
    try:
        plain.execute("CREATE TABLE t (x)")
        retrying.execute("SELECT 1")
        member.kill()
        member.start()
        # Idle connections notice that the member went away before sending anything,
        # and reconnect by themselves.
        plain.execute("INSERT INTO t VALUES (1)")
        retrying.execute("INSERT INTO t VALUES (2)")
        assert plain.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
        # A write sent to a member that never answers may or may not be committed:
        # even with retry it is not sent again, and the error says so.
        member.proc.pause()
        try:
            with pytest.raises(errors.ConnectionLostError) as info:
                retrying.execute("INSERT INTO t VALUES (3)")
            assert info.value.retryable is False
            assert "may have been committed" in str(info.value)
        finally:
            member.proc.resume()
        # A read is resent: it changes nothing.
        assert retrying.execute("SELECT count(*) FROM t").fetchone()[0] in (2, 3)
    finally:
        plain.close()
        retrying.close()


def test_no_member_reachable(member: Any) -> None:
    url = member.url(connect_timeout=0.5)
    member.kill()
    with pytest.raises(errors.UnavailableError) as info:
        litemirror.connect(url)
    assert url.split("//")[1].split("/")[0] in str(info.value)


def test_unknown_database_is_refused(member: Any) -> None:
    with pytest.raises(errors.Error) as info:
        litemirror.connect(member.url(db="no_such_db", connect_timeout=1))
    assert "no_such_db" in str(info.value)


# ------------------------------------------------------------------ parity

PARITY: list[tuple[str, object]] = [
    (
        "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, score REAL, "
        "data BLOB, CHECK (score >= 0))",
        (),
    ),
    ("INSERT INTO p (name, score) VALUES (?, ?)", ("a", 1.5)),
    ("INSERT INTO p (name, score, data) VALUES (:n, :s, :d)", {"n": "b", "s": 2, "d": b"\x00\x01"}),
    ("INSERT INTO p (name, score) VALUES (?, ?)", ("a", 3)),
    ("INSERT INTO p (name) VALUES (NULL)", ()),
    ("INSERT INTO p (name, score) VALUES ('neg', -1)", ()),
    ("SELECT * FROM p ORDER BY id", ()),
    ("UPDATE p SET score = score * 2", ()),
    ("DELETE FROM p WHERE id = 99", ()),
    ("COMMIT", ()),
    ("COMMIT", ()),
    ("ROLLBACK", ()),
    ("SELECT * FROM missing", ()),
    ("SELEC 1", ()),
    ("SELECT ?, ?", (1,)),
    ("SELECT 1; SELECT 2", ()),
    ("SELECT :a", {"b": 1}),
    ("SELECT typeof(?), typeof(?), typeof(?), typeof(?), typeof(?)", (None, 1, 1.0, "s", b"b")),
    ("SELECT 1/0, 7/2, 7.0/2, -9223372036854775808, 9223372036854775807", ()),
    ("SELECT abs(-9223372036854775808)", ()),
    ("SELECT name FROM p WHERE 0", ()),
    ("BEGIN", ()),
    ("BEGIN", ()),
    ("INSERT INTO p (name, score) VALUES ('c', 1)", ()),
    ("ROLLBACK", ()),
    ("SELECT count(*) FROM p", ()),
    ("REPLACE INTO p (id, name, score) VALUES (1, 'a2', 0)", ()),
    ("SELECT * FROM p ORDER BY id", ()),
    ("END", ()),
    ("CREATE TABLE p (x)", ()),
    ("CREATE INDEX p_score ON p (score)", ()),
    ("WITH x(n) AS (SELECT 5) INSERT INTO p (name, score) SELECT 'w', n FROM x", ()),
    ("SELECT name, score FROM p ORDER BY name", ()),
    ("DROP TABLE p", ()),
    ("SELECT count(*) FROM sqlite_schema WHERE name = 'p'", ()),
]


def _outcome(conn: Any, sql: str, params: object) -> tuple[object, ...]:
    try:
        cur = conn.execute(sql, params)
    except Exception as exc:  # the class is what we compare
        # The same exception class as sqlite3, for every statement.
        return ("error", type(exc).__name__, conn.in_transaction)
    description = None if cur.description is None else [d[0] for d in cur.description]
    rowcount = cur.rowcount
    lastrowid = cur.lastrowid if sql.startswith(("INSERT", "REPLACE")) else None
    return ("ok", description, cur.fetchall(), rowcount, lastrowid, conn.in_transaction)


def test_sqlite3_parity(member: Any, tmp_path: Path) -> None:
    local = sqlite3.connect(tmp_path / "parity.db")
    remote = litemirror.connect(member.url())
    try:
        for sql, params in PARITY:
            expected = _outcome(local, sql, params)
            got = _outcome(remote, sql, params)
            assert got == expected, sql
    finally:
        local.close()
        remote.close()


# ------------------------------------------------------------------ two members


def _two_members(cluster_factory: Any) -> tuple[Any, str, str]:
    cluster = cluster_factory(members=(("a", "failover"), ("b", "failover")))
    cluster.start()
    roles = {name: cluster[name].status().get("role") for name in ("a", "b")}
    primary = next(name for name, role in roles.items() if role == "primary")
    return cluster, primary, "b" if primary == "a" else "a"


def test_driver_follows_the_primary_address_a_backup_names(cluster_factory: Any) -> None:
    cluster, primary, backup = _two_members(cluster_factory)
    for members in ([backup, primary], [backup]):
        conn = litemirror.connect(cluster.url(members=members))
        try:
            assert (conn.member, conn.role) == (primary, "primary")
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            conn.commit()
        finally:
            conn.close()
    # read_only with target=primary still prefers the primary when it is listed.
    conn = litemirror.connect(cluster.url(members=[backup, primary], read_only=True))
    try:
        assert conn.member == primary
    finally:
        conn.close()


def test_read_only_target_any_reads_from_the_backup(cluster_factory: Any) -> None:
    cluster, primary, backup = _two_members(cluster_factory)
    writer = litemirror.connect(cluster.url(members=[primary]), isolation_level=None)
    try:
        writer.execute("CREATE TABLE t (x)")
        writer.execute("INSERT INTO t VALUES (42)")
        lsn = writer.last_lsn
    finally:
        writer.close()
    # Applied (visible), not just durable, before reading there.
    cluster[backup].wait_applied(lsn, timeout=10)
    reader = litemirror.connect(cluster.url(members=[backup], target="any"))
    try:
        assert reader.member == backup and reader.role != "primary"
        assert reader.execute("SELECT x FROM t").fetchall() == [(42,)]
        with pytest.raises(errors.Error):
            reader.execute("INSERT INTO t VALUES (1)")
    finally:
        reader.close()


def test_read_only_connection_on_the_primary_never_writes(member: Any) -> None:
    w = litemirror.connect(member.url(), isolation_level=None)
    w.execute("CREATE TABLE ro (x)")
    w.execute("CREATE INDEX ro_x ON ro (x)")
    w.execute("INSERT INTO ro VALUES (1)")
    lsn = member.proc.status()["lsn"]
    r = litemirror.connect(member.url(read_only=True), isolation_level=None)
    for sql in ("INSERT INTO ro VALUES (2)", "DELETE FROM ro", "REINDEX", "CREATE TABLE z (a)"):
        with pytest.raises(errors.OperationalError, match="attempt to write a readonly database"):
            r.execute(sql)
    with pytest.raises(errors.OperationalError, match="readonly"):
        r.executescript("INSERT INTO ro VALUES (3);")
    t = litemirror.connect(member.url(read_only=True))  # implicit transactions
    with pytest.raises(errors.OperationalError, match="readonly"):
        t.execute("INSERT INTO ro VALUES (4)")
    assert r.execute("SELECT x FROM ro").fetchall() == [(1,)]
    assert member.proc.status()["lsn"] == lsn
    for c in (w, r, t):
        c.close()
