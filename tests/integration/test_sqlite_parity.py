"""SQL that sqlite3 accepts, against real member processes: foreign keys, savepoints,
scripts, maintenance. After each test the members hold identical content (``verify``).

The mirror: failover members a (primary) and b (synchronous backup), databases
``app`` with ``[sqlite] foreign_keys = true`` and ``legacy`` overriding it off.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster

SQLITE = {
    "sqlite": {"foreign_keys": True},
    "sqlite.databases.legacy": {"foreign_keys": False},
}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("parity"),
        members=[("a", "failover"), ("b", "failover")],
        databases=["app", "legacy"],
        sections=dict(SQLITE),
    )
    c.start()
    try:
        c["a"].wait_until(lambda st: st.get("backup_active") is True, what="backup active")
        yield c
    finally:
        c.kill_all()


def connect(c: Cluster, db: str = "app", **kw: Any) -> Any:
    return litemirror.connect(c.url(db, members=["a"]), **kw)


def on_backup(c: Cluster, lsn: int, sql: str, db: str = "app") -> list[Any]:
    """Rows of ``sql`` read on the backup once it has applied ``lsn``."""
    conn = litemirror.connect(c.url(db, members=["b"], read_only=True))
    try:
        conn.min_lsn = lsn
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def verified(c: Cluster) -> None:
    r = c.verify()
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- foreign keys


def test_foreign_keys_are_enforced_and_the_pragma_tells_the_truth(mirror: Cluster) -> None:
    conn = connect(mirror, isolation_level=None)
    conn.executescript(
        "CREATE TABLE fp(id INTEGER PRIMARY KEY);"
        "CREATE TABLE fc(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES fp(id));"
        "INSERT INTO fp VALUES (1);"
    )
    with pytest.raises(errors.IntegrityError, match="FOREIGN KEY constraint failed") as orphan:
        conn.execute("INSERT INTO fc VALUES (1, 99)")
    assert isinstance(orphan.value, litemirror.IntegrityError)
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # on a reader
    conn.execute("BEGIN")
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # on the writer
    conn.execute("PRAGMA foreign_keys = ON")  # the value in force: accepted
    conn.execute("COMMIT")
    conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(errors.NotSupportedError, match=r"\[sqlite\] foreign_keys") as off:
        conn.execute("PRAGMA foreign_keys = OFF")
    assert "sqlite.databases.NAME" in off.value.message
    lsn = conn.execute("INSERT INTO fc VALUES (2, 1)") and conn.last_lsn
    assert on_backup(mirror, lsn, "PRAGMA foreign_keys") == [(1,)]
    conn.close()

    legacy = connect(mirror, "legacy", isolation_level=None)
    legacy.execute("CREATE TABLE lp(id INTEGER PRIMARY KEY)")
    legacy.execute("CREATE TABLE lc(pid INTEGER REFERENCES lp(id))")
    legacy.execute("INSERT INTO lc VALUES (99)")  # not enforced here
    assert legacy.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    with pytest.raises(errors.NotSupportedError, match="foreign_keys"):
        legacy.execute("PRAGMA foreign_keys = ON")
    legacy.close()
    verified(mirror)


def test_cascades_and_set_null_replicate(mirror: Cluster) -> None:
    conn = connect(mirror)
    conn.executescript(
        "CREATE TABLE cp(id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE cc(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES cp(id) ON DELETE CASCADE);"
        "CREATE TABLE cg(id INTEGER PRIMARY KEY, cid INTEGER REFERENCES cc(id) ON DELETE CASCADE);"
        "CREATE TABLE cn(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES cp(id) ON DELETE SET NULL);"
        "INSERT INTO cp VALUES (1, 'a'), (2, 'b');"
        "INSERT INTO cc VALUES (10, 1), (11, 2); INSERT INTO cg VALUES (100, 10), (101, 11);"
        "INSERT INTO cn VALUES (20, 1), (21, 2);"
    )
    conn.execute("DELETE FROM cp WHERE id = 1")
    conn.commit()
    lsn = conn.last_lsn
    expected = [(11,)], [(101,)], [(20, None), (21, 2)]
    got = (
        on_backup(mirror, lsn, "SELECT id FROM cc ORDER BY id"),
        on_backup(mirror, lsn, "SELECT id FROM cg ORDER BY id"),
        on_backup(mirror, lsn, "SELECT id, pid FROM cn ORDER BY id"),
    )
    assert got == expected
    conn.close()
    verified(mirror)


def test_one_clients_deferred_violation_fails_that_client_alone(mirror: Cluster) -> None:
    setup = connect(mirror)
    setup.executescript(
        "CREATE TABLE dp(id INTEGER PRIMARY KEY);"
        "CREATE TABLE dd(id INTEGER PRIMARY KEY, "
        "pid INTEGER REFERENCES dp(id) DEFERRABLE INITIALLY DEFERRED);"
        "INSERT INTO dp VALUES (1);"
    )
    setup.close()
    clients, rounds = 8, 15
    barrier = threading.Barrier(clients)
    outcome: dict[int, str] = {}
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = connect(mirror, isolation_level=None)
        try:
            for r in range(rounds):
                row = r * clients + n + 1
                bad = n == 0  # client 0 always points at a missing parent
                barrier.wait(timeout=60)
                try:
                    conn.execute("INSERT INTO dd VALUES (?, ?)", (row, 999 if bad else 1))
                    result = "ok"
                except errors.IntegrityError:
                    result = "refused"
                with lock:
                    outcome[row] = result
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    bad_rows = {r * clients + 1 for r in range(rounds)}
    assert {row for row, res in outcome.items() if res == "refused"} == bad_rows
    assert len(outcome) == clients * rounds
    check = connect(mirror)
    stored = {r[0] for r in check.execute("SELECT id FROM dd")}
    check.close()
    assert stored == set(outcome) - bad_rows
    verified(mirror)


def test_deferred_violation_at_commit_keeps_the_transaction_open(mirror: Cluster) -> None:
    conn = connect(mirror)
    conn.executescript(
        "CREATE TABLE tp(id INTEGER PRIMARY KEY);"
        "CREATE TABLE td(pid INTEGER REFERENCES tp(id) DEFERRABLE INITIALLY DEFERRED);"
    )
    conn.execute("INSERT INTO td VALUES (5)")
    with pytest.raises(errors.IntegrityError, match="FOREIGN KEY"):
        conn.commit()
    assert conn.in_transaction  # as sqlite3: fix it, or roll back
    conn.execute("INSERT INTO tp VALUES (5)")
    conn.commit()
    assert conn.execute("SELECT pid FROM td").fetchall() == [(5,)]
    conn.close()
    verified(mirror)


# ---------------------------------------------------------- savepoints and scripts


def test_savepoints_inside_a_transaction(mirror: Cluster) -> None:
    conn = connect(mirror)
    conn.execute("CREATE TABLE sv(x)")
    conn.execute("INSERT INTO sv VALUES (1)")  # opens the transaction
    conn.execute("SAVEPOINT a")
    conn.execute("INSERT INTO sv VALUES (2)")
    conn.execute("CREATE TABLE sv_gone(y)")
    conn.execute("ROLLBACK TO a")
    conn.execute("INSERT INTO sv VALUES (3)")
    with pytest.raises(errors.OperationalError, match="no such savepoint: lm_txn"):
        conn.execute("RELEASE lm_txn")
    conn.execute("RELEASE SAVEPOINT a")
    conn.commit()
    assert conn.execute("SELECT x FROM sv ORDER BY x").fetchall() == [(1,), (3,)]
    lsn = conn.last_lsn
    assert on_backup(mirror, lsn, "SELECT name FROM sqlite_master WHERE name LIKE 'sv%'") == [
        ("sv",)
    ]
    auto = connect(mirror, isolation_level=None)
    with pytest.raises(errors.NotSupportedError, match="outside a transaction"):
        auto.execute("SAVEPOINT b")
    auto.close()
    conn.close()
    verified(mirror)


SCRIPTS = [
    "BEGIN; INSERT INTO sc VALUES (1); INSERT INTO sc VALUES (2); COMMIT;",
    "INSERT INTO sc VALUES (3); INSERT INTO sc VALUES (3); INSERT INTO sc VALUES (4);",
    "INSERT INTO sc VALUES (5); BEGIN; INSERT INTO sc VALUES (6); INSERT INTO sc VALUES (1);"
    "COMMIT;",
    "SAVEPOINT s; INSERT INTO sc VALUES (7); ROLLBACK TO s; RELEASE s; INSERT INTO sc VALUES (8);",
]


def test_executescript_leaves_what_sqlite3_leaves(mirror: Cluster, tmp_path: Path) -> None:
    plain = sqlite3.connect(tmp_path / "plain.db")
    conn = connect(mirror)
    for c in (plain, conn):
        c.executescript("CREATE TABLE sc(x PRIMARY KEY);")
    for script in SCRIPTS:
        failures = []
        for c, module in ((plain, sqlite3), (conn, litemirror)):
            try:
                c.executescript(script)
                failures.append(None)
            except module.Error as exc:  # type: ignore[attr-defined]
                failures.append(type(exc).__name__)
            if c.in_transaction:
                c.rollback()  # sqlite3 leaves a failed script's transaction open
        assert failures[0] == failures[1], script
        assert (
            conn.execute("SELECT x FROM sc ORDER BY x").fetchall()
            == plain.execute("SELECT x FROM sc ORDER BY x").fetchall()
        ), script
    plain.close()
    conn.close()
    verified(mirror)


# ------------------------------------------------------------------ maintenance


def test_vacuum_runs_on_every_member_in_journal_order(mirror: Cluster) -> None:
    conn = connect(mirror, isolation_level=None)
    conn.executescript(
        "CREATE TABLE vk(v); INSERT INTO vk VALUES ('a'), ('b'), ('c'), ('d'), ('e');"
        "DELETE FROM vk WHERE v IN ('a', 'c');"
    )
    conn.execute("VACUUM")
    lsn = conn.last_lsn
    renumbered = conn.execute("SELECT rowid, v FROM vk ORDER BY rowid").fetchall()
    assert renumbered == [(1, "b"), (2, "d"), (3, "e")]
    assert on_backup(mirror, lsn, "SELECT rowid, v FROM vk ORDER BY rowid") == renumbered
    # Changes after VACUUM are keyed by the new rowids, on both members.
    conn.execute("UPDATE vk SET v = 'D' WHERE v = 'd'")
    conn.execute("DELETE FROM vk WHERE v = 'e'")
    lsn = conn.last_lsn
    assert on_backup(mirror, lsn, "SELECT rowid, v FROM vk ORDER BY rowid") == [
        (1, "b"),
        (2, "D"),
    ]
    conn.execute("BEGIN")
    with pytest.raises(errors.OperationalError, match="inside a transaction"):
        conn.execute("VACUUM")
    conn.execute("ROLLBACK")
    with pytest.raises(errors.NotSupportedError, match="not mirrored"):
        conn.execute("VACUUM INTO '/tmp/litemirror-copy.db'")
    conn.close()
    verified(mirror)


def test_checkpoint_analyze_optimize(mirror: Cluster) -> None:
    conn = connect(mirror, isolation_level=None)
    conn.executescript(
        "CREATE TABLE st(a, b); CREATE INDEX st_a ON st(a);"
        "WITH RECURSIVE r(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM r WHERE v < 2000) "
        "INSERT INTO st SELECT v, v % 5 FROM r;"
    )
    cur = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert [d[0] for d in cur.description] == ["busy", "log", "checkpointed"]
    assert len(cur.fetchall()) == 1
    conn.execute("PRAGMA optimize(0x10002)")
    assert conn.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'st'").fetchone()[0] == 1
    conn.execute("INSERT INTO st SELECT a + 2000, b FROM st")
    conn.execute("ANALYZE st")
    conn.execute("PRAGMA optimize")
    with pytest.raises(errors.NotSupportedError, match="not mirrored"):
        conn.execute("ATTACH DATABASE '/tmp/other.db' AS other")
    conn.close()
    verified(mirror)
