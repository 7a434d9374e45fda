"""ANALYZE, PRAGMA optimize and VACUUM replicate; TEMP objects and internal tables stay out.

Each test ends with the copy equal to the primary (``content`` compares
every row with its rowid, ``table_checksums`` what ``litemirror verify``
compares), including after VACUUM has renumbered the rowids of a table
without a primary key — the rows later changes are keyed by.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litemirror.engine import SqlOp, Where, apply_record, encode_ops, policy, table_checksums
from litemirror.engine.maintenance import vacuum as apply_vacuum
from litemirror.engine.ops import VACUUM_SQL, is_vacuum
from litemirror.errors import NotSupportedError, OperationalError
from litemirror.testing.writer import MemberWriter, content


@pytest.fixture
def member(tmp_path: Path) -> Iterator[MemberWriter]:
    m = MemberWriter(tmp_path)
    m.one(
        Where.SCRIPT,
        "CREATE TABLE big(a, b); CREATE INDEX big_a ON big(a);"
        "WITH RECURSIVE r(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM r WHERE v < 3000) "
        "INSERT INTO big SELECT v, v % 7 FROM r;",
    )
    yield m
    m.close()


def identical(member: MemberWriter) -> None:
    assert content(member.copy) == content(member.conn)
    assert table_checksums(member.copy) == table_checksums(member.conn)


def vacuum(member: MemberWriter) -> None:
    """What the member does for a client's VACUUM: a record of its own, applied outside a group."""
    member.lsn += 1
    assert apply_vacuum(member.conn, member.lsn)
    assert apply_record(member.copy, member.lsn, encode_ops([SqlOp(VACUUM_SQL)]))


def test_analyze_replicates_statistics(member: MemberWriter) -> None:
    ops = member.one(Where.STATEMENT, "ANALYZE")
    assert ops == [SqlOp("ANALYZE")]
    assert list(member.copy.execute("SELECT count(*) FROM sqlite_stat1")) != [(0,)]
    identical(member)


def test_optimize_runs_as_the_analyze_statements_it_suggests(member: MemberWriter) -> None:
    member.open_group()
    listed = member.job(Where.STATEMENT, "PRAGMA optimize(0x10003)")[0].rows
    member.commit_group()
    assert listed and all(row[0].startswith("ANALYZE") for row in listed)
    assert (
        list(member.conn.execute("SELECT name FROM sqlite_schema WHERE name = 'sqlite_stat1'"))
        == []
    )
    ops = member.one(Where.STATEMENT, "PRAGMA optimize(0x10002)")
    assert [op.sql for op in ops if isinstance(op, SqlOp)] == [row[0] for row in listed]
    assert list(member.copy.execute("SELECT tbl FROM sqlite_stat1 WHERE tbl = 'big'")) == [("big",)]
    identical(member)
    # Nothing changed since: optimize now has nothing to do, and records nothing.
    assert member.one(Where.STATEMENT, "PRAGMA optimize(0x10002)") == []


def test_vacuum_renumbers_rowids_the_same_way_everywhere(member: MemberWriter) -> None:
    member.one(
        Where.SCRIPT,
        "CREATE TABLE nokey(v); INSERT INTO nokey VALUES ('a'), ('b'), ('c'), ('d'), ('e');"
        "DELETE FROM nokey WHERE v IN ('a', 'c');"
        "CREATE TABLE textkey(k TEXT PRIMARY KEY, v);"
        "INSERT INTO textkey VALUES ('x', 1), ('y', 2);"
        "DELETE FROM big WHERE a % 3 = 0;",
    )
    before = list(member.conn.execute("SELECT rowid, v FROM nokey"))
    assert before == [(2, "b"), (4, "d"), (5, "e")]
    vacuum(member)
    after = list(member.conn.execute("SELECT rowid, v FROM nokey"))
    assert after != before  # VACUUM renumbered them...
    assert list(member.copy.execute("SELECT rowid, v FROM nokey")) == after  # ...on both
    # Later changes are keyed by the new rowids: they must land on the same rows.
    member.one(Where.STATEMENT, "UPDATE nokey SET v = v || '!' WHERE v = 'd'")
    member.one(Where.STATEMENT, "DELETE FROM nokey WHERE v = 'e'")
    member.one(Where.STATEMENT, "INSERT INTO nokey VALUES ('f')")
    identical(member)
    # Applied twice (a crash between VACUUM and its LSN): nothing more changes.
    assert not apply_vacuum(member.copy, member.lsn - 3)
    member.copy.execute("VACUUM")
    identical(member)


def test_vacuum_record_is_recognised() -> None:
    assert is_vacuum([SqlOp("VACUUM")])
    assert not is_vacuum([SqlOp("VACUUM"), SqlOp("VACUUM")])
    assert not is_vacuum([SqlOp("CREATE TABLE t(x)")])


@pytest.mark.parametrize(
    ("where", "sql", "error", "match"),
    [
        (Where.TRANSACTION, "VACUUM", OperationalError, "cannot run inside a transaction"),
        (
            Where.TRANSACTION,
            "PRAGMA wal_checkpoint(FULL)",
            OperationalError,
            "inside a transaction",
        ),
        (Where.STATEMENT, "VACUUM INTO '/tmp/x.db'", NotSupportedError, "not mirrored"),
        (Where.STATEMENT, "PRAGMA incremental_vacuum(5)", NotSupportedError, "incremental_vacuum"),
    ],
)
def test_maintenance_where_it_cannot_run(
    member: MemberWriter, where: Where, sql: str, error: type[Exception], match: str
) -> None:
    member.open_group()
    with pytest.raises(error, match=match):
        member.job(where, sql)
    member.commit_group()


# --------------------------------------------------------- TEMP objects, internal tables


def test_temp_objects_stay_private_to_their_transaction(member: MemberWriter) -> None:
    member.open_group()
    member.job(
        Where.TRANSACTION,
        "CREATE TEMP TABLE big(x)",  # shadows main.big for this transaction only
        "INSERT INTO big VALUES (1)",
        "CREATE TEMP TABLE s(v)",
        "CREATE INDEX temp.s_v ON s(v)",
        "CREATE VIRTUAL TABLE temp.f USING fts5(body)",
        "INSERT INTO f VALUES ('hello')",
        "INSERT INTO main.big SELECT 5000, count(*) FROM temp.big",
    )
    # The next job (another session's) sees none of it.
    res = member.job(Where.TRANSACTION, "SELECT count(*) FROM temp.sqlite_schema")
    assert res[0].rows == [(0,)]
    member.commit_group()
    assert list(member.copy.execute("SELECT a, b FROM big WHERE a = 5000")) == [(5000, 1)]
    identical(member)


def test_a_rolled_back_transaction_takes_its_temp_objects(member: MemberWriter) -> None:
    member.open_group()
    member.begin_job(Where.TRANSACTION)
    member.capture.execute("CREATE TEMP TABLE s(v)")
    member.abort_job()
    member.commit_group()
    assert list(member.conn.execute("SELECT name FROM temp.sqlite_schema")) == []


ATTACKS = [
    "CREATE TEMP TRIGGER tr AFTER UPDATE ON main._litemirror_meta BEGIN "
    "UPDATE big SET b = b + 1000; END",
    "CREATE TRIGGER tr AFTER UPDATE ON _litemirror_meta BEGIN UPDATE big SET b = b + 1000; END",
    "CREATE TRIGGER temp.tr AFTER INSERT ON big BEGIN SELECT 1; END",
    "CREATE TEMP TABLE _litemirror_meta(k PRIMARY KEY, v)",
    "CREATE TEMP VIEW _LITEMIRROR_x AS SELECT 1",
    "DROP TABLE _litemirror_meta",
    "ALTER TABLE _litemirror_meta ADD COLUMN x",
    "CREATE INDEX m ON _litemirror_meta(v)",
    "UPDATE _litemirror_meta SET v = 0",
    "INSERT INTO sqlite_stat1 VALUES ('big', NULL, '1')",
    "PRAGMA temp.user_version = 5",
]


@pytest.mark.parametrize("sql", ATTACKS)
def test_internal_tables_and_temp_triggers_are_out_of_reach(member: MemberWriter, sql: str) -> None:
    member.one(Where.STATEMENT, "ANALYZE")
    before = content(member.conn)
    member.open_group()
    with pytest.raises(NotSupportedError):
        member.job(Where.TRANSACTION, sql)
    assert isinstance(member.script(f"INSERT INTO big VALUES (0, 0); {sql};"), NotSupportedError)
    member.commit_group()
    member.one(Where.STATEMENT, "DELETE FROM big WHERE a = 0")
    assert content(member.conn) == before
    assert list(member.conn.execute("SELECT name FROM temp.sqlite_schema")) == []
    assert list(member.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'")) == []


def test_a_trigger_cannot_write_internal_tables_even_through_a_cascade(tmp_path: Path) -> None:
    # The trigger is created (its body is not checked then), but whatever
    # fires it — a client statement, or a cascade of DROP TABLE re-run by
    # the DDL path — is refused before the write.
    m = MemberWriter(tmp_path, foreign_keys=True)
    m.one(
        Where.SCRIPT,
        "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(pid REFERENCES p(id) ON DELETE "
        "CASCADE); INSERT INTO p VALUES (1); INSERT INTO c VALUES (1);"
        "CREATE TRIGGER tr AFTER DELETE ON c BEGIN UPDATE _litemirror_meta SET v = 0; END;",
    )
    before = content(m.conn)
    for sql in ("DELETE FROM c", "DROP TABLE p"):
        m.open_group()
        with pytest.raises(NotSupportedError, match="_litemirror_meta"):
            m.job(Where.STATEMENT, sql)
        m.commit_group()
    assert content(m.conn) == before
    m.close()


# ------------------------------------------------------------------ pure decisions

MAINTENANCE: list[tuple[str, Any]] = [
    ("VACUUM", policy.Maintenance("vacuum")),
    ("  vacuum main ; -- done", policy.Maintenance("vacuum")),
    ('/* x */ VACUUM "main"', policy.Maintenance("vacuum")),
    ("PRAGMA wal_checkpoint", policy.Maintenance("checkpoint", "PASSIVE")),
    ("pragma main.wal_checkpoint(truncate)", policy.Maintenance("checkpoint", "TRUNCATE")),
    ('PRAGMA "wal_checkpoint" = RESTART;', policy.Maintenance("checkpoint", "RESTART")),
    ("PRAGMA wal_checkpoint(whatever)", policy.Maintenance("checkpoint", "PASSIVE")),
    ("PRAGMA temp.wal_checkpoint", None),
    ("PRAGMA wal_autocheckpoint", None),
    ("PRAGMA optimize", None),
    ("SELECT 'VACUUM'", None),
    ("VACUUM INTO 'x.db'", NotSupportedError),
    ("VACUUM main INTO 'x.db'", NotSupportedError),
    ("VACUUM temp", NotSupportedError),
    ("VACUUM main extra", OperationalError),
]


@pytest.mark.parametrize(("sql", "expected"), MAINTENANCE, ids=[m[0] for m in MAINTENANCE])
def test_maintenance_is_recognised(sql: str, expected: Any) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            policy.maintenance(sql)
    else:
        assert policy.maintenance(sql) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("0", False), ("ON", True), ("off", False), ("yes", True), ("no", False),
     ("true", True), ("FALSE", False), ("full", True), ("2", True), ("00", False),
     ("maybe", False), ("-1", False), ("1x", True)],
)  # fmt: skip
def test_pragma_bool_reads_like_sqlite(text: str, value: bool) -> None:
    assert policy.pragma_bool(text) is value


@pytest.mark.parametrize(
    ("text", "mask"),
    [("", 0xFFFE), ("0x10002", 0x10002), ("3", 3), ("0X3", 3), ("-1", 0xFFFFFFFF), ("x", 0)],
)
def test_optimize_mask_reads_like_sqlite(text: str, mask: int) -> None:
    assert policy.optimize_mask(text) == mask


S, R, B, C, RT = (
    ("SAVEPOINT", "a"),
    ("RELEASE", "a"),
    ("BEGIN", None),
    ("COMMIT", None),
    ("ROLLBACK TO", "a"),
)


@pytest.mark.parametrize(
    ("steps", "open_"),
    [
        ([], False),
        ([B], True),
        ([B, C], False),
        ([B, None, C, B], True),
        ([S], True),
        ([S, R], False),
        ([S, RT], True),
        ([B, S, R], True),
        ([S, ("SAVEPOINT", "A"), R], True),  # releases the inner "A" only
        ([S, ("SAVEPOINT", "A"), R, R], False),
        ([B, B], False),  # fails at the second BEGIN: rolled back, not open
        ([R], False),  # no such savepoint: fails there
        ([C, B], False),  # COMMIT without a transaction fails there
    ],
)
def test_script_ends_open(steps: list[Any], open_: bool) -> None:
    assert policy.script_ends_open(steps) is open_
