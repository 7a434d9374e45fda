"""Foreign keys on the writer: per-job checks inside one group, cascades replicate once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from litemirror.engine import Where
from litemirror.errors import DatabaseError, IntegrityError, NotSupportedError
from litemirror.testing.writer import MemberWriter, content

SCHEMA = (
    "CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE c(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p(id) ON DELETE CASCADE)",
    "CREATE TABLE n(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p(id) ON DELETE SET NULL)",
    "CREATE TABLE d(id INTEGER PRIMARY KEY, "
    "pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TABLE gc(id INTEGER PRIMARY KEY, cid INTEGER REFERENCES c(id) ON DELETE CASCADE)",
    "INSERT INTO p VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    "INSERT INTO c VALUES (10, 1), (11, 1), (12, 2)",
    "INSERT INTO gc VALUES (100, 10), (101, 12)",
    "INSERT INTO n VALUES (20, 1), (21, 2)",
)


@pytest.fixture
def member(tmp_path: Path) -> Iterator[MemberWriter]:
    m = MemberWriter(tmp_path, foreign_keys=True)
    m.one(Where.TRANSACTION, *SCHEMA)
    yield m
    m.close()


def test_orphan_is_refused(member: MemberWriter) -> None:
    member.open_group()
    with pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed"):
        member.job(Where.STATEMENT, "INSERT INTO c VALUES (13, 99)")
    member.commit_group()
    assert list(member.conn.execute("SELECT count(*) FROM c")) == [(3,)]


def test_cascade_and_set_null_replicate_and_are_not_run_twice(member: MemberWriter) -> None:
    # The copy applies with foreign keys off: were the cascade re-run there,
    # the changeset's own deletes of c and gc would find nothing and fail.
    assert list(member.copy.execute("PRAGMA foreign_keys")) == [(0,)]
    member.one(Where.STATEMENT, "DELETE FROM p WHERE id = 1")
    assert list(member.copy.execute("SELECT id FROM c ORDER BY id")) == [(12,)]
    assert list(member.copy.execute("SELECT id FROM gc")) == [(101,)]
    assert list(member.copy.execute("SELECT id, pid FROM n ORDER BY id")) == [(20, None), (21, 2)]
    assert content(member.copy) == content(member.conn)


def test_one_jobs_deferred_violation_fails_that_job_alone(member: MemberWriter) -> None:
    member.open_group()
    member.job(Where.STATEMENT, "INSERT INTO p VALUES (4, 'd')")
    with pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed"):
        member.job(Where.STATEMENT, "INSERT INTO d VALUES (1, 99)")
    member.job(Where.TRANSACTION, "INSERT INTO d VALUES (2, 50)", "INSERT INTO p VALUES (50, 'x')")
    member.job(Where.STATEMENT, "INSERT INTO d VALUES (3, 4)")
    member.commit_group()  # the group commit itself checks nothing left over
    assert list(member.copy.execute("SELECT id, pid FROM d ORDER BY id")) == [(2, 50), (3, 4)]
    assert content(member.copy) == content(member.conn)


def test_deferred_violation_at_commit_leaves_the_transaction_to_be_fixed(
    member: MemberWriter,
) -> None:
    member.open_group()
    member.begin_job(Where.TRANSACTION)
    member.capture.execute("INSERT INTO d VALUES (5, 77)")
    with pytest.raises(IntegrityError):
        member.capture.check_deferred()
    with pytest.raises(IntegrityError):
        member.capture.end_job()
    member.capture.execute("INSERT INTO p VALUES (77, 'fixed')")
    member.end_job()
    member.commit_group()
    assert list(member.copy.execute("SELECT pid FROM d")) == [(77,)]


def test_savepoint_rollback_clears_a_deferred_violation(member: MemberWriter) -> None:
    member.one(
        Where.TRANSACTION,
        "SAVEPOINT a",
        "INSERT INTO d VALUES (6, 66)",
        "ROLLBACK TO a",
        "INSERT INTO d VALUES (7, 3)",
    )
    assert list(member.copy.execute("SELECT id FROM d")) == [(7,)]


def test_reading_and_setting_the_pragma(member: MemberWriter) -> None:
    member.open_group()
    res = member.job(
        Where.TRANSACTION, "PRAGMA foreign_keys", "PRAGMA foreign_keys = ON", "PRAGMA foreign_keys"
    )
    assert [r.rows for r in res] == [[(1,)], [], [(1,)]]
    with pytest.raises(NotSupportedError, match=r"\[sqlite\] foreign_keys"):
        member.job(Where.TRANSACTION, "PRAGMA foreign_keys = OFF")
    with pytest.raises(NotSupportedError, match="foreign_keys"):
        member.job(Where.STATEMENT, "PRAGMA main.foreign_keys = no")
    member.commit_group()
    assert list(member.conn.execute("PRAGMA foreign_keys")) == [(1,)]


def test_drop_table_cascades_are_captured(member: MemberWriter) -> None:
    member.one(Where.STATEMENT, "DROP TABLE gc")
    member.one(Where.STATEMENT, "DELETE FROM n")
    member.one(Where.STATEMENT, "DELETE FROM d")
    member.one(Where.STATEMENT, "DROP TABLE p")  # cascades into c
    assert list(member.copy.execute("SELECT count(*) FROM c")) == [(0,)]
    assert content(member.copy) == content(member.conn)


def test_ctas_into_a_table_a_child_names_fails_cleanly(tmp_path: Path) -> None:
    # A child may name a parent table before it exists. The table CREATE TABLE
    # AS makes has no key, so the member's move of its rows cannot cascade:
    # SQLite calls the reference a mismatch, and the job changes nothing.
    member = MemberWriter(tmp_path, foreign_keys=False)
    member.one(Where.STATEMENT, "CREATE TABLE kid(pid REFERENCES later(id) ON DELETE CASCADE)")
    member.one(Where.STATEMENT, "INSERT INTO kid VALUES (1)")
    member.close()
    member = MemberWriter(tmp_path, foreign_keys=True)
    member.lsn = 2
    before = content(member.conn)
    member.open_group()
    with pytest.raises(DatabaseError, match="foreign key mismatch"):
        member.job(Where.STATEMENT, "CREATE TABLE later AS SELECT 1 AS id")
    member.commit_group()
    assert content(member.conn) == before
    member.close()
