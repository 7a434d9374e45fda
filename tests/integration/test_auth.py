"""Users and roles against real member processes: logins, refusals, roles, failover, HTTP.

Every mirror here runs with ``[auth] require = true``. The first admin is
added the way an operator does it: ``litemirror user add`` without a login
from the member's own host, while no admin exists (the bootstrap rule).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.security.certs import Role, issue
from litemirror.testing.cluster import Cluster
from litemirror.testing.secured import PASSWORDS, add_user, cli, start_with_users

AUTH = {"auth": {"require": True}}
FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
#: Words that would tell a caller (or a log reader) whether a user exists.
TELLTALES = ("unknown", "no such", "not exist", "does not", "no user", "not found")


def url(
    c: Cluster, user: str | None, password: str | None = None, db: str = "app", **q: Any
) -> str:
    base = c.url(db, **q)
    if user is None:
        return base
    secret = PASSWORDS.get(user, "") if password is None else password
    return base.replace("litemirror://", f"litemirror://{user}:{secret}@", 1)


def checked(open_it: Any) -> Any:
    """``open_it()``, retried while the login back-off refuses it unchecked (this module's
    failed logins all come from 127.0.0.1), as the refusal says, until it is checked."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return open_it()
        except errors.AuthenticationError as exc:
            if "not checked" not in exc.message or time.monotonic() > deadline:
                raise
            assert "retry in" in exc.message, exc.message
            time.sleep(0.5)


def connect(c: Cluster, user: str | None, password: str | None = None, **q: Any) -> Any:
    return checked(lambda: litemirror.connect(url(c, user, password, **q), isolation_level=None))


def count_rows(c: Cluster, table: str = "t") -> int:
    conn = connect(c, "root")
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def schema(c: Cluster) -> list[str]:
    conn = connect(c, "root")
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
    finally:
        conn.close()


def http(
    address: str, path: str, method: str = "GET", auth: tuple[str, str] | None = None
) -> tuple[int, dict[str, Any], list[str]]:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = b"{}" if method == "POST" else None
    deadline = time.monotonic() + 60
    while True:
        req = urllib.request.Request(f"http://{address}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return (
                    resp.status,
                    json.loads(resp.read()),
                    resp.headers.get_all("WWW-Authenticate") or [],
                )
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            # Refused unchecked by the login back-off: retry, as the refusal says.
            if "not checked" in body.get("message", "") and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            return exc.code, body, exc.headers.get_all("WWW-Authenticate") or []


def roles(c: Cluster) -> tuple[str, str]:
    """(primary, backup) once the mirror has both."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = {}
        for name, mp in c.members.items():
            try:
                found[mp.status().get("role")] = name
            except errors.Error:
                pass
        if "primary" in found and "backup" in found:
            return found["primary"], found["backup"]
        time.sleep(0.1)
    raise AssertionError(f"no primary and backup:\n{c.logs()}")


def refusal(exc: pytest.ExceptionInfo[errors.Error]) -> str:
    """The member's message inside the driver's "member X refused the connection: ..."."""
    return exc.value.message.split("refused the connection: ", 1)[-1].split(" (all members", 1)[0]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Failover members a and b with an arbiter; users root (admin), writer, reader."""
    c = Cluster(
        tmp_path_factory.mktemp("auth"),
        members=[("a", "failover"), ("b", "failover")],
        arbiter=True,
        mirror=FAST,
        sections=AUTH,
        http=True,
    )
    start_with_users(
        c,
        schema=[
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
            "INSERT INTO t (v) VALUES ('first')",
        ],
    )
    try:
        yield c
    finally:
        c.kill_all()


# ------------------------------------------------------------------ logins


def test_bootstrap_ends_once_an_admin_exists(mirror: Cluster) -> None:
    r = cli(
        mirror,
        "user",
        "add",
        "intruder",
        "--role",
        "admin",
        "--password-stdin",
        stdin="pw-intruder",
    )
    assert r.returncode == 1 and "AuthenticationError" in r.stderr, r.stderr
    assert "log in" in r.stderr
    expected = {"reader": "read", "root": "admin", "writer": "write"}
    r = cli(mirror, "user", "list", "--json", user="root")
    assert r.returncode == 0, r.stderr
    assert {u["name"]: u["role"] for u in json.loads(r.stdout)} == expected
    primary, backup = roles(mirror)  # the backup holds the same users (mirrored)
    mirror[backup].wait_applied(int(mirror[primary].status()["lsn"]))
    r = cli(mirror, "user", "list", "--json", "--member", backup, user="root")
    assert r.returncode == 0, r.stderr
    assert {u["name"]: u["role"] for u in json.loads(r.stdout)} == expected


def test_no_credentials_and_wrong_passwords_are_refused_alike(mirror: Cluster) -> None:
    with pytest.raises(errors.AuthenticationError) as nothing:
        connect(mirror, None)
    assert "authentication required" in nothing.value.message
    assert "user:password@" in nothing.value.message  # says what to do

    with pytest.raises(errors.AuthenticationError) as wrong:
        connect(mirror, "reader", "not-the-password")
    with pytest.raises(errors.AuthenticationError) as unknown:
        connect(mirror, "nobody", "not-the-password")
    with pytest.raises(errors.AuthenticationError) as empty:
        connect(mirror, "reader", "")
    assert refusal(wrong) == refusal(unknown) == refusal(empty)
    assert refusal(wrong).startswith("authentication failed")
    assert not any(word in refusal(wrong).lower() for word in TELLTALES)
    assert not wrong.value.retryable

    # Status stays open (like GET /status); admin actions do not.
    assert cli(mirror, "status", "--json").returncode == 0
    r = cli(mirror, "journal", "switch", "--member", "a")
    assert r.returncode == 1 and "AuthenticationError" in r.stderr
    r = cli(mirror, "journal", "switch", "--member", "a", user="nobody")
    assert r.returncode == 1 and "authentication failed" in r.stderr


def test_a_certificate_only_user_cannot_log_in_with_a_password(mirror: Cluster) -> None:
    r = cli(mirror, "user", "add", "badge", "--role", "write", "--no-password", user="root")
    assert r.returncode == 0, r.stderr
    with pytest.raises(errors.AuthenticationError) as exc:
        connect(mirror, "badge", "any-password-at-all")
    assert refusal(exc).startswith("authentication failed")


# ------------------------------------------------------------------- roles


def test_read_user_queries_and_changes_nothing(mirror: Cluster) -> None:
    rows, tables = count_rows(mirror), schema(mirror)
    conn = connect(mirror, "reader")
    try:
        assert conn.execute("SELECT v FROM t ORDER BY id").fetchall()[0] == ("first",)
        assert conn.execute("PRAGMA table_info(t)").fetchall()
        for sql in (
            "INSERT INTO t (v) VALUES ('no')",
            "UPDATE t SET v = 'changed'",
            "DELETE FROM t",
            "CREATE TABLE u (x)",
            "DROP TABLE t",
            "REINDEX",
            "PRAGMA user_version = 7",
        ):
            with pytest.raises(errors.PermissionDeniedError) as exc:
                conn.execute(sql)
            assert "read role" in exc.value.message and "nothing was changed" in exc.value.message
        with pytest.raises(errors.PermissionDeniedError):
            conn.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",)])
        with pytest.raises(errors.PermissionDeniedError):
            conn.executescript("INSERT INTO t (v) VALUES ('s'); DELETE FROM t;")
        with pytest.raises(errors.NotSupportedError):
            path = mirror["a"].data_dir.resolve() / "databases" / "_system.db"
            conn.execute(f"ATTACH DATABASE '{path}' AS s")
    finally:
        conn.close()
    # The driver's own transaction (sqlite3 legacy mode) is refused too.
    txn = checked(lambda: litemirror.connect(url(mirror, "reader")))
    try:
        with pytest.raises(errors.PermissionDeniedError):
            txn.execute("INSERT INTO t (v) VALUES ('in a transaction')")
        with pytest.raises(errors.PermissionDeniedError):
            txn.execute("BEGIN")
    finally:
        txn.close()
    with pytest.raises(errors.PermissionDeniedError):
        connect(mirror, "reader", db="_system")
    for args in (
        ("switchover", "--to", "b"),
        ("db", "add", "extra", "--no-wait"),
        ("user", "remove", "writer"),
        ("user", "list"),
    ):
        r = cli(mirror, *args, user="reader")
        assert r.returncode == 1 and "PermissionDeniedError" in r.stderr, (args, r.stderr)
        assert "admin role" in r.stderr
    assert count_rows(mirror) == rows and schema(mirror) == tables
    r = cli(mirror, "status", "--json")
    assert {m["role"] for m in json.loads(r.stdout)["members"]} == {"primary", "backup"}


def test_read_user_reads_on_the_backup(mirror: Cluster) -> None:
    _, backup = roles(mirror)
    conn = connect(mirror, "reader", read_only=True, target="any", members=[backup])
    try:
        assert conn.member == backup
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] >= 1
    finally:
        conn.close()


def test_write_user_writes_but_does_not_administer(mirror: Cluster) -> None:
    before = count_rows(mirror)
    conn = checked(lambda: litemirror.connect(url(mirror, "writer")))
    try:
        conn.execute("INSERT INTO t (v) VALUES ('by writer')")
        conn.commit()
        conn.executescript("CREATE TABLE IF NOT EXISTS w (x); INSERT INTO w VALUES (1);")
    finally:
        conn.close()
    assert count_rows(mirror) == before + 1
    with pytest.raises(errors.PermissionDeniedError):
        connect(mirror, "writer", db="_system")
    for args in (("switchover", "--to", "b"), ("user", "add", "x", "--role", "read")):
        r = cli(mirror, *args, user="writer", LITEMIRROR_NEW_PASSWORD="some-password")
        assert r.returncode == 1 and "PermissionDeniedError" in r.stderr, (args, r.stderr)
    r = cli(mirror, "verify", user="writer")  # reads every database it may see
    assert r.returncode == 0, r.stdout + r.stderr
    assert "_system" not in r.stdout


def test_admin_administers_and_reads_users_read_only(mirror: Cluster) -> None:
    r = cli(mirror, "journal", "switch", "--member", "a", user="root")
    assert r.returncode == 0, r.stderr
    r = cli(mirror, "db", "add", "tenant2", "--no-wait", user="root")
    assert r.returncode == 0, r.stderr
    r = cli(mirror, "db", "add", "_system", "--no-wait", user="root")
    assert r.returncode == 1 and "reserved" in r.stderr
    r = cli(mirror, "verify", user="root")  # the users database is compared too
    assert r.returncode == 0 and "_system" in r.stdout, r.stdout + r.stderr

    conn = connect(mirror, "root", db="_system")
    try:
        users = dict(conn.execute("SELECT name, role FROM users").fetchall())
        assert users["root"] == "admin" and users["reader"] == "read"
        hashes = [h for (h,) in conn.execute("SELECT password_hash FROM users") if h]
        assert all(h.startswith("scrypt$ln=") and "secret" not in h for h in hashes)
        with pytest.raises(errors.PermissionDeniedError):
            conn.execute("UPDATE users SET role = 'admin'")
    finally:
        conn.close()


def test_password_change_and_removal_take_effect_at_once(mirror: Cluster) -> None:
    add_user(mirror, "temp")
    connect(mirror, "temp").close()
    r = cli(
        mirror, "user", "passwd", "temp", user="root", LITEMIRROR_NEW_PASSWORD="temp-password-2"
    )
    assert r.returncode == 0, r.stderr
    with pytest.raises(errors.AuthenticationError):
        connect(mirror, "temp", "temp-password-1")
    connect(mirror, "temp", "temp-password-2").close()
    r = cli(mirror, "user", "remove", "temp", user="root")
    assert r.returncode == 0, r.stderr
    with pytest.raises(errors.AuthenticationError):
        connect(mirror, "temp", "temp-password-2")
    r = cli(mirror, "user", "remove", "root", user="root")
    assert r.returncode == 1 and "last admin" in r.stderr
    r = cli(
        mirror, "user", "add", "short", "--role", "read", user="root", LITEMIRROR_NEW_PASSWORD="abc"
    )
    assert r.returncode == 1 and "shorter than 8" in r.stderr


# -------------------------------------------------------------------- HTTP


def test_http_admin_posts_need_an_admin_user(mirror: Cluster) -> None:
    primary = mirror.primary().name
    address = mirror.http[primary]
    code, body, challenge = http(address, "/admin/journal_switch", "POST")
    assert code == 401 and body["error"] == "AuthenticationError"
    assert any(c.startswith("Basic") for c in challenge)
    code, body, challenge = http(address, "/admin/journal_switch", "POST", ("root", "wrong"))
    assert code == 401 and body["message"].startswith("authentication failed") and challenge
    code, body, _ = http(address, "/admin/journal_switch", "POST", ("nobody", "wrong"))
    assert code == 401 and body["message"].startswith("authentication failed")
    code, body, _ = http(address, "/admin/journal_switch", "POST", ("reader", PASSWORDS["reader"]))
    assert code == 403 and body["error"] == "PermissionDeniedError"
    code, body, _ = http(address, "/admin/journal_switch", "POST", ("root", PASSWORDS["root"]))
    assert code == 200 and "segment" in body
    code, body, _ = http(address, "/health")
    assert code == 200 and body["role"] == "primary"
    code, body, _ = http(address, "/events?limit=1000", auth=("root", PASSWORDS["root"]))
    said = [e["message"] for e in body["events"] if e["kind"] == "admin"]
    assert any("by user 'root' (admin)" in s for s in said)


def test_refusals_are_logged_with_the_peer_and_say_nothing_of_existence(
    mirror: Cluster,
) -> None:
    primary = mirror.primary().name
    for user in ("ghost", "reader"):
        with pytest.raises(errors.AuthenticationError):
            connect(mirror, user, "not-the-password", members=[primary])
    conn = connect(mirror, "reader", members=[primary])
    with pytest.raises(errors.PermissionDeniedError):
        conn.execute("DELETE FROM t")
    conn.close()
    refused = mirror[primary].events("auth_refused")
    assert {e["data"]["refused"] for e in refused} >= {"authentication", "permission"}
    for ev in refused:
        host, _, port = ev["data"]["peer"].rpartition(":")
        assert host == "127.0.0.1" and port.isdigit() and ev["data"]["peer"] in ev["message"]
        assert ev["severity"] == "warning"
    code, body, _ = http(mirror.http[primary], "/events?limit=1000", auth=("root", "root-secret-1"))
    assert code == 200 and any(e["kind"] == "auth_refused" for e in body["events"])
    # Every refused attempt is in the log (events are limited to one a minute per host);
    # a name that is no user's is not written down (it may be a mistyped password).
    log = mirror[primary].log_path.read_text()
    tried = [ln for ln in log.splitlines() if "authentication failed for" in ln]
    assert any("'reader' from 127.0.0.1:" in ln for ln in tried)
    assert any("a name that is not a user" in ln and "127.0.0.1:" in ln for ln in tried)
    assert "ghost" not in log


def test_a_host_that_keeps_failing_is_slowed_down_until_it_succeeds(mirror: Cluster) -> None:
    primary = mirror.primary().name
    # A success forgives the reader's own failures from this host (not the others').
    connect(mirror, "reader", members=[primary]).close()
    for _ in range(6):
        with pytest.raises(errors.AuthenticationError):  # checked, or refused unchecked
            litemirror.connect(url(mirror, "reader", "guess", members=[primary]))
    throttled = mirror[primary].events("auth_throttled")
    assert throttled and throttled[-1]["data"]["peer"].startswith("127.0.0.1:")
    assert "doubles" in throttled[-1]["message"]
    # The right password gets in once the host's hold is over (attempts before that
    # are refused unchecked, saying when to retry: docs/security.md, Back-off).
    conn = connect(mirror, "reader", members=[primary])
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.close()


# ---------------------------------------------------------------- failover


def test_users_survive_failover(tmp_path: Path) -> None:
    c = Cluster(
        tmp_path,
        members=[("a", "failover"), ("b", "failover")],
        arbiter=True,
        mirror=FAST,
        sections=AUTH,
    )
    start_with_users(c, users=("writer",))
    try:
        first, second = roles(c)
        conn = connect(c, "writer")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t (v) VALUES ('before')")
        lsn = conn.last_lsn
        conn.close()
        c[second].wait_applied(lsn)
        # A planned switchover is an admin action; then the new primary is killed.
        r = cli(c, "switchover", "--to", second, user="root")
        assert r.returncode == 0, r.stdout + r.stderr
        c[second].wait_until(
            lambda st: st.get("backup_active") is True, what="the old primary rejoined as backup"
        )
        c[first].wait_until(
            lambda st: st["failover"]["state"] == "backup active", what="it knows it is active"
        )
        c[second].kill()
        c[first].wait_until(
            lambda st: st.get("role") == "primary" and st.get("writable"),
            timeout=60,
            what="the old primary takes over again",
        )
        conn = connect(c, "writer", members=[first])
        conn.execute("INSERT INTO t (v) VALUES ('after')")
        assert conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("before",), ("after",)]
        conn.close()
        with pytest.raises(errors.AuthenticationError):
            connect(c, "writer", "wrong-password", members=[first])
        r = cli(c, "user", "list", "--json", user="root")
        assert r.returncode == 0, r.stderr
        assert {u["name"] for u in json.loads(r.stdout)} == {"root", "writer"}
        with pytest.raises(errors.AuthenticationError):
            connect(c, None, members=[first])  # the bootstrap rule stays closed
    finally:
        c.kill_all()


# ------------------------------------------------------- client certificates


def test_client_certificate_names_the_user(tmp_path: Path) -> None:
    c = Cluster(tmp_path, tls=True, sections=dict(AUTH))
    c.start()
    try:
        assert c.certs is not None
        add_user(c, "root", by=None)
        r = cli(c, "user", "add", "alice", "--role", "write", "--no-password", user="root")
        assert r.returncode == 0, r.stderr
        alice = issue(c.certs, "alice", Role.CLIENT)
        mallory = issue(c.certs, "mallory", Role.CLIENT)

        def with_cert(files: Any, user: str | None = None, password: str | None = None) -> Any:
            return litemirror.connect(
                url(c, user, password, tls_cert=str(files.cert), tls_key=str(files.key)),
                isolation_level=None,
            )

        conn = with_cert(alice)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.close()
        assert count_rows(c) == 1
        with pytest.raises(errors.AuthenticationError) as exc:
            with_cert(mallory)  # a valid certificate, but no such user
        assert refusal(exc).startswith("authentication failed")
        with pytest.raises(errors.AuthenticationError):
            with_cert(alice, "root", "wrong-password")  # another user: password needed
        with_cert(alice, "root").close()
        with pytest.raises(errors.AuthenticationError):
            connect(c, None)
    finally:
        c.kill_all()


def test_auth_off_changes_nothing(tmp_path: Path) -> None:
    """Without auth.require every client may do everything, credentials or not."""
    c = Cluster(tmp_path)
    c.start()
    try:
        conn = connect(c, "whoever", "whatever")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.close()
        r = cli(c, "journal", "switch", "--member", "a")
        assert r.returncode == 0, r.stderr
        # Users may be prepared before auth is switched on.
        add_user(c, "root", by=None)
        r = cli(c, "user", "list", "--json")
        assert r.returncode == 0 and [u["name"] for u in json.loads(r.stdout)] == ["root"]
    finally:
        c.kill_all()
