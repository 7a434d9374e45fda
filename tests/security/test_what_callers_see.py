"""Finding 8: what anonymous and non-admin callers learn from a TLS + auth mirror.

The attack read, without any credentials, from ``/events`` and ``/mirror``:
user names and roles ("user 'admin1' added with the admin role"), every
attempted user name (people type passwords into the user field), client
addresses and admin actions with their arguments; from ``/status`` the pid,
the certificate serial and sessions per client address. Here the same things
happen on a real mirror, and every way of reading them is tried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litemirror.client.control import call
from litemirror.protocol import messages as m
from litemirror.security.visibility import HIDDEN_MESSAGE, PUBLIC_FIELDS
from litemirror.testing.cluster import Cluster
from litemirror.testing.secured import (
    PASSWORDS,
    add_user,
    cli,
    https,
    raw_login,
    secured_mirror,
    wait_primary,
)

#: A user name that is really a password someone typed into the wrong field.
TYPED_PASSWORD = "CorrectHorse-Battery-9"
ATTACKER = "127.0.0.80"
#: What must never reach a caller who is not an admin.
SECRETS = ("admin1", TYPED_PASSWORD, ATTACKER, "HTTP admin", "'reader'")
ROOT = ("root", PASSWORDS["root"])
READER = ("reader", PASSWORDS["reader"])


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """Members a and b with an arbiter; an admin added, logins refused, an admin action run."""
    c = secured_mirror(Path(tmp_path_factory.mktemp("visibility")), http=True)
    try:
        primary = wait_primary(c)
        add_user(c, "admin1")
        for user, password in ((TYPED_PASSWORD, "x"), ("reader", "wrong-password")):
            answer = raw_login(c, primary, user, password, source=ATTACKER)
            assert answer.kind == "AuthenticationError", answer
        code, body, _ = https(c, primary, "/admin/journal_switch", method="POST", auth=ROOT)
        assert code == 200, body
        yield c, primary
    finally:
        c.kill_all()


def leaks(body: Any) -> list[str]:
    text = body if isinstance(body, str) else json.dumps(body)
    return [s for s in SECRETS if s in text]


def test_anonymous_http_callers_get_the_health_checks_only(mirror: tuple[Cluster, str]) -> None:
    c, primary = mirror
    for member in c.members:
        for path in ("/status", "/mirror", "/events", "/events?limit=1000"):
            code, body, headers = https(c, member, path)
            assert code == 401, (member, path, body)
            assert body["error"] == "AuthenticationError" and not leaks(body)
            assert any(h.startswith("Basic") for h in headers.get_all("WWW-Authenticate"))
        for path in ("/health", "/primary", "/replica", "/metrics", "/", "/openapi.json"):
            code, body, _ = https(c, member, path)
            assert code in (200, 503), (member, path, body)
            assert not leaks(body), (member, path, leaks(body))
            assert '"pid"' not in str(body) and "serial" not in str(body)
    # Nor does a wrong password or a stranger's cookie open them.
    code, body, _ = https(c, primary, "/events", auth=("reader", "wrong-password"))
    assert code == 401 and not leaks(body)
    cookie = {"Cookie": f"__Host-litemirror-{primary}=forged-token"}
    assert https(c, primary, "/mirror", headers=cookie)[0] == 401


def test_anonymous_control_connections_get_what_a_load_balancer_needs(
    mirror: tuple[Cluster, str],
) -> None:
    c, primary = mirror
    mp = c[primary]
    st = call(mp.host, mp.port, m.StatusRequest(id=1), timeout=5.0)  # no credentials
    assert set(st) <= set(PUBLIC_FIELDS) | {"redacted"}, sorted(st)
    assert st["role"] == "primary" and st["writable"] is True and "log in" in st["redacted"]
    # The command line without a login shows the same, and says how to see more.
    r = cli(c, "status", "--json")
    assert r.returncode == 0, r.stderr
    for row in json.loads(r.stdout)["members"]:
        assert set(row) <= set(PUBLIC_FIELDS) | {"redacted"}, sorted(row)
    assert not leaks(r.stdout)
    assert "--user" in cli(c, "status").stdout
    r = cli(c, "status", "--json", user="root")
    full = {row["member"]: row for row in json.loads(r.stdout)["members"]}
    assert "pid" in full[primary] and "sessions_by_host" in full[primary]
    # `litemirror events` reads the HTTP port: a login is needed, and asked for.
    r = cli(c, "events")
    assert r.returncode != 0 and "requires a login" in r.stderr and not leaks(r.stdout)
    r = cli(c, "events", "--json", "--limit", "0", user="root")
    assert r.returncode == 0 and "user 'admin1' added with the admin role" in r.stdout


def test_read_users_see_the_operation_but_not_who_tried_what(
    mirror: tuple[Cluster, str],
) -> None:
    c, primary = mirror
    code, body, _ = https(c, primary, "/events?limit=1000", auth=READER)
    assert code == 200 and not leaks(body), leaks(body)
    kinds = {e["kind"]: e for e in body["events"]}
    for shown in ("failover", "backup_active"):  # the operation
        assert kinds[shown]["message"] != HIDDEN_MESSAGE, kinds[shown]
    for hidden in ("auth_refused", "user_add", "admin"):
        assert kinds[hidden]["message"] == HIDDEN_MESSAGE and kinds[hidden]["data"] == {}
    code, st, _ = https(c, primary, "/status", auth=READER)
    assert code == 200 and not leaks(st)
    assert st["role"] == "primary" and "replicas" in st
    for hidden in ("pid", "connections_by_host", "sessions_by_host"):
        assert hidden not in st
    # The same over the control protocol, and from `litemirror events`.
    mp = c[primary]
    st = call(mp.host, mp.port, m.StatusRequest(id=1), timeout=5.0, credentials=READER)
    assert "replicas" in st and "pid" not in st and not leaks(st)
    r = cli(c, "events", "--json", "--limit", "0", user="reader")
    assert r.returncode == 0 and "auth_refused" in r.stdout and not leaks(r.stdout)


def test_the_mirror_view_is_complete_and_filtered_for_its_viewer(
    mirror: tuple[Cluster, str],
) -> None:
    c, primary = mirror
    backup = next(n for n in c.members if n != primary)
    for auth in (READER, ROOT):
        code, view, _ = https(c, primary, "/mirror", auth=auth)
        assert code == 200 and view["viewer"]["user"] == auth[0]
        # The other member answered this member as a member (its certificate): its
        # full status and its events are there, not only what a stranger may see.
        row = next(r for r in view["members"] if r["member"] == backup)
        assert row["role"] == "backup" and row["uptime_s"] is not None, row
        assert any(e["member"] == backup for e in view["events"]), view["events"]
        assert view["databases"] and all(
            d["members"][backup] == "present" for d in view["databases"]
        ), view["databases"]
        if auth is READER:
            assert not leaks(view), leaks(view)
        else:
            assert any("admin1" in e["message"] for e in view["events"])


def test_admins_see_who_tried_but_a_mistyped_password_is_never_written_down(
    mirror: tuple[Cluster, str],
) -> None:
    c, primary = mirror
    code, body, _ = https(c, primary, "/events?limit=1000", auth=ROOT)
    assert code == 200
    refused = [e for e in body["events"] if e["kind"] == "auth_refused"]
    assert any(ATTACKER in e["message"] for e in refused), refused
    assert any("user 'admin1' added" in e["message"] for e in body["events"])
    # The attempted name that is no user's: only "a name that is not a user", anywhere.
    assert TYPED_PASSWORD not in json.dumps(body)
    for member in c.members:
        assert TYPED_PASSWORD not in json.dumps(c[member].events())
        assert TYPED_PASSWORD not in c[member].log_path.read_text()
    log = c[primary].log_path.read_text()
    assert (
        f"a name that is not a user (not recorded: it may be a mistyped password) from {ATTACKER}:"
        in log
    )
