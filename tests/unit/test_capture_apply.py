"""Capture on the writer connection and apply on a copy: jobs, DDL cuts, refusals, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from litemirror.engine import (
    Capture,
    ChangesetOp,
    SqlOp,
    apply_record,
    decode_ops,
    encode_ops,
    ensure_meta,
    open_apply_connection,
    policy,
    read_lsn,
    table_checksums,
    translate,
    write_lsn,
)
from litemirror.engine.ops import Op
from litemirror.errors import (
    DataError,
    DiskFullError,
    IntegrityError,
    InternalError,
    JournalCorruptError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)


class Writer:
    """The member's writer connection: group transaction, one savepoint per job."""

    def __init__(self, path: Path) -> None:
        self.conn = apsw.Connection(str(path))
        self.conn.execute("PRAGMA journal_mode=WAL")
        ensure_meta(self.conn)
        self.capture = Capture(self.conn)

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def job(self, *statements: str | tuple[str, Any]) -> list[Op]:
        """Run one job; on the first error roll it back and re-raise."""
        self.conn.execute("SAVEPOINT j")
        self.capture.begin_job()
        try:
            for statement in statements:
                sql, params = statement if isinstance(statement, tuple) else (statement, None)
                self.capture.execute(sql, params)
        except Exception:
            self.capture.abort_job()
            self.conn.execute("ROLLBACK TO j")
            self.conn.execute("RELEASE j")
            raise
        ops = self.capture.end_job()
        self.conn.execute("RELEASE j")
        return ops

    def commit(self, lsn: int | None = None) -> None:
        if lsn is not None:
            write_lsn(self.conn, lsn)
        self.conn.execute("COMMIT")

    def one(self, *statements: str | tuple[str, Any]) -> list[Op]:
        """A group of one job, committed."""
        self.begin()
        ops = self.job(*statements)
        self.commit()
        return ops


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = Writer(tmp_path / "a.db")
    yield w
    w.capture.close()
    w.conn.close()


@pytest.fixture
def copy(tmp_path: Path) -> Iterator[apsw.Connection]:
    conn = open_apply_connection(str(tmp_path / "b.db"))
    yield conn
    conn.close()


def rows(conn: apsw.Connection, sql: str) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql))


# ------------------------------------------------------------------ jobs and groups


def test_rolled_back_job_leaves_nothing(writer: Writer) -> None:
    writer.one("CREATE TABLE t(id INTEGER PRIMARY KEY, v UNIQUE)")
    writer.begin()
    with pytest.raises(IntegrityError):
        writer.job("INSERT INTO t(v) VALUES (1)", "INSERT INTO t(v) VALUES (1)")
    writer.commit()
    assert rows(writer.conn, "SELECT * FROM t") == []


def test_failed_statement_inside_a_job_leaves_nothing_of_itself(writer: Writer) -> None:
    writer.one("CREATE TABLE t(id INTEGER PRIMARY KEY, v UNIQUE)")
    writer.begin()
    writer.conn.execute("SAVEPOINT j")
    writer.capture.begin_job()
    writer.capture.execute("INSERT INTO t(v) VALUES (1)")
    with pytest.raises(IntegrityError):
        # rows 2 and 3 are written before row 1 fails; the statement is undone
        writer.capture.execute("INSERT INTO t(v) VALUES (2), (3), (1)")
    ops = writer.capture.end_job()
    writer.conn.execute("RELEASE j")
    writer.commit()
    (op,) = ops
    assert isinstance(op, ChangesetOp)
    changes = [(c.op, c.new) for c in apsw.Changeset.iter(op.data)]
    assert changes == [("INSERT", (1, 1))]


def test_group_of_jobs_with_one_aborted(writer: Writer, copy: apsw.Connection) -> None:
    setup = writer.one("CREATE TABLE t(id INTEGER PRIMARY KEY, v NOT NULL)")
    assert apply_record(copy, 1, encode_ops(setup))
    writer.begin()
    ops = writer.job("INSERT INTO t(v) VALUES ('first')")
    with pytest.raises(IntegrityError):
        writer.job("INSERT INTO t(v) VALUES ('lost')", "INSERT INTO t(v) VALUES (NULL)")
    ops += writer.job("UPDATE t SET v = 'third' WHERE v = 'first'", "INSERT INTO t(v) VALUES (3)")
    writer.commit(lsn=2)
    assert apply_record(copy, 2, encode_ops(ops))
    assert rows(copy, "SELECT * FROM t") == [(1, "third"), (2, 3)]
    assert table_checksums(copy) == table_checksums(writer.conn)


def test_job_that_changes_nothing_has_no_ops(writer: Writer) -> None:
    writer.one("CREATE TABLE t(x)")
    assert writer.one("SELECT * FROM t", "INSERT INTO t VALUES (1)", "DELETE FROM t") == []


def test_ddl_cuts_the_changeset_in_order(writer: Writer, copy: apsw.Connection) -> None:
    ops = writer.one(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a)",
        "INSERT INTO t(a) VALUES (1)",
        "ALTER TABLE t ADD COLUMN b DEFAULT 'x'",
        "INSERT INTO t(a, b) VALUES (2, 'y')",
    )
    kinds = [type(op).__name__ for op in ops]
    assert kinds == ["SqlOp", "ChangesetOp", "SqlOp", "ChangesetOp"]
    assert isinstance(ops[2], SqlOp) and ops[2].sql == "ALTER TABLE t ADD COLUMN b DEFAULT 'x'"
    widths = [
        [c.column_count for c in apsw.Changeset.iter(op.data)]
        for op in ops
        if isinstance(op, ChangesetOp)
    ]
    assert widths == [[2], [3]]  # each changeset matches the schema it was taken under
    assert apply_record(copy, 1, encode_ops(ops))
    assert rows(copy, "SELECT * FROM t") == [(1, 1, "x"), (2, 2, "y")]


def test_temp_objects_are_not_replicated_and_end_with_their_transaction(writer: Writer) -> None:
    writer.one("CREATE TABLE t(x)")
    writer.begin()
    writer.conn.execute("SAVEPOINT j")
    cap = writer.capture
    cap.begin_job(policy.Where.TRANSACTION)
    cap.execute("CREATE TEMP TABLE s(x)")
    cap.execute("INSERT INTO s VALUES (5)")
    cap.execute("CREATE TEMP VIEW sv AS SELECT x * 2 AS y FROM s")
    with pytest.raises(NotSupportedError, match="TEMP trigger"):
        cap.execute("CREATE TEMP TRIGGER tr AFTER INSERT ON s BEGIN SELECT 1; END")
    cap.execute("INSERT INTO t SELECT y FROM sv")
    ops = cap.end_job()
    writer.conn.execute("RELEASE j")
    writer.commit()
    assert [type(op) for op in ops] == [ChangesetOp]
    assert rows(writer.conn, "SELECT x FROM t") == [(10,)]
    assert rows(writer.conn, "SELECT name FROM temp.sqlite_schema") == []


def test_create_table_records_the_stored_schema_not_the_client_text(writer: Writer) -> None:
    ops = writer.one("create table if not exists T2 (a int, b)")
    assert ops == [SqlOp("CREATE TABLE T2 (a int, b)")]
    assert writer.one("CREATE TABLE IF NOT EXISTS T2(z)") == []


# ------------------------------------------------------------------------ results


def test_exec_results_follow_sqlite3(writer: Writer) -> None:
    writer.begin()
    writer.conn.execute("SAVEPOINT j")
    cap = writer.capture
    cap.begin_job()
    cap.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)")
    ins = cap.execute("INSERT INTO t(name) VALUES (?), (?)", ["a", "b"])
    assert (ins.columns, ins.rows, ins.rowcount, ins.lastrowid) == (None, [], 2, 2)
    empty = cap.execute("SELECT id, name FROM t WHERE id > :n", {"n": 99})
    assert empty.columns == [("id", "INTEGER"), ("name", "TEXT")]
    assert (empty.rows, empty.rowcount) == ([], -1)
    upd = cap.execute("UPDATE t SET name = upper(name) RETURNING id, name")
    assert upd.rows == [(1, "A"), (2, "B")] and upd.rowcount == 2
    many = cap.executemany("INSERT INTO t(name) VALUES (?)", [("c",), ("d",), ("e",)])
    assert many.rowcount == 3
    assert cap.execute("  SELECT 1; -- trailing comment\n ;").rows == [(1,)]
    assert cap.execute("-- only a comment").columns is None
    with pytest.raises(ProgrammingError, match="one statement at a time"):
        cap.execute("INSERT INTO t(name) VALUES ('x'); INSERT INTO t(name) VALUES ('y')")
    with pytest.raises(ProgrammingError, match="only execute DML"):
        cap.executemany("SELECT ?", [(1,)])
    cap.executescript(
        "INSERT INTO t(name) VALUES ('s;1'); /* ; */ INSERT INTO t(name) VALUES ('s2');"
    )
    cap.end_job()
    writer.conn.execute("RELEASE j")
    writer.commit()
    assert rows(writer.conn, "SELECT count(*) FROM t") == [(7,)]


# ------------------------------------------------------------------------- errors

ERROR_CASES = [
    (
        "INSERT INTO t(id, v) VALUES (1, 'dup')",
        IntegrityError,
        19,
        "UNIQUE constraint failed: t.id",
    ),
    (
        "INSERT INTO t(id, v) VALUES (5, NULL)",
        IntegrityError,
        19,
        "NOT NULL constraint failed: t.v",
    ),
    ("INSERT INTO t(id, v) VALUES ('abc', 1)", IntegrityError, 20, "datatype mismatch"),
    ("SELEC 1", OperationalError, 1, 'near "SELEC": syntax error'),
    ("SELECT * FROM nowhere", OperationalError, 1, "no such table: nowhere"),
    ("SELECT randomblob(2000000000)", DataError, 18, "string or blob too big"),
]


@pytest.mark.parametrize(("sql", "cls", "code", "message"), ERROR_CASES)
def test_errors_are_translated_with_sqlite_code(
    writer: Writer, sql: str, cls: type[Exception], code: int, message: str
) -> None:
    writer.one("CREATE TABLE t(id INTEGER PRIMARY KEY, v NOT NULL)", "INSERT INTO t VALUES (1, 1)")
    writer.begin()
    with pytest.raises(cls) as info:
        writer.job(sql)
    writer.commit()
    assert type(info.value) is cls
    assert info.value.sqlite_code == code
    assert str(info.value) == message


def test_parameter_errors_are_programming_errors(writer: Writer) -> None:
    writer.one("CREATE TABLE t(a, b)")
    writer.begin()
    with pytest.raises(ProgrammingError, match="Incorrect number of bindings"):
        writer.job(("INSERT INTO t VALUES (?, ?)", (1,)))
    with pytest.raises(ProgrammingError, match="binding parameter :b"):
        writer.job(("INSERT INTO t VALUES (:a, :b)", {"a": 1}))
    with pytest.raises(ProgrammingError):
        writer.job(("INSERT INTO t VALUES (?, ?)", (1, [2])))
    writer.commit()


def test_translate_maps_the_classes_without_sql() -> None:
    assert type(translate(apsw.FullError("database or disk is full"))) is DiskFullError
    assert type(translate(apsw.BusyError("database is locked"))) is OperationalError
    assert type(translate(apsw.LockedError("database table is locked"))) is OperationalError
    assert type(translate(apsw.RangeError("column index out of range"))) is DataError
    assert type(translate(apsw.BindingsError("bad"))) is ProgrammingError


# ----------------------------------------------------------------------- refusals

REFUSED = [
    ("PRAGMA journal_mode=DELETE", NotSupportedError, "journal_mode"),
    ("PRAGMA synchronous = OFF", NotSupportedError, "synchronous"),
    ("PRAGMA foreign_keys=ON", NotSupportedError, "foreign_keys"),
    ("PRAGMA locking_mode=EXCLUSIVE", NotSupportedError, "locking_mode"),
    ("PRAGMA wal_checkpoint(TRUNCATE)", NotSupportedError, "wal_checkpoint"),
    ("PRAGMA wal_checkpoint", NotSupportedError, "wal_checkpoint"),
    ("PRAGMA writable_schema=ON", NotSupportedError, "writable_schema"),
    ("VACUUM", NotSupportedError, "VACUUM"),
    ("ATTACH DATABASE ':memory:' AS other", NotSupportedError, "ATTACH"),
    ("DETACH DATABASE other", NotSupportedError, "DETACH"),
    ("BEGIN", ProgrammingError, "opened and ended by the driver"),
    ("COMMIT", ProgrammingError, "COMMIT"),
    ("ROLLBACK", ProgrammingError, "ROLLBACK"),
    ("SAVEPOINT mine", NotSupportedError, "SAVEPOINT.*outside a transaction"),
    ("RELEASE j", NotSupportedError, "RELEASE"),
    ("CREATE TEMP TABLE s(x)", NotSupportedError, "TEMP"),
    ("UPDATE sqlite_sequence SET seq = 0", NotSupportedError, "sqlite_sequence"),
    ("DELETE FROM _litemirror_meta", NotSupportedError, "_litemirror_meta"),
    ("SELECT * FROM pragma_journal_mode('delete')", OperationalError, "unknown database"),
]


@pytest.mark.parametrize(("sql", "cls", "match"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_statements_change_nothing(
    writer: Writer, sql: str, cls: type[Exception], match: str
) -> None:
    writer.one(
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v)", "INSERT INTO t(v) VALUES (1)"
    )
    writer.begin()
    write_lsn(writer.conn, 7)
    writer.conn.execute("SAVEPOINT j")
    writer.capture.begin_job()
    writer.capture.execute("INSERT INTO t(v) VALUES (2)")
    with pytest.raises(cls, match=match):
        writer.capture.execute(sql)
    ops = writer.capture.end_job()
    # the group transaction and the job's savepoint are intact
    assert not writer.conn.get_autocommit()
    writer.conn.execute("RELEASE j")
    writer.conn.execute("COMMIT")
    # the row and its AUTOINCREMENT counter, nothing of the refused statement
    assert [type(op) for op in ops] == [ChangesetOp, SqlOp]
    assert rows(writer.conn, "PRAGMA journal_mode") == [("wal",)]
    assert rows(writer.conn, "PRAGMA foreign_keys") == [(0,)]
    assert rows(writer.conn, "SELECT v FROM t") == [(1,), (2,)]
    assert rows(writer.conn, "SELECT seq FROM sqlite_sequence") == [(2,)]
    assert read_lsn(writer.conn) == 7
    assert rows(writer.conn, "PRAGMA database_list") == [(0, "main", str(writer.conn.filename))]


def test_reading_pragmas_is_allowed_and_header_pragmas_replicate(writer: Writer) -> None:
    writer.one("CREATE TABLE t(a INTEGER, b)")
    writer.begin()
    writer.conn.execute("SAVEPOINT j")
    cap = writer.capture
    cap.begin_job()
    assert [r[1] for r in cap.execute("PRAGMA table_info(t)").rows] == ["a", "b"]
    assert cap.execute("PRAGMA journal_mode").rows == [("wal",)]
    assert cap.execute("PRAGMA user_version").rows == [(0,)]
    cap.execute("PRAGMA user_version = 12")
    cap.execute("PRAGMA main.application_id=0x10")
    ops = cap.end_job()
    writer.conn.execute("RELEASE j")
    writer.commit()
    assert ops == [SqlOp("PRAGMA user_version = 12"), SqlOp("PRAGMA application_id = 16")]


def test_cached_control_statement_text_is_still_refused(writer: Writer) -> None:
    # The member itself ran "COMMIT" and "RELEASE j" on this connection, so
    # apsw has those statements cached; a client sending the same text must
    # still be refused.
    writer.one("CREATE TABLE t(x)")
    writer.begin()
    with pytest.raises(ProgrammingError):
        writer.job("COMMIT")
    assert not writer.conn.get_autocommit()
    writer.commit()


# -------------------------------------------------------------------------- apply


def test_apply_record_is_idempotent(writer: Writer, copy: apsw.Connection) -> None:
    writer.begin()
    ops = writer.job("CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
    writer.commit(lsn=1)
    payload = encode_ops(ops)
    assert apply_record(copy, 1, payload) is True
    assert apply_record(copy, 1, payload) is False
    assert rows(copy, "SELECT x FROM t") == [(1,)]
    assert read_lsn(copy) == 1


def test_conflicting_record_applies_nothing(writer: Writer, copy: apsw.Connection) -> None:
    apply_record(copy, 1, encode_ops(writer.one("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")))
    apply_record(copy, 2, encode_ops(writer.one("INSERT INTO t VALUES (1, 'a'), (2, 'b')")))
    # The copy diverges behind the mirror's back.
    copy.execute("UPDATE t SET v = 'changed' WHERE id = 2")
    before = table_checksums(copy)
    ops = writer.one(
        "CREATE TABLE other(x)",
        "INSERT INTO t VALUES (3, 'c')",
        "UPDATE t SET v = 'B' WHERE id = 2",
    )
    with pytest.raises(InternalError, match="table 't'") as info:
        apply_record(copy, 3, encode_ops(ops))
    assert "differ" in str(info.value)
    assert table_checksums(copy) == before
    assert read_lsn(copy) == 2
    assert copy.get_autocommit()


def test_record_for_a_missing_table_applies_nothing(writer: Writer, copy: apsw.Connection) -> None:
    writer.one("CREATE TABLE t(x)")  # never applied to the copy
    ops = writer.one("INSERT INTO t VALUES (1)")
    with pytest.raises(InternalError, match="does not have"):
        apply_record(copy, 1, encode_ops(ops))
    assert read_lsn(copy) == 0


def test_failing_statement_op_rolls_back_earlier_ops(copy: apsw.Connection) -> None:
    ops: list[Op] = [SqlOp("CREATE TABLE a(x)"), SqlOp("CREATE TABLE a(x)")]
    with pytest.raises(InternalError, match="already exists"):
        apply_record(copy, 1, encode_ops(ops))
    assert rows(copy, "SELECT name FROM sqlite_schema WHERE name = 'a'") == []
    assert read_lsn(copy) == 0


def test_ops_round_trip_and_garbage_is_refused() -> None:
    ops: list[Op] = [ChangesetOp(b"\x01\x02"), SqlOp("CREATE TABLE t(x)")]
    assert decode_ops(encode_ops(ops)) == ops
    with pytest.raises(JournalCorruptError):
        decode_ops(b"\x92\xa3abc")
    with pytest.raises(JournalCorruptError):
        decode_ops(encode_ops(ops)[:-3])


def test_member_meta_statements_cannot_be_reused_by_clients(writer: Writer) -> None:
    # apsw's statement cache skips the authorizer, so the member's own meta
    # writes are never cached; the same text from a client is still refused.
    writer.one("CREATE TABLE t(x)")
    for lsn in (1, 2, 3):
        writer.begin()
        writer.commit(lsn=lsn)
    same_text = (
        "INSERT INTO _litemirror_meta(k, v) VALUES (?, ?) "
        "ON CONFLICT(k) DO UPDATE SET v = excluded.v"
    )
    writer.begin()
    with pytest.raises(NotSupportedError, match="_litemirror_meta"):
        writer.job((same_text, ("lsn", 99)))
    writer.commit()
    assert read_lsn(writer.conn) == 3


# ----------------------------------------------------------------- pure decisions

ACTIONS = [
    ((apsw.SQLITE_CREATE_TABLE, "t", None, "main"), policy.RUN_AS_DDL),
    ((apsw.SQLITE_CREATE_TEMP_TABLE, "t", None, "temp"), policy.ALLOW),
    ((apsw.SQLITE_CREATE_TEMP_TRIGGER, "tr", "t", "temp"), NotSupportedError),
    ((apsw.SQLITE_CREATE_TEMP_TABLE, "_litemirror_meta", None, "temp"), NotSupportedError),
    ((apsw.SQLITE_CREATE_VTABLE, "v", "fts5", "temp"), policy.ALLOW),
    ((apsw.SQLITE_ALTER_TABLE, "main", "t", None), policy.RUN_AS_DDL),
    ((apsw.SQLITE_ALTER_TABLE, "temp", "t", None), policy.ALLOW),
    ((apsw.SQLITE_ALTER_TABLE, "main", "_litemirror_meta", None), NotSupportedError),
    ((apsw.SQLITE_DROP_TABLE, "_litemirror_meta", None, "main"), NotSupportedError),
    ((apsw.SQLITE_CREATE_TRIGGER, "tr", "_litemirror_meta", "main"), NotSupportedError),
    ((apsw.SQLITE_ANALYZE, "_litemirror_meta", None, "main"), policy.RUN_AS_DDL),
    ((apsw.SQLITE_INSERT, "sqlite_master", None, "main"), policy.RUN_AS_DDL),
    ((apsw.SQLITE_INSERT, "sqlite_temp_master", None, "temp"), policy.ALLOW),
    ((apsw.SQLITE_UPDATE, "sqlite_sequence", "seq", "main"), NotSupportedError),
    ((apsw.SQLITE_INSERT, "_litemirror_meta", None, "main"), NotSupportedError),
    ((apsw.SQLITE_DELETE, "t", None, "main"), policy.ALLOW),
    ((apsw.SQLITE_PRAGMA, "user_version", "3", None), policy.RUN_AS_DDL),
    ((apsw.SQLITE_PRAGMA, "user_version", None, None), policy.ALLOW),
    ((apsw.SQLITE_PRAGMA, "table_info", "t", None), policy.ALLOW),
    ((apsw.SQLITE_PRAGMA, "journal_mode", None, None), policy.ALLOW),
    ((apsw.SQLITE_PRAGMA, "journal_mode", "wal", None), NotSupportedError),
    ((apsw.SQLITE_PRAGMA, "cache_size", "100", None), NotSupportedError),
    ((apsw.SQLITE_PRAGMA, "optimize", None, None), policy.RUN_OPTIMIZE),
    ((apsw.SQLITE_PRAGMA, "foreign_keys", "off", None), policy.ALLOW),
    ((apsw.SQLITE_PRAGMA, "foreign_keys", "1", None), NotSupportedError),
    ((apsw.SQLITE_PRAGMA, "wal_checkpoint", None, None), OperationalError),
    ((apsw.SQLITE_TRANSACTION, "BEGIN", None, None), ProgrammingError),
    ((apsw.SQLITE_SAVEPOINT, "RELEASE", "j", None), ProgrammingError),
    ((apsw.SQLITE_ATTACH, "x.db", None, None), NotSupportedError),
    ((apsw.SQLITE_READ, "t", "x", "main"), policy.ALLOW),
]


@pytest.mark.parametrize(("action", "expected"), ACTIONS, ids=[repr(a[0]) for a in ACTIONS])
def test_client_action_table(
    action: tuple[int, str, str | None, str | None], expected: Any
) -> None:
    # Inside a transaction, with foreign keys off (the default).
    rules = policy.Rules(policy.Where.TRANSACTION, foreign_keys=False)
    verdict = policy.client_action(*action, rules)
    if isinstance(expected, type):
        assert type(verdict) is expected
    else:
        assert verdict is expected


SPLITS = [
    ("select 1", ("select 1",)),
    ("select 1;  -- done", ("select 1;",)),
    ("select ';'; select 2", ("select ';';", "select 2")),
    ("/* a; b */ select 1", ("/* a; b */ select 1",)),
    (
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; SELECT 3",
        ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;", "SELECT 3"),
    ),
    ("", ()),
    (" ;; -- nothing\n", ()),
]


@pytest.mark.parametrize(("sql", "statements"), SPLITS)
def test_split_statements(sql: str, statements: tuple[str, ...]) -> None:
    assert policy.split_statements(sql) == statements
