"""Shared set-up of the security tests: a mirror configured as the docs recommend.

``[tls] require = true``, ``[auth] require = true``, users with the read,
write and admin roles; two failover members and an arbiter, each on its own
loopback address, so attackers on other loopback addresses are other hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litemirror
from litemirror import errors
from litemirror.cli.control import call
from litemirror.protocol import messages as m
from litemirror.testing.cluster import Cluster, MemberProcess

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
PASSWORDS = {"root": "root-secret-1", "writer": "writer-secret-2", "reader": "reader-secret-3"}
ROLES = {"root": "admin", "writer": "write", "reader": "read"}
#: Where attackers connect from: loopback addresses no member uses.
ATTACKERS = [f"127.0.0.{100 + i}" for i in range(40)]


def cli(c: Cluster, *args: str, user: str | None = None, stdin: str = "") -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITEMIRROR_")}
    if user is not None:
        env["LITEMIRROR_USER"] = user
        env["LITEMIRROR_PASSWORD"] = PASSWORDS[user]
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", *args, "--config", str(c.config_path)],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=120,
    )


def secure_mirror(
    base: Path,
    limits: dict[str, Any] | None = None,
    *,
    http: bool = False,
    start: bool = True,
    mirror: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> Cluster:
    """Members a and b, an arbiter, TLS and logins required, users root, writer, reader."""
    c = Cluster(
        base,
        members=[("a", "failover"), ("b", "failover")],
        arbiter=True,
        mirror=FAST if mirror is None else mirror,
        distinct_hosts=True,
        tls_require=True,
        http=http,
        sections={
            "auth": {"require": True},
            **({"limits": limits} if limits else {}),
            **({"server": server} if server else {}),
        },
    )
    if start:
        start_secure(c)
    return c


def start_secure(c: Cluster) -> None:
    c.start()
    primary = wait_primary(c)
    for name in ("root", "writer", "reader"):
        r = cli(
            c,
            "user",
            "add",
            name,
            "--role",
            ROLES[name],
            "--password-stdin",
            user=None if name == "root" else "root",  # root: the loopback bootstrap
            stdin=PASSWORDS[name],
        )
        assert r.returncode == 0, r.stdout + r.stderr
    conn = connect(c, "writer")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.close()
    wait_until(c[primary], lambda s: bool(s.get("backup_active")), 60, "an active backup")


def url(c: Cluster, user: str, members: list[str] | None = None, **q: Any) -> str:
    return c.url("app", members=members, **q).replace(
        "litemirror://", f"litemirror://{user}:{PASSWORDS[user]}@", 1
    )


def connect(c: Cluster, user: str, members: list[str] | None = None, **q: Any) -> Any:
    return litemirror.connect(url(c, user, members, **q), isolation_level=None)


def ids_as_root(c: Cluster, member: str) -> set[int]:
    """The ids in table t as ``member`` holds them."""
    conn = connect(c, "root", members=[member], read_only=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM t")}
    finally:
        conn.close()


def status(mp: MemberProcess, timeout: float = 2.0) -> dict[str, Any]:
    """A member's status, asked as root (a logged-in client, not an anonymous one)."""
    creds = ("root", PASSWORDS["root"])
    return call(mp.host, mp.port, m.StatusRequest(id=1), timeout=timeout, credentials=creds)


def wait_until(
    mp: MemberProcess, ok: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | str = {}
    while time.monotonic() < deadline:
        try:
            st = status(mp)
            if ok(st):
                return st
            last = st
        except errors.Error as exc:
            last = exc.message
        time.sleep(0.1)
    raise AssertionError(f"{mp.name}: {what} not reached in {timeout}s; last: {last}")


def wait_primary(c: Cluster, timeout: float = 60.0) -> str:
    """The writable primary's name (asked as root, or anonymously before root exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, mp in c.members.items():
            if not mp.running:
                continue
            try:
                try:
                    st = status(mp)
                except errors.AuthenticationError:
                    st = mp.status()
            except errors.Error:
                continue
            if st.get("role") == "primary" and st.get("writable"):
                return name
        time.sleep(0.1)
    raise AssertionError(f"no writable primary:\n{c.logs()}")


def events(path: Path, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("kind") == kind:
            out.append(ev)
    return out
