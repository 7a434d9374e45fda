"""``litemirror diverged list|show|apply`` on a file a real rejoin wrote.

The divergence is made as in test_failover's rejoin test: the backup is
paused, the primary journals a commit far larger than the socket buffers
(so the backup holds only part of it), and is killed before the QoS
timeout; the backup takes over without it, and the old primary, restarted,
rolls it back and keeps it. Here the kept file holds two records: one in
``app`` (updates, a delete, inserts, a table without a primary key, the
40 MB blob) and one in ``app2``, journalled behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest

import litemirror
from litemirror import errors
from litemirror.engine.ops import ChangesetOp, encode_ops
from litemirror.journal import Record, RecordKind
from litemirror.server.stream.rejoin import keep
from litemirror.testing.cluster import Cluster
from litemirror.testing.workload import other, settle_backup

FAST = {"qos_timeout_ms": 3000, "heartbeat_ms": 200}


def cli(c: Cluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LITEMIRROR_")}
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "diverged", *args],
        capture_output=True,
        text=True,
        input="",
        env={**environ, **env},
        timeout=180,
    )


def rows(c: Cluster, db: str, sql: str, member: str | None = None) -> list[tuple[Any, ...]]:
    url = c.url(db, members=[member], read_only=True) if member else c.url(db)
    conn = litemirror.connect(url)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def write(c: Cluster, db: str, *statements: str) -> None:
    conn = litemirror.connect(c.url(db), isolation_level=None)
    try:
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def wait_lsn_above(c: Cluster, member: str, lsn: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = int(c[member].status()["lsn"])
        if now > lsn:
            return now
        time.sleep(0.05)
    raise AssertionError(f"member {member} journalled nothing after LSN {lsn}")


APP = "SELECT id, v FROM t ORDER BY id"


def diverge(c: Cluster) -> tuple[str, str, tuple[int, int]]:
    """Make the old primary keep two records; (old, new, their LSNs)."""
    old = c.primary().name
    new = other(old)
    conn = litemirror.connect(c.url("app", members=[old]), isolation_level=None)
    conn2 = litemirror.connect(c.url("app2", members=[old]), isolation_level=None)
    start = int(c[old].status()["lsn"])
    c[new].pause()
    outcomes: list[str] = []

    def run(connection: Any, *statements: str) -> None:
        try:
            for sql in statements:
                connection.execute(sql)
            outcomes.append("acked")
        except errors.Error as exc:
            outcomes.append(type(exc).__name__)

    big = threading.Thread(
        target=run,
        args=(
            conn,
            "BEGIN",
            "UPDATE t SET v = 'changed' WHERE id = 1",
            "UPDATE t SET v = 'changed5' WHERE id = 5",
            "DELETE FROM t WHERE id = 2",
            "INSERT INTO t VALUES (777, 'hello')",
            "INSERT INTO t VALUES (778, 'mine')",
            "INSERT INTO n VALUES ('kept', 42)",
            "INSERT INTO big VALUES (1, randomblob(40000000))",
            "COMMIT",
        ),
        daemon=True,
    )
    big.start()
    first = wait_lsn_above(c, old, start)
    small = threading.Thread(
        target=run, args=(conn2, "INSERT INTO u VALUES (50, 'fifty')"), daemon=True
    )
    small.start()
    second = wait_lsn_above(c, old, first)
    c[old].kill()  # before the QoS timeout: the arbiter still records the backup active
    c[new].resume()
    c[new].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 20, "takeover")
    big.join(10)
    small.join(10)
    assert len(outcomes) == 2 and "acked" not in outcomes, outcomes
    c[old].start()
    c[new].wait_until(lambda s: s.get("backup_active") is True, 30, "old primary rejoined")
    return old, new, (first, second)


@dataclass
class Diverged:
    c: Cluster
    old: str
    lsns: tuple[int, int]

    @property
    def file(self) -> Path:
        [kept] = (self.c[self.old].data_dir / "diverged").glob("diverged-*.jsonl")
        return kept


@pytest.fixture(scope="module")
def diverged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Diverged]:
    c = Cluster(
        tmp_path_factory.mktemp("diverged"),
        members=[("a", "failover"), ("b", "failover")],
        databases=["app", "app2"],
        arbiter=True,
        mirror=FAST,
    )
    try:
        c.start()
        settle_backup(c)
        write(
            c,
            "app",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
            "CREATE TABLE n (a, b)",
            "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)",
            *(f"INSERT INTO t VALUES ({i}, 'v{i}')" for i in range(1, 11)),
        )
        write(c, "app2", "CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT)")
        old, _, lsns = diverge(c)
        yield Diverged(c, old, lsns)
    finally:
        c.kill_all()


def test_list_shows_time_lsns_databases_tables_and_rows(diverged: Diverged) -> None:
    c, old, (lsn1, lsn2) = diverged.c, diverged.old, diverged.lsns
    r = cli(c, "list", "--config", str(c.config_path), "--member", old, "--json")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(r.stdout)
    assert (entry["first_lsn"], entry["last_lsn"], entry["records"]) == (lsn1, lsn2, 2)
    assert entry["databases"] == ["app", "app2"] and entry["rolled_back_at"].endswith("UTC")
    assert entry["tables"]["app"]["t"] == {"update": 2, "delete": 1, "insert": 2}
    assert entry["tables"]["app2"]["u"] == {"insert": 1}
    assert entry["file"] == diverged.file.name
    r = cli(c, "list", "--data-dir", str(c[old].data_dir))
    assert r.returncode == 0, r.stderr
    for expected in (
        diverged.file.name,
        f"2 record(s), LSN {lsn1}-{lsn2}",
        "app.t: 1 delete, 2 insert, 2 update",
        "app2.u: 1 insert",
    ):
        assert expected in r.stdout, f"{expected!r} not in:\n{r.stdout}"


def test_show_gives_rows_per_table_with_old_and_new_values(diverged: Diverged) -> None:
    c, old, (lsn1, lsn2) = diverged.c, diverged.old, diverged.lsns
    r = cli(c, "show", diverged.file.name, "--config", str(c.config_path), "--member", old)
    assert r.returncode == 0, r.stderr
    for expected in (
        f"LSN {lsn1}",
        "table t (columns from this member's copy)",
        "UPDATE id=1: v 'v1' -> 'changed'",
        "DELETE id=2: v='v2'",
        "INSERT id=777: v='hello'",
        "INSERT rowid=1: a='kept', b=42",
        "(40000000 bytes)",
        f"LSN {lsn2}",
        "INSERT id=50: v='fifty'",
    ):
        assert expected in r.stdout, f"{expected!r} not in:\n{r.stdout}"


def test_show_names_columns_from_the_primary_or_numbers_them(
    diverged: Diverged, tmp_path: Path
) -> None:
    """A kept file copied elsewhere: no member's copy beside it."""
    c = diverged.c
    copy = tmp_path / diverged.file.name
    copy.write_bytes(diverged.file.read_bytes())
    r = cli(c, "show", str(copy), "--config", str(c.config_path))
    assert r.returncode == 0, r.stderr
    assert "table t (columns from the primary)" in r.stdout
    assert "UPDATE id=1: v 'v1' -> 'changed'" in r.stdout
    r = cli(c, "show", str(copy))
    assert r.returncode == 0, r.stderr
    assert "columns numbered" in r.stdout and "UPDATE #0=1: #1 'v1' -> 'changed'" in r.stdout
    r = cli(c, "show", "no-such-file.jsonl", "--data-dir", str(c[diverged.old].data_dir))
    assert r.returncode == 2 and "not found" in r.stderr


def test_apply_stops_skips_and_applies_on_the_current_primary(diverged: Diverged) -> None:
    c, old, (lsn1, _) = diverged.c, diverged.old, diverged.lsns
    config = ["--config", str(c.config_path)]
    before = rows(c, "app", APP)
    assert (777, "hello") not in before and (2, "v2") in before
    # The new primary went on: two of the rows the record touches changed since.
    write(c, "app", "INSERT INTO t VALUES (778, 'theirs')", "UPDATE t SET v = 'x' WHERE id = 5")
    before = rows(c, "app", APP)
    path = str(diverged.file)

    r = cli(c, "apply", path, *config, "--dry-run")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CONFLICT" in r.stdout and "v='theirs'" in r.stdout and "v='x'" in r.stdout
    assert 'INSERT INTO "t" ("id", "v") SELECT 777, \'hello\'' in r.stdout
    assert rows(c, "app", APP) == before and rows(c, "app2", "SELECT * FROM u") == []

    r = cli(c, "apply", path, *config)  # no terminal to ask on, and no --yes
    assert r.returncode == 2 and "--yes" in r.stderr, r.stdout + r.stderr

    r = cli(c, "apply", path, *config, "--yes")  # the default policy: stop
    assert r.returncode == 1 and "nothing was applied" in r.stdout, r.stdout + r.stderr
    assert rows(c, "app", APP) == before and rows(c, "app2", "SELECT * FROM u") == []

    r = cli(c, "apply", path, *config, "--yes", "--on-conflict", "skip")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "database app: nothing applied" in r.stdout, r.stdout
    assert "database app2: applied record(s)" in r.stdout and f"LSN {lsn1} (app)" in r.stdout
    assert rows(c, "app", APP) == before
    assert rows(c, "app2", "SELECT * FROM u") == [(50, "fifty")]

    # The operator settles the two rows, then applies the record that was left out.
    write(c, "app", "DELETE FROM t WHERE id = 778", "UPDATE t SET v = 'v5' WHERE id = 5")
    r = cli(c, "apply", diverged.file.name, *config, "--member", old, "--yes", "--lsn", str(lsn1))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "everything in the file was applied" in r.stdout
    got = rows(c, "app", APP)
    assert (1, "changed") in got and (5, "changed5") in got and (777, "hello") in got
    assert (778, "mine") in got and not any(i == 2 for i, _ in got)
    assert rows(c, "app", "SELECT a, b FROM n") == [("kept", 42)]
    assert rows(c, "app", "SELECT id, length(b) FROM big") == [(1, 40000000)]
    # Re-executed through the primary's journal: the other member has them too.
    verify = c.verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
    lsn = int(c.primary().status()["lsn"])
    c[old].wait_applied(lsn)
    assert rows(c, "app", APP, member=old) == got


def _kept(tmp_path: Path, db: str, schema: str, sql: str, lsn: int = 900) -> Path:
    """A kept file written by the member's own code from a change captured on ``schema``."""
    src = apsw.Connection(":memory:")
    src.execute(schema)
    session = apsw.Session(src, "main")
    session.config(apsw.SQLITE_SESSION_OBJCONFIG_ROWID, 1)
    session.attach()
    src.execute(sql)
    payload = encode_ops([ChangesetOp(session.changeset())])
    rec = Record(lsn, 1, RecordKind.CHANGES, db, int(time.time() * 1000), payload)
    path, _ = keep([rec], tmp_path / "diverged", lsn - 1)
    return path


def test_apply_fires_the_primarys_triggers_and_finds_their_rows_in_place(
    diverged: Diverged, tmp_path: Path
) -> None:
    c = diverged.c
    trigger = "CREATE TRIGGER ulog AFTER INSERT ON u BEGIN INSERT INTO ulog VALUES (new.id); END"
    write(c, "app2", "CREATE TABLE ulog (id)", trigger)
    path = _kept(
        tmp_path,
        "app2",
        f"CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE ulog (id); {trigger}",
        "INSERT INTO u VALUES (60, 'sixty')",
    )
    config = ["--config", str(c.config_path)]
    r = cli(c, "show", str(path), *config)
    assert "INSERT rowid=1: id=60  (made by a trigger or foreign-key action)" in r.stdout, r.stdout
    r = cli(c, "apply", str(path), *config, "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: table app2.u has trigger ulog on the primary" in r.stdout, r.stdout
    r = cli(c, "apply", str(path), *config, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 change(s) re-executed, 1 already in place" in r.stdout, r.stdout
    assert rows(c, "app2", "SELECT id FROM ulog") == [(60,)]


def test_apply_leaves_out_what_it_cannot_re_execute(diverged: Diverged, tmp_path: Path) -> None:
    c = diverged.c
    config = ["--config", str(c.config_path), "--yes", "--on-conflict", "skip"]
    gone = _kept(tmp_path / "gone", "gone", "CREATE TABLE g (id)", "INSERT INTO g VALUES (1)")
    r = cli(c, "apply", str(gone), *config)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "database gone does not exist on the primary" in r.stdout
    assert "litemirror db add gone" in r.stdout
    users = _kept(
        tmp_path / "users",
        "_system",
        "CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT)",
        "INSERT INTO users VALUES ('eve', 'admin')",
    )
    r = cli(c, "apply", str(users), *config)
    assert r.returncode == 1 and "redo them with `litemirror user`" in r.stdout, r.stdout
    r = cli(c, "apply", str(users), "--config", str(c.config_path), "--yes", "--lsn", "5")
    assert r.returncode == 2 and "--lsn 5: no such record" in r.stderr


def test_apply_logs_in_over_tls_like_every_command(cluster_factory: Any, tmp_path: Path) -> None:
    c: Cluster = cluster_factory(tls_require=True, sections={"auth": {"require": True}})
    c.start()
    add = subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "user", "add", "root", "--role", "admin",
         "--password-stdin", "--config", str(c.config_path)],
        capture_output=True, text=True, input="root-secret-1", timeout=60,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    root = {"LITEMIRROR_USER": "root", "LITEMIRROR_PASSWORD": "root-secret-1"}
    conn = litemirror.connect(
        c.url("app").replace("litemirror://", "litemirror://root:root-secret-1@"),
        isolation_level=None,
    )
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.close()
    path = _kept(
        tmp_path,
        "app",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO t VALUES (1, 'a')",
    )
    r = cli(c, "apply", str(path), "--config", str(c.config_path), "--yes")
    assert r.returncode != 0 and "AuthenticationError" in r.stderr, r.stdout + r.stderr
    r = cli(c, "apply", str(path), "--config", str(c.config_path), "--yes", **root)
    assert r.returncode == 0, r.stdout + r.stderr
    conn = litemirror.connect(
        c.url("app").replace("litemirror://", "litemirror://root:root-secret-1@")
    )
    assert conn.execute("SELECT id, v FROM t").fetchall() == [(1, "a")]
    conn.close()
