"""A mirror set up as docs/security.md recommends, and what an attacker uses against it.

The mirror: ``[tls] require = true``, ``[auth] require = true``, users with
the read, write and admin roles, HTTP on every member, defaults elsewhere.
The attacker's tools: raw logins over TLS from a chosen loopback source
address (Linux answers on all of 127/8, so each address is a different
"host" to the member), and HTTPS requests with or without credentials.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litemirror import errors
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.security.tls import client_context
from litemirror.testing.cluster import Cluster

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
PASSWORDS = {"root": "root-secret-1", "writer": "writer-secret-2", "reader": "reader-secret-3"}
#: What the member answers to a password it checked and refused.
CHECKED = "authentication failed"
#: What it answers to an attempt it refused without checking it.
UNCHECKED = "not checked"


def cli(
    c: Cluster, *args: str, user: str | None = None, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``litemirror ARGS --config ...`` as an operator runs it, logged in as ``user``."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("LITEMIRROR_USER", "LITEMIRROR_P"))
    }
    if user is not None:
        environ["LITEMIRROR_USER"] = user
        environ["LITEMIRROR_PASSWORD"] = PASSWORDS.get(user, "not-the-password")
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", *args, "--config", str(c.config_path)],
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        env=environ,
        timeout=120,
    )


def add_user(c: Cluster, name: str, role: str, *, by: str | None = "root") -> None:
    r = cli(
        c, "user", "add", name, "--role", role, "--password-stdin", user=by, stdin=PASSWORDS[name]
    )
    assert r.returncode == 0, r.stdout + r.stderr


def primary_of(c: Cluster, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, mp in c.members.items():
            try:
                if mp.status().get("role") == "primary":
                    return name
            except errors.Error:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no primary:\n{c.logs()}")


def recommended_mirror(base: Path, *, backup: bool = True) -> Cluster:
    """Started, with users root (admin), writer (write) and reader (read)."""
    members = [("a", "failover"), ("b", "failover")] if backup else [("a", "failover")]
    c = Cluster(
        base,
        members=members,
        arbiter=backup,
        mirror=FAST,
        tls=True,
        tls_require=True,
        http=True,
        sections={"auth": {"require": True}},
    )
    c.start()
    try:
        primary_of(c)
        add_user(c, "root", "admin", by=None)  # the bootstrap rule, from the member's host
        c.log_in_as("root", PASSWORDS["root"])
        add_user(c, "writer", "write")
        add_user(c, "reader", "read")
    except BaseException:
        c.kill_all()
        raise
    return c


def ca_context(c: Cluster) -> ssl.SSLContext:
    assert c.certs is not None
    return client_context(str(c.certs / "ca.crt"))


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
    mp = c[member]
    t0 = time.monotonic()
    raw = socket.create_connection((mp.host, mp.port), timeout=timeout, source_address=(source, 0))
    with ca_context(c).wrap_socket(raw, server_hostname=mp.host) as sock:
        hello = m.Hello(
            version=m.PROTOCOL_VERSION, database="", client="attack", user=user, password=password
        )
        sock.sendall(encode(hello))
        decoder: FrameDecoder[m.ServerMessage] = FrameDecoder(m.ServerMessage)
        while True:
            msg = decoder.next_message()
            if msg is not None:
                break
            data = sock.recv(65536)
            if not data:
                raise AssertionError(f"member {member} closed without an answer")
            decoder.feed(data)
    now = time.monotonic()
    if isinstance(msg, m.Welcome):
        return Answer("ok", "", now, now - t0)
    assert isinstance(msg, m.Error), msg
    return Answer(msg.kind, msg.message, now, now - t0)


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


def events_file(c: Cluster, member: str) -> list[dict[str, Any]]:
    path = c[member].data_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
