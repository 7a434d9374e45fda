"""executescript on the writer, side by side with Python's sqlite3.

Each script runs twice: through capture (one job, committed, applied to a
copy) and with ``sqlite3.Connection.executescript`` on a plain file. The
error, if any, must be the same class; the rows left behind must be the
same on all three databases. One difference is documented (docs/sql.md):
when a statement fails inside the script's own BEGIN...COMMIT, sqlite3
leaves that transaction open for the program, litemirror rolls it back —
so the sqlite3 side is rolled back here too, as a program does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litemirror import errors
from litemirror.engine import table_checksums
from litemirror.testing.writer import MemberWriter, content

SETUP = (
    "CREATE TABLE p(id INTEGER PRIMARY KEY);"
    "CREATE TABLE c(id INTEGER PRIMARY KEY, pid REFERENCES p(id) ON DELETE CASCADE);"
    "CREATE TABLE d(id INTEGER PRIMARY KEY, pid REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);"
    "CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v);"
    "INSERT INTO p VALUES (1), (2);"
)

SCRIPTS = [
    ("all-good", "INSERT INTO p VALUES (3); INSERT INTO seq(v) VALUES ('a');"),
    (
        "fails-midway-prefix-stays",
        "INSERT INTO p VALUES (3); INSERT INTO p VALUES (1); INSERT INTO p VALUES (4);",
    ),
    ("begin-commit", "BEGIN; INSERT INTO p VALUES (5); INSERT INTO seq(v) VALUES ('b'); COMMIT;"),
    (
        "fails-inside-begin",
        "INSERT INTO p VALUES (3); BEGIN; INSERT INTO p VALUES (6); INSERT INTO p VALUES (6);"
        "COMMIT;",
    ),
    ("rollback-in-script", "BEGIN; INSERT INTO p VALUES (7); ROLLBACK; INSERT INTO p VALUES (8);"),
    (
        "ddl-then-failure",
        "CREATE TABLE x(a); INSERT INTO x VALUES (1); BEGIN; CREATE TABLE y(b); "
        "INSERT INTO y VALUES (1); SELECT nope FROM y; COMMIT;",
    ),
    (
        "savepoint-opens-the-transaction",
        "SAVEPOINT a; INSERT INTO p VALUES (9); SAVEPOINT b; INSERT INTO p VALUES (10); "
        "ROLLBACK TO b; RELEASE a; INSERT INTO p VALUES (11);",
    ),
    (
        "savepoints-inside-begin",
        "BEGIN; INSERT INTO seq(v) VALUES ('c'); SAVEPOINT s; INSERT INTO seq(v) VALUES ('d'); "
        "ROLLBACK TO s; INSERT INTO seq(v) VALUES ('e'); COMMIT;",
    ),
    ("commit-without-begin", "INSERT INTO p VALUES (12); COMMIT; INSERT INTO p VALUES (13);"),
    ("nested-begin", "BEGIN; INSERT INTO p VALUES (14); BEGIN; INSERT INTO p VALUES (15);"),
    ("release-unknown", "INSERT INTO p VALUES (16); RELEASE nope; INSERT INTO p VALUES (17);"),
    ("cascade", "DELETE FROM p WHERE id = 1; INSERT INTO c VALUES (1, 2);"),
    (
        "immediate-fk-violation",
        "INSERT INTO p VALUES (18); INSERT INTO c VALUES (2, 99); INSERT INTO p VALUES (19);",
    ),
    # A deferred violation fails the statement at its implicit commit, alone.
    (
        "deferred-fk-autocommit",
        "INSERT INTO p VALUES (20); INSERT INTO d VALUES (1, 99); INSERT INTO p VALUES (21);",
    ),
    (
        "deferred-fk-fixed-in-txn",
        "BEGIN; INSERT INTO d VALUES (2, 98); INSERT INTO p VALUES (98); COMMIT;",
    ),
    (
        "deferred-fk-at-commit",
        "INSERT INTO p VALUES (22); BEGIN; INSERT INTO d VALUES (3, 97); COMMIT;"
        "INSERT INTO p VALUES (23);",
    ),
    (
        "deferred-fk-ddl-alone",
        "CREATE TABLE q(id INTEGER PRIMARY KEY); CREATE TABLE r(x REFERENCES q(id) DEFERRABLE "
        "INITIALLY DEFERRED); INSERT INTO q VALUES (1); INSERT INTO r VALUES (1); DROP TABLE q; "
        "INSERT INTO p VALUES (24);",
    ),
]

#: sqlite3's exception class -> litemirror's (same names, our tree).
_CLASSES = {
    sqlite3.IntegrityError: errors.IntegrityError,
    sqlite3.OperationalError: errors.OperationalError,
    sqlite3.ProgrammingError: errors.ProgrammingError,
}


@pytest.fixture(params=[False, True], ids=["fk-off", "fk-on"])
def pair(request: Any, tmp_path: Path) -> Iterator[tuple[MemberWriter, sqlite3.Connection]]:
    fk = bool(request.param)
    member = MemberWriter(tmp_path, foreign_keys=fk)
    plain = sqlite3.connect(tmp_path / "plain.db")
    plain.execute(f"PRAGMA foreign_keys={int(fk)}")
    member.open_group()
    assert member.script(SETUP) is None
    member.commit_group()
    plain.executescript(SETUP)
    yield member, plain
    member.close()
    plain.close()


def _plain_content(tmp_path: Path) -> dict[str, Any]:
    import apsw

    conn = apsw.Connection(str(tmp_path / "plain.db"))
    try:
        return content(conn)
    finally:
        conn.close()


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_script_matches_sqlite3(
    name: str, script: str, pair: tuple[MemberWriter, sqlite3.Connection], tmp_path: Path
) -> None:
    member, plain = pair
    expected: type[Exception] | None = None
    try:
        plain.executescript(script)
    except sqlite3.Error as exc:
        expected = _CLASSES[type(exc)]
    if plain.in_transaction:
        plain.rollback()  # the documented difference: litemirror rolls it back

    member.open_group()
    got = member.script(script)
    member.commit_group()

    assert (type(got) if got is not None else None) is expected
    assert content(member.copy) == content(member.conn)
    assert table_checksums(member.copy) == table_checksums(member.conn)
    assert content(member.conn) == _plain_content(tmp_path)


def test_script_that_ends_inside_its_transaction_runs_nothing(
    pair: tuple[MemberWriter, sqlite3.Connection],
) -> None:
    member, _ = pair
    before = content(member.conn)
    member.open_group()
    for script in (
        "INSERT INTO p VALUES (30); BEGIN; INSERT INTO p VALUES (31);",
        "INSERT INTO p VALUES (33); SAVEPOINT a; SAVEPOINT b; RELEASE b;",
        "BEGIN; COMMIT; SAVEPOINT a; ROLLBACK TO a;",
    ):
        with pytest.raises(errors.ProgrammingError, match="transaction cannot stay open"):
            member.script(script)
    member.commit_group()
    assert content(member.conn) == before


@pytest.mark.parametrize(
    "script",
    ["INSERT INTO p VALUES (40); VACUUM;", "PRAGMA wal_checkpoint; INSERT INTO p VALUES (41);"],
)
def test_maintenance_in_a_script_is_refused_before_anything_runs(
    script: str, pair: tuple[MemberWriter, sqlite3.Connection]
) -> None:
    member, _ = pair
    before = content(member.conn)
    member.open_group()
    with pytest.raises(errors.NotSupportedError, match="statement of its own"):
        member.script(script)
    member.commit_group()
    assert content(member.conn) == before


def test_temp_tables_live_for_the_script_only(
    pair: tuple[MemberWriter, sqlite3.Connection],
) -> None:
    member, _ = pair
    member.open_group()
    assert (
        member.script(
            "CREATE TEMP TABLE staging(v); INSERT INTO staging VALUES (50), (51);"
            "INSERT INTO p SELECT v FROM staging; CREATE TEMP VIEW sv AS SELECT * FROM staging;"
        )
        is None
    )
    member.commit_group()
    assert list(member.conn.execute("SELECT name FROM temp.sqlite_schema")) == []
    assert list(member.copy.execute("SELECT id FROM p WHERE id >= 50")) == [(50,), (51,)]
    assert content(member.copy) == content(member.conn)


def test_script_can_use_the_names_of_the_member_savepoints(
    pair: tuple[MemberWriter, sqlite3.Connection],
) -> None:
    member, _ = pair
    member.open_group()
    err = member.script(
        "SAVEPOINT lm_job; INSERT INTO p VALUES (60); ROLLBACK TO lm_job; RELEASE lm_job;"
    )
    assert err is None
    member.commit_group()
    assert list(member.conn.execute("SELECT id FROM p WHERE id = 60")) == []
