"""Diverged records read back, shown, and re-executed under each conflict policy.

The kept file is written by the member's own code (``rejoin.keep``) from
changesets captured by a real SQLite session; the "primary" is an SQLite
database in memory, reached through the same narrow interface the command
uses with the driver. The command against real member processes is in
tests/integration/test_diverged_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw
import pytest

from litemirror import errors
from litemirror.cli.diverged_apply import Policy, run_database
from litemirror.cli.diverged_records import (
    UNCHANGED,
    KeptFile,
    RowChange,
    TableShape,
    Value,
    names_for,
    parse_kept,
    row_step,
    show_lines,
    show_value,
)
from litemirror.engine.ops import ChangesetOp, Op, SqlOp, encode_ops
from litemirror.journal import Record, RecordKind
from litemirror.server.stream.rejoin import keep

SCHEMA = """
CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE n (a, b);
CREATE TABLE k (x TEXT, y INT, z, PRIMARY KEY (y, x)) WITHOUT ROWID;
INSERT INTO t VALUES (1, 'v1'), (2, 'v2'), (3, 'v3');
INSERT INTO n VALUES ('a', 1);
INSERT INTO k VALUES ('p', 1, 'old');
"""


RECORD_11 = (
    "UPDATE t SET v = 'changed' WHERE id = 1; DELETE FROM t WHERE id = 2;"
    "INSERT INTO t VALUES (777, 'hello'); INSERT INTO n VALUES ('b', x'00ff');"
    "UPDATE k SET z = 'new' WHERE x = 'p';"
)


def database() -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute(SCHEMA)
    return conn


def captured(conn: apsw.Connection, sql: str) -> bytes:
    session = apsw.Session(conn, "main")
    session.config(apsw.SQLITE_SESSION_OBJCONFIG_ROWID, 1)
    session.attach()
    conn.execute(sql)
    data = session.changeset()
    session.close()
    return data


def record(lsn: int, ops: list[Op], db: str = "app") -> Record:
    return Record(lsn, 3, RecordKind.CHANGES, db, 1_700_000_000_000 + lsn, encode_ops(ops))


def diverged(tmp_path: Path) -> tuple[KeptFile, apsw.Connection]:
    """Two records on a copy of SCHEMA; returns the kept file and the copy after them."""
    old = database()
    one = captured(old, RECORD_11)
    two_a = captured(old, "UPDATE t SET v = 'hello again' WHERE id = 777")
    old.execute("CREATE TABLE z (a)")
    two_b = captured(old, "INSERT INTO z VALUES ('after ddl')")
    records = [
        record(11, [ChangesetOp(one)]),
        record(
            12,
            [
                ChangesetOp(two_a),
                SqlOp("CREATE TABLE z (a)"),
                ChangesetOp(two_b),
                SqlOp("UPDATE sqlite_sequence SET seq = 9 WHERE name = 'q';"),
            ],
        ),
    ]
    path, _ = keep(records, tmp_path / "diverged", 10)
    with open(path) as f:
        return parse_kept(path.name, f), old


class MemoryPrimary:
    """The Primary interface over an SQLite connection."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if not self.conn.get_autocommit():
            self.conn.execute("ROLLBACK")

    def execute(self, sql: str, params: Sequence[Value]) -> tuple[int, list[tuple[Any, ...]]]:
        try:
            rows = self.conn.execute(sql, tuple(params)).fetchall()
        except apsw.ConstraintError as exc:
            raise errors.IntegrityError(str(exc)) from None
        except apsw.SQLError as exc:
            raise errors.ProgrammingError(str(exc)) from None
        return self.conn.changes(), rows


def content(conn: apsw.Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


# ------------------------------------------------------------------ reading


def test_the_kept_file_reads_back_in_order(tmp_path: Path) -> None:
    kept, _ = diverged(tmp_path)
    assert kept.complete and kept.after_lsn == 10 and kept.lsns == (11, 12)
    assert kept.summary["app"]["t"] == {"update": 2, "delete": 1, "insert": 1}
    assert kept.rolled_back_at is not None and kept.rolled_back_at.endswith("UTC")
    tags = [tag for tag, _ in kept.records[1].ops]
    assert tags == ["changeset", "sql", "changeset", "sql"]
    assert kept.records[1].ordered and kept.records[1].mixed


def test_an_older_file_with_sql_and_changesets_apart_is_marked_unordered(tmp_path: Path) -> None:
    kept, _ = diverged(tmp_path)
    entry = {
        "lsn": 5,
        "epoch": 1,
        "kind": "CHANGES",
        "database": "app",
        "sql": ["CREATE TABLE z (a)"],
        "changesets_base64": [kept.records[0].ops[0][1]],
    }
    old = parse_kept("diverged-old.jsonl", [json.dumps(entry)])
    assert not old.complete and not old.records[0].ordered
    assert old.summary == {"app": {}}


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (["not json"], "line 1 is not JSON"),
        (["", "[1, 2]"], "line 2: not a diverged record"),
        (['{"lsn": 1}'], "line 1: not a diverged record"),
        ([], "holds no diverged records"),
    ],
)
def test_what_is_not_a_kept_file_is_refused(lines: list[str], why: str) -> None:
    with pytest.raises(errors.DataError, match=why):
        parse_kept("f.jsonl", lines)


# ------------------------------------------------------------------ naming and display


def test_show_gives_rows_per_table_with_old_and_new_values(tmp_path: Path) -> None:
    kept, old = diverged(tmp_path)

    def shapes(db: str, table: str) -> tuple[TableShape | None, str]:
        rows = old.execute("SELECT * FROM pragma_table_info(?)", (table,)).fetchall()
        return TableShape.from_table_info(rows), "the test's copy"

    text = "\n".join(show_lines(kept, shapes))
    for expected in (
        "  table t (columns from the test's copy)",
        "    UPDATE id=1: v 'v1' -> 'changed'",
        "    DELETE id=2: v='v2'",
        "    INSERT id=777: v='hello'",
        "    INSERT rowid=2: a='b', b=X'00ff'",  # no primary key: keyed by rowid
        "    UPDATE x='p', y=1: z 'old' -> 'new'",
        "  SQL: CREATE TABLE z (a)",
        "    INSERT rowid=1: a='after ddl'",
        "  AUTOINCREMENT counters: UPDATE sqlite_sequence",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"
    numbered = "\n".join(show_lines(kept, lambda db, table: (None, "")))
    assert "(columns numbered" in numbered and "UPDATE #0=1: #1 'v1' -> 'changed'" in numbered


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "NULL"),
        (7, "7"),
        (1.5, "1.5"),
        ("it's", "'it''s'"),
        (b"\x00\xff", "X'00ff'"),
        (b"\x01" * 40, "X'" + "01" * 16 + "…' (40 bytes)"),
        ("x" * 100, "'" + "x" * 60 + "…' (100 characters)"),
        (UNCHANGED, "(unchanged)"),
    ],
)
def test_show_value(value: Any, shown: str) -> None:
    assert show_value(value) == shown


@pytest.mark.parametrize(
    ("width", "shape", "names"),
    [
        (2, TableShape(("id", "v"), True), ("id", "v")),
        (3, TableShape(("a", "b"), False), ("rowid", "a", "b")),
        (3, TableShape(("rowid", "b"), False), ("_rowid_", "rowid", "b")),
        (3, TableShape(("a", "b"), True), None),  # a column was dropped since
        (2, TableShape(("a", "b"), False), None),  # rowid + 1: a column was added since
        (1, TableShape(("a", "b"), True), None),
        (2, None, None),  # no such table
    ],
)
def test_names_for(width: int, shape: TableShape | None, names: tuple[str, ...] | None) -> None:
    change = RowChange("t", "INSERT", (0,), None, tuple(range(width)))
    assert names_for(change, shape) == names


def test_a_quoted_name_holding_a_question_mark_is_shown_right() -> None:
    change = RowChange('we?"ird', "INSERT", (0,), None, (1, "a?b"))
    step = row_step(change, ("id", "c?"))
    assert step.shown().startswith(
        """INSERT INTO "we?""ird" ("id", "c?") SELECT 1, 'a?b' WHERE NOT EXISTS"""
    )


# ------------------------------------------------------------------ the policies

CASES: list[tuple[str, str, Policy, list[int], list[int], str]] = [
    # name, what the primary did since, policy, records applied, records in conflict, why
    ("clean primary", "", "stop", [11, 12], [], ""),
    # The client retried its transaction on the new primary: record 11 is in place.
    ("record already in place", "RETRIED", "stop", [11, 12], [], ""),
    (
        "INSERT whose key exists with other values",
        "INSERT INTO t VALUES (777, 'theirs')",
        "stop",
        [],
        [11, 12],  # stop still looks at every record, to report every conflict
        "the primary's row now holds id=777, v='theirs'",
    ),
    (
        "UPDATE whose row changed since",
        "UPDATE t SET v = 'theirs' WHERE id = 1",
        "stop",
        [],
        [11],
        "v='theirs'",
    ),
    (
        "DELETE whose row changed since",
        "UPDATE t SET v = 'theirs' WHERE id = 2",
        "stop",
        [],
        [11],
        "DELETE id=2",
    ),
    (
        "UPDATE whose row is gone",
        "DELETE FROM k",
        "stop",
        [],
        [11],
        "no row has this key on the primary now",
    ),
    ("table gone", "DROP TABLE n", "stop", [], [11], "table n does not exist on the primary"),
    (
        "columns changed",
        "ALTER TABLE n ADD COLUMN c",
        "stop",
        [],
        [11],
        "has 3 column(s) on the primary, the record 2",
    ),
    (
        "primary refuses (UNIQUE index)",
        "CREATE UNIQUE INDEX tv ON t(v); INSERT INTO t VALUES (900, 'hello')",
        "stop",
        [],
        [11],
        "the primary refused it: UNIQUE constraint failed",
    ),
    (
        "DDL refused (the table exists)",
        "CREATE TABLE z (a)",
        "stop",
        [],
        [12],
        "the primary refused it",
    ),
    # skip: the record with the conflict goes, and the one that needed its row with it.
    (
        "skip: a later record needs the skipped one",
        "INSERT INTO t VALUES (777, 'theirs')",
        "skip",
        [],
        [11, 12],
        "UPDATE id=777",
    ),
    ("skip: an independent record still applies", "CREATE TABLE z (a)", "skip", [11], [12], ""),
    # a changed row whose change is already there is no conflict
    ("UPDATE in place", "UPDATE t SET v = 'changed' WHERE id = 1", "stop", [11, 12], [], ""),
]


@pytest.mark.parametrize(
    ("name", "since", "policy", "applied", "conflicts", "why"), CASES, ids=[c[0] for c in CASES]
)
def test_policy(
    tmp_path: Path,
    name: str,
    since: str,
    policy: Policy,
    applied: list[int],
    conflicts: list[int],
    why: str,
) -> None:
    kept, old = diverged(tmp_path)
    primary = database()
    if since == "RETRIED":
        primary.execute(RECORD_11)
    elif since:
        primary.execute(since)
    before = content(primary)
    run = run_database("app", kept.records, MemoryPrimary(primary), policy)
    assert sorted(run.conflicts) == conflicts, run.conflicts
    assert run.applied_records() == applied
    if why:
        assert any(why in w for ws in run.conflicts.values() for w in ws), run.conflicts
    if run.stopped:
        assert primary.get_autocommit() and content(primary) == before  # nothing applied
        return
    assert not primary.get_autocommit()  # left open for the caller to commit
    primary.execute("COMMIT")
    if applied == [11, 12]:
        assert content(primary) == content(old)
    if not applied:
        assert content(primary) == before


def test_an_applied_pass_reports_what_it_did(tmp_path: Path) -> None:
    kept, _ = diverged(tmp_path)
    run = run_database("app", kept.records, MemoryPrimary(database()), "stop")
    statuses = [(o.lsn, o.status) for o in run.outcomes]
    assert statuses.count((11, "applied")) == 5
    assert (12, "not needed") in statuses  # the AUTOINCREMENT counter statement
    sql = [o.sql for o in run.outcomes if o.sql]
    assert 'UPDATE "t" SET "v" = \'changed\' WHERE "id" IS 1 AND "v" IS \'v1\'' in sql
    assert "CREATE TABLE z (a)" in sql


# ------------------------------------------------------------------ the command, without a mirror


def test_list_shows_every_file_and_which_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from litemirror.cli.main import main

    kept, _ = diverged(tmp_path)
    (tmp_path / "diverged" / "diverged-20260101T000000-lsn1-1.jsonl").write_text("garbage\n")
    assert main(["diverged", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cannot be read: diverged-20260101T000000-lsn1-1.jsonl line 1 is not JSON" in out
    assert kept.name in out and "2 record(s), LSN 11-12" in out
    assert "app.t: 1 delete, 1 insert, 2 update" in out
    assert main(["diverged", "list", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["diverged", "show", kept.name, "--data-dir", str(tmp_path)]) == 0
    assert "UPDATE #0=1: #1 'v1' -> 'changed'" in capsys.readouterr().out  # no copy: numbered
