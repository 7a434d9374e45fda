"""Client savepoints on the writer: what stays committed is exactly what replicates.

Every test drives the writer as the member does (group transaction, the
transaction's own savepoint, capture) and applies the job's ops to a copy;
the copy must then equal the primary, row for row (rowids included), and
equal a plain SQLite database that ran the same statements by itself.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from litemirror.engine import SqlOp, Where, table_checksums
from litemirror.engine.ops import Op
from litemirror.errors import OperationalError
from litemirror.testing.writer import MemberWriter, content


class Member(MemberWriter):
    """One interactive transaction at a time, as the writer runs them."""

    def begin(self) -> None:
        self.open_group()
        self.begin_job(Where.TRANSACTION)

    def run(self, sql: str) -> Any:
        return self.capture.execute(sql)

    def commit(self) -> list[Op]:
        self.end_job()
        return self.commit_group()

    def transaction(self, *statements: str) -> list[Op]:
        self.begin()
        for sql in statements:
            self.run(sql)
        return self.commit()


@pytest.fixture
def member(tmp_path: Path) -> Iterator[Member]:
    m = Member(tmp_path)
    yield m
    m.close()


def same_as_sqlite(member: Member, tmp_path: Path, statements: list[str]) -> None:
    """The copy equals the primary, and both equal SQLite running the statements alone."""
    plain = apsw.Connection(str(tmp_path / "plain.db"))
    plain.execute("BEGIN")
    for sql in statements:
        plain.execute(sql)
    plain.execute("COMMIT")
    assert content(member.copy) == content(member.conn)
    assert table_checksums(member.copy) == table_checksums(member.conn)
    assert content(member.conn) == content(plain)
    plain.close()


# ------------------------------------------------------------------ by hand


def test_rolled_back_savepoint_drops_its_ddl_and_rows(member: Member, tmp_path: Path) -> None:
    statements = [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v)",
        "INSERT INTO t(v) VALUES ('before')",
        "SAVEPOINT a",
        "CREATE TABLE u(x)",
        "INSERT INTO u VALUES (1)",
        "ALTER TABLE t ADD COLUMN w",
        "INSERT INTO t(v, w) VALUES ('gone', 2)",
        "PRAGMA user_version = 9",
        "ROLLBACK TO a",
        "INSERT INTO t(v) VALUES ('after')",
        "RELEASE a",
    ]
    ops = member.transaction(*statements)
    sql = [op.sql for op in ops if isinstance(op, SqlOp)]
    assert not any("u(x)" in s or "ADD COLUMN" in s or "user_version" in s for s in sql)
    assert list(member.copy.execute("SELECT v FROM t ORDER BY id")) == [("before",), ("after",)]
    same_as_sqlite(member, tmp_path, statements)


def test_autoincrement_counters_follow_the_rollback(member: Member, tmp_path: Path) -> None:
    statements = [
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        "INSERT INTO t(v) VALUES (1)",
        "SAVEPOINT a",
        "INSERT INTO t(v) VALUES (2), (3)",
        "DELETE FROM t WHERE v = 3",
        "ROLLBACK TO a",
        "INSERT INTO t(v) VALUES (4)",
        "SAVEPOINT b",
        "INSERT INTO t(v) VALUES (5)",
        "RELEASE b",
    ]
    member.transaction(*statements)
    assert list(member.copy.execute("SELECT seq FROM sqlite_sequence")) == [(3,)]
    assert list(member.copy.execute("SELECT id, v FROM t")) == [(1, 1), (2, 4), (3, 5)]
    same_as_sqlite(member, tmp_path, statements)


def test_autoincrement_table_created_inside_a_rolled_back_savepoint(
    member: Member, tmp_path: Path
) -> None:
    # sqlite_sequence itself is created and rolled back with it.
    statements = [
        "CREATE TABLE k(x)",
        "SAVEPOINT a",
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        "INSERT INTO t(v) VALUES (1)",
        "ROLLBACK TO a",
        "INSERT INTO k VALUES (1)",
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        "INSERT INTO t(v) VALUES (7), (8)",
    ]
    member.transaction(*statements)
    same_as_sqlite(member, tmp_path, statements)


def test_nested_savepoints_and_names_as_sqlite_reads_them(member: Member, tmp_path: Path) -> None:
    statements = [
        "CREATE TABLE t(x)",
        'SAVEPOINT "outer one"',
        "INSERT INTO t VALUES (1)",
        "SAVEPOINT x",
        "INSERT INTO t VALUES (2)",
        "SAVEPOINT X",  # the same name: ROLLBACK TO finds the innermost
        "CREATE INDEX tx ON t(x)",
        "INSERT INTO t VALUES (3)",
        "ROLLBACK TRANSACTION TO SAVEPOINT x",
        "INSERT INTO t VALUES (4)",
        "RELEASE SAVEPOINT x",  # the inner one
        "ROLLBACK TO [x]",  # now the outer x: drops 2 and 4
        "INSERT INTO t VALUES (5)",
        'RELEASE "outer one"',
    ]
    member.transaction(*statements)
    assert list(member.copy.execute("SELECT x FROM t ORDER BY x")) == [(1,), (5,)]
    same_as_sqlite(member, tmp_path, statements)


def test_client_cannot_reach_the_member_savepoints(member: Member) -> None:
    member.transaction("CREATE TABLE t(x)")
    member.begin()
    member.run("INSERT INTO t VALUES (1)")
    member.run("SAVEPOINT mine")
    for name in ("lm_job", "lm_txn", "lm_s0", "j"):
        for verb in ("RELEASE", "ROLLBACK TO"):
            with pytest.raises(OperationalError, match=f"no such savepoint: {name}"):
                member.run(f"{verb} {name}")
    member.run("INSERT INTO t VALUES (2)")
    member.run("ROLLBACK TO mine")
    member.commit()
    assert list(member.conn.execute("SELECT x FROM t")) == [(1,)]
    assert list(member.copy.execute("SELECT x FROM t")) == [(1,)]


def test_a_rolled_back_transaction_undoes_its_savepoints(member: Member) -> None:
    member.transaction("CREATE TABLE t(x)")
    member.begin()
    member.run("SAVEPOINT a")
    member.run("INSERT INTO t VALUES (1)")
    member.abort_job()
    member.commit_group()
    assert list(member.conn.execute("SELECT x FROM t")) == []
    # the next transaction starts with no client savepoint
    member.begin()
    with pytest.raises(OperationalError, match="no such savepoint: a"):
        member.run("RELEASE a")
    member.commit()


# --------------------------------------------------- random sequences, checked three ways

STEPS = (
    "insert",
    "insert",
    "update",
    "delete",
    "savepoint",
    "savepoint",
    "release",
    "rollback_to",
    "rollback_to",
    "ddl",
)


def random_transaction(rng: random.Random) -> list[str]:
    """A transaction of DML, DDL and savepoints that SQLite accepts as a whole."""
    out = [
        "CREATE TABLE t(a INTEGER PRIMARY KEY AUTOINCREMENT, b)",
        "CREATE TABLE n(x, y)",  # no primary key: rows keyed by rowid
        "INSERT INTO t(b) VALUES (0)",
        "INSERT INTO n VALUES (0, 0)",
    ]
    stack: list[str] = []
    extra_tables = 0
    for _ in range(rng.randint(5, 40)):
        step = rng.choice(STEPS)
        value = rng.randint(1, 9)
        if step == "insert":
            out.append(
                rng.choice(
                    [f"INSERT INTO t(b) VALUES ({value})", f"INSERT INTO n VALUES ({value}, 1)"]
                )
            )
        elif step == "update":
            out.append(rng.choice([f"UPDATE t SET b = b + {value}", "UPDATE n SET y = y * 2"]))
        elif step == "delete":
            out.append(
                rng.choice(
                    [f"DELETE FROM t WHERE b % {value} = 0", f"DELETE FROM n WHERE x = {value}"]
                )
            )
        elif step == "savepoint":
            name = rng.choice(["s1", "s2", "S1", "s3"])
            stack.append(name.lower())
            out.append(f"SAVEPOINT {name}")
        elif step == "ddl":
            extra_tables += 1
            table = f"e{extra_tables}"
            out.append(f"CREATE TABLE {table}(id INTEGER PRIMARY KEY AUTOINCREMENT, v)")
            out.append(f"INSERT INTO {table}(v) VALUES ({value})")
        elif stack:
            name = rng.choice(stack)
            index = len(stack) - 1 - stack[::-1].index(name)
            if step == "release":
                del stack[index:]
                out.append(f"RELEASE {name}")
            else:
                del stack[index + 1 :]
                out.append(f"ROLLBACK TO {name}")
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_savepoint_sequences(seed: int, member: Member, tmp_path: Path) -> None:
    statements = random_transaction(random.Random(seed))
    member.transaction(*statements)
    same_as_sqlite(member, tmp_path, statements)
