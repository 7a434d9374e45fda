"""A mirror set up as docs/security.md recommends, and what tests use against it.

The mirror: ``[tls] require = true``, ``[auth] require = true``, a user of
each role (:data:`ROLES`, passwords in :data:`PASSWORDS`); two failover
members and an arbiter unless a test asks otherwise. Root is added the way
an operator adds the first admin (``user add`` without a login, from the
member's host), and from then on the harness logs in as root: with
``auth.require`` a caller without a login sees only a member's role and
state.

What the tests use against it, as an operator or an attacker would:

* :func:`cli` -- the command line, logged in as a user (or not);
* :func:`url` and :func:`connect` -- the driver, as a user;
* :class:`RawClient` and :func:`raw_login` -- frames over TLS, to send what
  no driver would, from a chosen loopback address (Linux answers on all of
  127/8, so each address is another host to the member);
* :func:`https` -- requests to a member's HTTP port, with or without
  credentials.

The helpers for users and the driver (:func:`start_with_users`,
:func:`add_user`, :func:`cli`, :func:`url`, :func:`connect`) need
``auth.require`` only: mirrors without TLS use them too.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import litemirror
from litemirror import errors
from litemirror.client.dbapi import Connection
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.security.tls import client_context
from litemirror.testing.cluster import Cluster, wait_for

#: Every user any test logs in as; start_with_users adds root and those it is given.
PASSWORDS = {
    "root": "root-secret-1",
    "writer": "writer-secret-2",
    "reader": "reader-secret-3",
    "writer2": "writer2-secret-4",
    "hog": "hog-secret-5",
    "admin1": "admin1-secret-4",
    "mallory": "mallory-secret-2",
    "alice": "alice-secret-3",
    "temp": "temp-password-1",
}
ROLES = {
    "root": "admin",
    "writer": "write",
    "reader": "read",
    "writer2": "write",
    "hog": "write",
    "admin1": "admin",
    "mallory": "write",
    "alice": "write",
    "temp": "write",
}
#: The users a secured mirror has besides root, unless a test asks for others.
USERS = ("writer", "reader")
#: Failover timings short enough for tests.
FAST: Mapping[str, Any] = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
PAIR = (("a", "failover"), ("b", "failover"))
#: Where attackers connect from: loopback addresses no member uses.
ATTACKERS = [f"127.0.0.{100 + i}" for i in range(40)]
#: What the member answers to a password it checked and refused.
CHECKED = "authentication failed"
#: What it answers to an attempt it refused without checking it (the login back-off).
UNCHECKED = "not checked"


# ------------------------------------------------------------- the mirror


def secured_cluster(
    base: Path,
    *,
    members: Sequence[tuple[str, str]] = PAIR,
    arbiter: bool = True,
    databases: Sequence[str] = ("app",),
    mirror: Mapping[str, Any] = FAST,
    sections: Mapping[str, dict[str, Any]] | None = None,
    http: bool = False,
    distinct_hosts: bool = False,
    nofile: int | None = None,
    arbiter_nofile: int | None = None,
) -> Cluster:
    """The mirror, made but not started: TLS and logins required, ``sections`` added.

    ``nofile`` and ``arbiter_nofile`` are the descriptor limits (RLIMIT_NOFILE)
    of the members and of the arbiter; None leaves them as this process's.
    """
    c = Cluster(
        base,
        members=members,
        databases=databases,
        sections={"auth": {"require": True}, **(sections or {})},
        mirror=dict(mirror),
        arbiter=arbiter,
        tls_require=True,
        http=http,
        distinct_hosts=distinct_hosts,
    )
    for mp in c.members.values():
        mp.nofile = nofile
    if c.arbiter is not None:
        c.arbiter.nofile = arbiter_nofile
    return c


def start_with_users(
    c: Cluster, users: Iterable[str] = USERS, *, schema: Sequence[str] = ()
) -> Cluster:
    """Start ``c`` (``auth.require`` on) and make it ready for a test; ``c`` again.

    Adds root (the bootstrap rule), logs the harness in as root, adds
    ``users``, runs the ``schema`` statements as writer, and with two failover
    members waits until the primary has an active backup. Kills ``c`` if a
    step fails.
    """
    try:
        c.start()
        wait_primary(c)
        add_user(c, "root", by=None)  # no admin yet: allowed from the member's host
        c.log_in_as("root", PASSWORDS["root"])
        for name in users:
            add_user(c, name)
        if schema:
            conn = connect(c, "writer", isolation_level=None)
            try:
                for sql in schema:
                    conn.execute(sql)
            finally:
                conn.close()
        if sum(mp.kind == "failover" for mp in c.members.values()) > 1:
            c[wait_primary(c)].wait_until(
                lambda st: st.get("backup_active") is True, 60, "an active backup"
            )
    except BaseException:
        c.kill_all()
        raise
    return c


def secured_mirror(
    base: Path, *, users: Iterable[str] = USERS, schema: Sequence[str] = (), **options: Any
) -> Cluster:
    """:func:`secured_cluster` (``options``), started by :func:`start_with_users`."""
    return start_with_users(secured_cluster(base, **options), users, schema=schema)


def wait_primary(c: Cluster, timeout: float = 60.0) -> str:
    """The name of the member that is primary and commits, once one is."""

    def writable_primary() -> str | None:
        for name, mp in c.members.items():
            if not mp.running:
                continue
            try:
                st = mp.status()  # role and writable: a caller without a login sees them too
            except errors.Error:
                continue
            if st.get("role") == "primary" and st.get("writable"):
                return name
        return None

    try:
        return wait_for(writable_primary, timeout, "a writable primary")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{c.logs()}") from None


# ----------------------------------------------------------- users, the CLI


def cli(
    c: Cluster, *args: str, user: str | None = None, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """``litemirror ARGS --config ...`` as an operator runs it, logged in as ``user``.

    A user not in PASSWORDS logs in with a wrong password. ``env`` adds
    variables (``LITEMIRROR_NEW_PASSWORD=...``); no other ``LITEMIRROR_*``
    variable of this process reaches the command. A refusal the login
    back-off gave without checking the password (nothing was done) is tried
    again as the refusal says, for a minute at most.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LITEMIRROR_")}
    if user is not None:
        environ["LITEMIRROR_USER"] = user
        environ["LITEMIRROR_PASSWORD"] = PASSWORDS.get(user, "not-the-password")
    environ.update(env)
    deadline = time.monotonic() + 60
    while True:
        r = subprocess.run(
            [sys.executable, "-m", "litemirror.cli.main", *args, "--config", str(c.config_path)],
            capture_output=True,
            text=True,
            input=stdin,
            env=environ,
            timeout=120,
        )
        if UNCHECKED not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def add_user(c: Cluster, name: str, *, by: str | None = "root") -> None:
    """``litemirror user add NAME`` with its role and password, run by the user ``by``."""
    r = cli(
        c,
        *("user", "add", name, "--role", ROLES[name], "--password-stdin"),
        user=by,
        stdin=PASSWORDS[name],
    )
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- the driver


def url(
    c: Cluster, user: str, db: str = "app", members: Sequence[str] | None = None, **query: Any
) -> str:
    """A driver's URL logging in as ``user``, to ``members`` (all by default)."""
    plain = c.url(db, members=members, **query)
    return plain.replace("://", f"://{user}:{quote(PASSWORDS[user])}@", 1)


def connect(
    c: Cluster,
    user: str,
    db: str = "app",
    members: Sequence[str] | None = None,
    *,
    isolation_level: str | None = "",
    **query: Any,
) -> Connection:
    """A driver connection as ``user`` (URL options as keywords)."""
    return litemirror.connect(url(c, user, db, members, **query), isolation_level=isolation_level)


# ------------------------------------------------------- raw frames over TLS


def ca_context(c: Cluster) -> ssl.SSLContext:
    """A client's TLS context that trusts the mirror's CA."""
    assert c.certs is not None, "the mirror was made without TLS"
    return client_context(str(c.certs / "ca.crt"))


class RawClient:
    """One TLS connection to a member, speaking frames directly: what an attacker's script sends.

    It connects from ``source``; :meth:`hello` says who it is, or
    :meth:`logged_in` opens one already logged in.
    """

    def __init__(
        self, c: Cluster, member: str = "a", *, source: str = "127.0.0.1", timeout: float = 30.0
    ) -> None:
        mp = c[member]
        raw = socket.create_connection(
            (mp.host, mp.port), timeout=timeout, source_address=(source, 0)
        )
        try:
            self.sock = ca_context(c).wrap_socket(raw, server_hostname=mp.host)
        except BaseException:
            raw.close()
            raise
        self.decoder: FrameDecoder[m.ServerMessage] = FrameDecoder(m.ServerMessage)

    @classmethod
    def logged_in(cls, c: Cluster, user: str, db: str = "app", member: str = "a") -> RawClient:
        """A connection to ``db`` on which ``user`` logged in with its password."""
        client = cls(c, member)
        welcome = client.hello(user, PASSWORDS[user], db)
        assert isinstance(welcome, m.Welcome), welcome
        return client

    def hello(self, user: str, password: str, db: str = "") -> m.ServerMessage | None:
        """Log in as ``user`` with ``password``; the member's answer (None: it closed)."""
        self.send(
            m.Hello(
                version=m.PROTOCOL_VERSION,
                database=db,
                user=user,
                password=password,
                client=m.client_name("attack"),
            )
        )
        return self.recv()

    def send(self, message: m.Message) -> None:
        self.send_bytes(encode(message))

    def send_bytes(self, frame: bytes) -> None:
        try:
            self.sock.sendall(frame)
        except OSError:
            pass  # refused and closed while we were still sending: read the answer

    def recv(self) -> m.ServerMessage | None:
        """The next message, or None when the member closed the connection (or went silent)."""
        while (message := self.decoder.next_message()) is None:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                return None
            if not data:
                return None
            self.decoder.feed(data)
        return message

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Answer:
    """What the member answered a login: "ok", or the error's kind, and its message."""

    kind: str
    message: str
    #: When the answer came, and how long it took (time.monotonic()).
    at: float
    took: float

    @property
    def checked(self) -> bool:
        return self.kind == "ok" or CHECKED in self.message

    @property
    def unchecked(self) -> bool:
        return UNCHECKED in self.message

    @property
    def retry_in(self) -> float:
        """The "retry in N s" of an unchecked refusal (0 when it says none)."""
        found = re.search(r"retry in (\d+) s", self.message)
        return float(found.group(1)) if found else 0.0


def raw_login(
    c: Cluster,
    member: str,
    user: str,
    password: str,
    *,
    source: str = "127.0.0.1",
    timeout: float = 120.0,
) -> Answer:
    """One login on a control connection over TLS, from ``source``; the member's answer."""
    t0 = time.monotonic()
    client = RawClient(c, member, source=source, timeout=timeout)
    try:
        answer = client.hello(user, password)
    finally:
        client.close()
    now = time.monotonic()
    if answer is None:
        raise AssertionError(f"member {member} closed (or said nothing for {timeout} s)")
    if isinstance(answer, m.Welcome):
        return Answer("ok", "", now, now - t0)
    assert isinstance(answer, m.Error), answer
    return Answer(answer.kind, answer.message, now, now - t0)


def checked_login(
    c: Cluster, member: str, user: str, password: str, *, source: str, timeout: float = 60.0
) -> Answer:
    """A login that waits out its host's back-off (retries while refused unchecked)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = raw_login(c, member, user, password, source=source)
        if not answer.unchecked or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


# ------------------------------------------------------------------- HTTPS


def https(
    c: Cluster,
    member: str,
    path: str,
    *,
    method: str = "GET",
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> tuple[int, Any, Any]:
    """(status, decoded JSON or text, headers) of one HTTPS request to a member."""
    hdrs = dict(headers or {})
    if auth is not None:
        hdrs["Authorization"] = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        )
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif method == "POST":
        data = b""
    req = urllib.request.Request(f"https://{c.http[member]}{path}", data, hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60, context=ca_context(c)) as resp:
            raw, code, got = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        raw, code, got = exc.read(), exc.code, exc.headers
    try:
        return code, json.loads(raw), got
    except ValueError:
        return code, raw.decode(errors="replace"), got
