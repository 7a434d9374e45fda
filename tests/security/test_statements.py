"""Attack: statements that never end (issue 12, finding 3; the statement events of finding 11).

On a mirror set up as the docs recommend (TLS and logins required), a user
ran ``WITH RECURSIVE ... SELECT count(*)``: it ran forever, also after the
client went away; eight of them filled ``server.threads`` and held every
commit back while ``/primary`` still answered 200; a long UPDATE held a
database's writer; SIGTERM no longer stopped the member. Here every one of
those is tried against real members:

* a statement stops at its time limit (``[statements]``, per user, or lower
  with ``statement_timeout`` in the URL) and fails alone, with an event that
  names user, database and SQL but no parameter value;
* a client that goes away stops its statement;
* reads cannot take the threads commits need, checksums are bounded;
* ``Connection.interrupt()`` stops this connection's running statement and
  nothing else;
* SIGTERM stops a member within its bound whatever runs.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.testing.cluster import Cluster, wait_for
from litemirror.testing.secured import RawClient, connect, secured_mirror

#: Never ends on its own: the attack's statement, and one that writes.
ENDLESS_READ = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
    "SELECT count(*) FROM r WHERE ? IS NOT NULL"
)
ENDLESS_UPDATE = (
    "UPDATE accounts SET balance = balance + (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL "
    "SELECT i + 1 FROM r) SELECT count(*) FROM r)"
)
SECRET = "s3cret-parameter-value"
LIMIT_S = 2.0
DATABASES = ["app", "d1", "d2", "d3"]


#: writer2 commits while another user's statement runs; the hog runs endless ones.
USERS = ("writer", "reader", "writer2", "hog")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = secured_mirror(
        tmp_path_factory.mktemp("statements"),
        users=USERS,
        arbiter=False,
        mirror={},
        databases=DATABASES,
        http=True,
        sections={
            "statements": {"timeout_s": LIMIT_S, "slow_s": 0.5},
            # The hog has no limit: only its connection going away stops it.
            "statements.user_timeout_s": {"hog": 0.0},
        },
        schema=[
            "CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER)",
            "INSERT INTO accounts VALUES ('alice', 100), ('bob', 100)",
            "CREATE TABLE log (n INTEGER)",
        ],
    )
    try:
        yield c
    finally:
        c.kill_all()


def balances(c: Cluster, member: str) -> list[Any]:
    lsn = int(c["a"].status()["lsn"])
    conn = connect(c, "reader", members=[member], read_only=True)
    conn.min_lsn = lsn
    try:
        return [tuple(r) for r in conn.execute("SELECT * FROM accounts ORDER BY name")]
    finally:
        conn.close()


def test_an_endless_read_stops_at_the_time_limit_and_says_so(mirror: Cluster) -> None:
    conn = connect(mirror, "reader", members=["a"])
    t0 = time.monotonic()
    with pytest.raises(errors.OperationalError) as err:
        conn.execute(ENDLESS_READ, (SECRET,))
    took = time.monotonic() - t0
    assert LIMIT_S <= took < LIMIT_S + 3, took
    assert f"time limit of {LIMIT_S:g} s" in err.value.message
    assert err.value.sqlite_errorname == "SQLITE_INTERRUPT"
    assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (2,)  # still usable
    conn.close()
    said = wait_for(lambda: mirror["a"].events("statement_interrupted"), 5, "the event")
    event = next(e for e in said if e["data"]["user"] == "reader")
    assert event["data"]["database"] == "app"
    assert event["data"]["sql"].startswith("WITH RECURSIVE r(i) AS")
    assert SECRET not in str(event)  # parameters are never shown


def test_a_connection_may_lower_its_limit_never_raise_it(mirror: Cluster) -> None:
    for asked, expected in ((0.3, 0.3), (600, LIMIT_S)):
        conn = connect(mirror, "reader", members=["a"], statement_timeout=asked)
        t0 = time.monotonic()
        with pytest.raises(errors.OperationalError, match=f"time limit of {expected:g} s"):
            conn.execute(ENDLESS_READ, (1,))
        assert expected <= time.monotonic() - t0 < expected + 3
        conn.close()


@pytest.mark.parametrize("isolation_level", [None, ""], ids=["one-shot", "transaction"])
def test_a_long_update_fails_alone_while_other_writers_commit(
    mirror: Cluster, isolation_level: str | None
) -> None:
    """It held the database's writer for good; now its limit ends it, and only it."""
    before = balances(mirror, "a")
    long_writer = connect(mirror, "writer", members=["a"], isolation_level=isolation_level)
    outcome: list[BaseException] = []

    def run_long() -> None:
        try:
            long_writer.execute(ENDLESS_UPDATE)
            long_writer.commit()
        except errors.Error as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run_long)
    thread.start()
    time.sleep(0.2)
    other = connect(mirror, "writer2", members=["a"], isolation_level=None)
    latencies = []
    while thread.is_alive() or len(latencies) < 20:
        t0 = time.monotonic()
        other.execute("INSERT INTO log VALUES (1)")  # one-shot, committed in a group
        latencies.append(time.monotonic() - t0)
    thread.join()
    assert len(outcome) == 1 and "time limit" in str(outcome[0]), outcome
    # The UPDATE's transaction is over, as in SQLite when a write is interrupted.
    assert not long_writer.in_transaction
    # The writer was held for the limit at most (SQLite has one writer), then
    # every other commit went through.
    assert max(latencies) < LIMIT_S + 1.5, latencies
    assert balances(mirror, "a") == before
    assert balances(mirror, "b") == before
    assert long_writer.execute("SELECT count(*) FROM accounts").fetchone() == (2,)
    other.close()
    long_writer.close()


def test_reads_cannot_take_the_threads_commits_need(mirror: Cluster) -> None:
    """Eight endless reads (two per database) fill the reader threads; commits go on."""
    hogs = [connect(mirror, "hog", db, members=["a"]) for db in DATABASES for _ in range(2)]
    failures: list[BaseException] = []

    def hog(conn: Any) -> None:
        try:
            conn.execute(ENDLESS_READ, (1,))
        except BaseException as exc:  # ended by closing its connection
            failures.append(exc)

    threads = [threading.Thread(target=hog, args=(h,), daemon=True) for h in hogs]
    for t in threads:
        t.start()
    time.sleep(1.0)  # all eight running on reader threads
    assert not failures
    writer = connect(mirror, "writer2", members=["a"], isolation_level=None)
    latencies = []
    for _ in range(20):
        t0 = time.monotonic()
        writer.execute("INSERT INTO log VALUES (2)")
        latencies.append(time.monotonic() - t0)
    assert max(latencies) < 1.0, latencies
    http = mirror.http["a"]
    context = ssl.create_default_context(cafile=str(mirror.certs / "ca.crt"))  # type: ignore[operator]
    with urllib.request.urlopen(f"https://{http}/primary", timeout=5, context=context) as r:
        assert r.status == 200
    writer.close()

    # The clients go away: their statements stop, the reader threads are free.
    for h in hogs:
        h.close()  # from this thread: the one waiting on its answer sees the close
    for t in threads:
        t.join(10)
    said = wait_for(
        lambda: [e for e in mirror["a"].events("statement_interrupted")
                 if e["data"]["user"] == "hog"],
        10,
        "statement_interrupted for the hog's reads",
    )  # fmt: skip
    assert "its client went away" in said[0]["message"]
    reader = connect(mirror, "reader", members=["a"])
    t0 = time.monotonic()
    # Too slow for the event loop's budget: it needs a reader thread.
    reader.execute(
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 300000) "
        "SELECT count(*) FROM r"
    )
    assert time.monotonic() - t0 < 1.5
    reader.close()


def test_interrupt_stops_this_connections_statement_and_nothing_else(mirror: Cluster) -> None:
    victim = connect(mirror, "hog", members=["a"])  # no time limit: only interrupt() stops it
    # Another connection of a user without a limit, so that however slow or fast
    # the machine, its long statement ends by itself (and is slow: an event).
    bystander = connect(mirror, "hog", members=["a"])
    outcomes: dict[str, Any] = {}

    def run(name: str, conn: Any, sql: str, params: Any = ()) -> None:
        try:
            outcomes[name] = conn.execute(sql, params).fetchone()
        except errors.Error as exc:
            outcomes[name] = exc

    busy = threading.Thread(target=run, args=("victim", victim, ENDLESS_READ, (1,)))
    # Seconds of work on another connection: it must finish normally.
    other = threading.Thread(
        target=run,
        args=(
            "bystander",
            bystander,
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 12000000) "
            "SELECT count(*) FROM r",
        ),
    )
    busy.start()
    other.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    victim.interrupt()
    busy.join(5)
    assert time.monotonic() - t0 < 2
    other.join(60)
    stopped = outcomes["victim"]
    assert isinstance(stopped, errors.OperationalError) and stopped.message == "interrupted"
    assert stopped.sqlite_errorname == "SQLITE_INTERRUPT"
    assert outcomes["bystander"] == (12000000,)
    # It ran longer than statements.slow_s: an event says so (without parameters).
    slow = wait_for(lambda: mirror["a"].events("slow_statement"), 5, "slow_statement")
    assert slow[0]["data"]["user"] == "hog" and slow[0]["data"]["seconds"] >= 0.5
    # The next statement of the interrupted connection is not affected.
    assert victim.execute("SELECT count(*) FROM accounts").fetchone() == (2,)
    victim.interrupt()  # nothing running: nothing happens
    assert victim.execute("SELECT 1").fetchone() == (1,)
    victim.close()
    bystander.close()


@pytest.mark.parametrize(
    ("statement", "open_after"),
    [
        # As in SQLite: an interrupted read leaves the transaction open, an
        # interrupted write rolls the whole transaction back.
        (ENDLESS_READ.replace("?", "1"), True),
        (ENDLESS_UPDATE, False),
    ],
)
def test_interrupt_in_a_transaction_ends_it_as_sqlite3_does(
    mirror: Cluster, tmp_path: Path, statement: str, open_after: bool
) -> None:
    import sqlite3

    local = sqlite3.connect(tmp_path / "local.db", check_same_thread=False)
    local.executescript(
        "CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER);"
        "INSERT INTO accounts VALUES ('alice', 100), ('bob', 100);"
    )
    remote = connect(mirror, "hog", members=["a"])
    seen = []
    for conn in (local, remote):
        conn.execute("INSERT INTO accounts VALUES ('carol', 1)")  # opens the transaction
        errors_seen: list[BaseException] = []

        def run(conn: Any = conn, errors_seen: list[BaseException] = errors_seen) -> None:
            try:
                conn.execute(statement)
            except sqlite3.OperationalError as exc:
                errors_seen.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        conn.interrupt()
        thread.join(5)
        assert [str(e) for e in errors_seen] == ["interrupted"]
        seen.append(conn.in_transaction)
        conn.rollback()
    assert seen == [open_after, open_after]
    assert remote.execute("SELECT count(*) FROM accounts").fetchone() == (2,)
    remote.close()
    local.close()


def test_many_semicolons_in_one_literal_are_split_in_linear_time(mirror: Cluster) -> None:
    conn = connect(mirror, "writer", members=["a"], isolation_level=None)
    text = ";" * 400_000  # took minutes when every ';' re-checked the text before it
    t0 = time.monotonic()
    conn.execute("INSERT INTO log (n) VALUES (length(?) + length('" + text + "'))", ("x",))
    assert time.monotonic() - t0 < 10
    conn.execute("DELETE FROM log WHERE n > 400000")
    conn.close()


def test_a_disconnected_write_is_stopped_and_its_group_still_commits(mirror: Cluster) -> None:
    raw = RawClient.logged_in(mirror, "hog")  # no limit: only the disconnect stops it
    raw.send(m.Execute(id=1, sql=ENDLESS_UPDATE))
    time.sleep(0.5)
    writer = connect(mirror, "writer2", members=["a"], isolation_level=None)
    raw.close()  # gone without a word
    t0 = time.monotonic()
    # The hog has no time limit: had its UPDATE gone on holding the writer,
    # this would wait for ever.
    writer.execute("INSERT INTO log VALUES (3)")
    assert time.monotonic() - t0 < 3
    assert balances(mirror, "a") == balances(mirror, "b")
    writer.close()


# ------------------------------------------------- a member of an older release


def _older_member(ready: threading.Event, port: list[int]) -> None:
    """Answers one Hello as a member before interrupt() would (no Welcome.features)."""
    server = socket.create_server(("127.0.0.1", 0))
    port.append(server.getsockname()[1])
    ready.set()
    conn, _ = server.accept()
    decoder: FrameDecoder[Any] = FrameDecoder(m.ClientMessage)
    while (hello := decoder.next_message()) is None:
        decoder.feed(conn.recv(65536))
    assert isinstance(hello, m.Hello)
    conn.sendall(
        encode(m.Welcome(version=1, mirror="old", member="a", role="primary", epoch=1, lsn=0))
    )
    conn.recv(1)  # until the driver closes
    conn.close()
    server.close()


def test_interrupt_on_an_older_member_says_it_is_not_supported() -> None:
    ready, port = threading.Event(), []
    thread = threading.Thread(target=_older_member, args=(ready, port), daemon=True)
    thread.start()
    ready.wait(5)
    conn = litemirror.connect(f"litemirror://127.0.0.1:{port[0]}/app")
    with pytest.raises(errors.NotSupportedError, match="older litemirror release"):
        conn.interrupt()
    conn.close()
    thread.join(5)


# ---------------------------------------------- checksums, and stopping a member


@pytest.mark.slow
def test_checksums_are_bounded_and_sigterm_stops_a_busy_member(tmp_path: Path) -> None:
    c = secured_mirror(
        tmp_path,
        users=USERS,
        members=[("a", "failover")],
        arbiter=False,
        mirror={},
        sections={
            # Filling the table below may take long on a busy machine.
            "statements.user_timeout_s": {"hog": 0.0, "writer": 0.0},
            "server": {"shutdown_timeout_s": 10.0},
        },
    )
    try:
        w = connect(c, "writer", isolation_level=None, timeout=300)
        w.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
        w.execute(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 400000) "
            "INSERT INTO big (v) SELECT printf('%0200d', i) FROM r"
        )
        w.close()

        # Fifteen checksums at once from logged-in control connections: two run,
        # eight wait, the rest are told the member is busy.
        clients = [RawClient.logged_in(c, "reader", db="") for _ in range(15)]
        for client in clients:
            client.send(m.AdminRequest(id=1, action="checksum", args={"name": "app"}))
        answers = [client.recv() for client in clients]
        busy = [a for a in answers if isinstance(a, m.Error)]
        done = [a for a in answers if isinstance(a, m.Ok)]
        assert len(done) == 10 and len(busy) == 5, answers
        assert all("busy computing checksums" in a.message and a.retryable for a in busy)
        for client in clients:
            client.close()

        # SIGTERM with endless reads, an endless write and an idle transaction open.
        hogs = [connect(c, "hog") for _ in range(4)]
        for h in hogs[:3]:
            threading.Thread(target=_swallow, args=(h, ENDLESS_READ, (1,)), daemon=True).start()
        threading.Thread(
            target=_swallow,
            args=(hogs[3], "UPDATE big SET v = (" + ENDLESS_READ.replace("?", "1") + ")", ()),
            daemon=True,
        ).start()
        idle = connect(c, "writer")
        idle.execute("INSERT INTO big (v) VALUES ('in an open transaction')")
        time.sleep(1.0)
        t0 = time.monotonic()
        code = c["a"].stop(timeout=30)
        took = time.monotonic() - t0
        assert code == 0, c["a"].log_tail()  # a clean exit, not the watchdog's nor a kill
        assert took < 10, took
    finally:
        c.kill_all()


def _swallow(conn: Any, sql: str, params: Any) -> None:
    try:
        conn.execute(sql, params)
    except errors.Error:
        pass
