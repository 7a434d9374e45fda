"""Attack: a write user plants code or state on the writer connection all sessions share.

Issue 12, finding 1. Every session of a database runs on one writer
connection. A TEMP trigger on the member's meta table fired during the
LSN bookkeeping of every commit, outside change capture, so its effects
reached the primary only and the members diverged; TEMP tables were shared
between sessions. Here a mirror with ``[auth] require = true`` and a user
with the write role tries every way in; all are refused, TEMP objects made
inside a transaction are gone when it ends (no other session ever sees
them), and ``verify`` still finds the members identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from litemirror import errors
from litemirror.testing.cluster import Cluster
from litemirror.testing.secured import cli, connect, start_with_users


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("temp-objects"),
        members=[("a", "failover"), ("b", "failover")],
        sections={"auth": {"require": True}},
    )
    start_with_users(c, users=("mallory", "alice"))
    try:
        conn = connect(c, "alice", members=["a"])
        conn.execute("CREATE TABLE accounts(name TEXT PRIMARY KEY, balance INTEGER)")
        conn.execute("INSERT INTO accounts VALUES ('alice', 100), ('mallory', 100)")
        conn.commit()
        conn.close()
        yield c
    finally:
        c.kill_all()


def balances(c: Cluster, member: str) -> list[tuple[Any, ...]]:
    primary_lsn = int(c["a"].status()["lsn"])
    conn = connect(c, "root", members=[member], read_only=True)
    try:
        conn.min_lsn = primary_lsn
        return [tuple(r) for r in conn.execute("SELECT * FROM accounts ORDER BY name")]
    finally:
        conn.close()


def verified(c: Cluster) -> None:
    r = cli(c, "verify", user="root")
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr


META_ATTACKS = [
    # The finding: fires at every commit, during the member's own LSN write.
    "CREATE TEMP TRIGGER steal AFTER UPDATE ON main._litemirror_meta BEGIN "
    "UPDATE main.accounts SET balance = balance + 1000 WHERE name = 'mallory'; END",
    # The same trigger spelled as a main-schema statement that makes a TEMP trigger.
    "CREATE TRIGGER temp.steal AFTER UPDATE ON accounts BEGIN "
    "UPDATE accounts SET balance = balance + 1000 WHERE name = 'mallory'; END",
    # A replicated trigger on the meta table fires on the primary only too.
    "CREATE TRIGGER steal AFTER UPDATE ON _litemirror_meta BEGIN "
    "UPDATE accounts SET balance = balance + 1000 WHERE name = 'mallory'; END",
    # A TEMP table that the member's unqualified statements would find first.
    "CREATE TEMP TABLE _litemirror_meta(k TEXT PRIMARY KEY, v)",
    "DROP TABLE _litemirror_meta",
    "UPDATE _litemirror_meta SET v = 0",
]


@pytest.mark.parametrize("attack", META_ATTACKS)
def test_nothing_runs_outside_capture_or_touches_the_meta_table(
    mirror: Cluster, attack: str
) -> None:
    before = balances(mirror, "a")
    conn = connect(mirror, "mallory", members=["a"], isolation_level=None)
    answers: list[str] = []

    def attempt(run: Any) -> None:
        try:
            run()
            answers.append("accepted")
        except errors.DatabaseError as exc:
            answers.append(exc.message)

    attempt(lambda: conn.execute(attack))
    conn.execute("BEGIN")
    attempt(lambda: conn.execute(attack))
    conn.execute("UPDATE accounts SET balance = balance WHERE name = 'alice'")
    conn.execute("COMMIT")
    attempt(lambda: conn.executescript(attack + ";"))
    conn.close()
    # Commits go on: were a trigger planted, they would fire it.
    alice = connect(mirror, "alice", members=["a"])
    for _ in range(3):
        alice.execute("UPDATE accounts SET balance = balance + 1 WHERE name = 'alice'")
        alice.commit()
    alice.close()
    after = balances(mirror, "a")
    assert balances(mirror, "b") == after  # the finding: 1100 here, 100 there
    verified(mirror)
    assert after == [("alice", before[0][1] + 3), ("mallory", before[1][1])]
    assert all("refused by litemirror" in a for a in answers), answers


def test_temp_tables_are_private_to_their_transaction(mirror: Cluster) -> None:
    mallory = connect(mirror, "mallory", members=["a"])
    with pytest.raises(errors.NotSupportedError, match="outside a transaction"):
        mallory.execute("CREATE TEMP TABLE notes(x)")  # would outlive the statement
    mallory.execute("BEGIN")
    mallory.execute("CREATE TEMP TABLE notes(x)")
    mallory.execute("INSERT INTO notes VALUES ('mallory was here')")
    mallory.execute("CREATE TEMP TABLE accounts(name, balance)")  # shadows main.accounts
    mallory.execute("INSERT INTO accounts VALUES ('alice', 0)")
    assert mallory.execute("SELECT count(*) FROM temp.notes").fetchone() == (1,)
    mallory.commit()
    # The transaction is over: nothing of it is left on the shared connection.
    alice = connect(mirror, "alice", members=["a"])
    alice.execute("BEGIN")
    with pytest.raises(errors.OperationalError, match=r"no such table: temp\.notes"):
        alice.execute("SELECT * FROM temp.notes")
    alice.execute("UPDATE accounts SET balance = balance WHERE name = 'alice'")
    assert alice.execute("SELECT balance FROM accounts WHERE name = 'alice'").fetchone()[0] > 0
    assert alice.execute("SELECT count(*) FROM temp.sqlite_master").fetchone() == (0,)
    alice.commit()
    mallory.execute("BEGIN")
    with pytest.raises(errors.OperationalError, match="no such table"):
        mallory.execute("SELECT * FROM temp.notes")
    mallory.rollback()
    alice.close()
    mallory.close()
    assert balances(mirror, "b") == balances(mirror, "a")
    verified(mirror)
