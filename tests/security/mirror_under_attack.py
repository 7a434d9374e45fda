"""A mirror set up as the docs recommend, and what the attack tests need to talk to it.

``[tls] require = true`` and ``[auth] require = true``, with users of each
role; the tests connect as those users, over TLS, with the driver or with
raw frames (to send what no driver would).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import litemirror
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.testing.cluster import Cluster

PASSWORDS = {
    "root": "root-secret-1",
    "writer": "writer-secret-2",
    "reader": "reader-secret-3",
    "writer2": "writer2-secret-4",
    "hog": "hog-secret-5",
}
ROLES = {"root": "admin", "writer": "write", "reader": "read", "writer2": "write", "hog": "write"}


def secured_cluster(factory: Callable[..., Cluster], **kwargs: Any) -> Cluster:
    """A started mirror with TLS and logins required, and every user of ROLES added."""
    sections = {"auth": {"require": True}, **kwargs.pop("sections", {})}
    c = factory(tls_require=True, sections=sections, **kwargs)
    c.start()
    # With an arbiter either member may be elected first. The role is all a
    # caller without a login sees (auth.require), and enough to find the primary.
    wait_for(lambda: _primary(c), 60, "a primary")
    add_user(c, "root", by=None)  # the bootstrap from loopback
    for name in ROLES:
        if name != "root":
            add_user(c, name, by="root")
    c.log_in_as("root", PASSWORDS["root"])  # the harness reads the full status from here
    if len([mp for mp in c.members.values() if mp.kind == "failover"]) > 1:
        wait_for(lambda: _primary_with_backup(c), 60, "a primary with an active backup")
    return c


def _primary(c: Cluster) -> bool:
    try:
        return c.primary().status().get("writable") is True
    except AssertionError:
        return False


def _primary_with_backup(c: Cluster) -> bool:
    try:
        return bool(c.primary().status().get("backup_active"))
    except AssertionError:
        return False


def cli_env(user: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITEMIRROR_")}
    if user is not None:
        env.update(LITEMIRROR_USER=user, LITEMIRROR_PASSWORD=PASSWORDS[user])
    return env


def add_user(c: Cluster, name: str, by: str | None) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "user", "add", name, "--role", ROLES[name],
         "--password-stdin", "--config", str(c.config_path)],
        input=PASSWORDS[name], capture_output=True, text=True, env=cli_env(by), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def url(c: Cluster, user: str, db: str = "app", member: str = "a", **query: Any) -> str:
    plain = c.url(db, members=[member], **query)
    return plain.replace("://", f"://{user}:{quote(PASSWORDS[user])}@", 1)


def connect(
    c: Cluster,
    user: str,
    db: str = "app",
    member: str = "a",
    isolation_level: str | None = "",
    **query: Any,
) -> Any:
    """A driver connection as ``user`` (URL options as keywords)."""
    return litemirror.connect(url(c, user, db, member, **query), isolation_level=isolation_level)


def events(c: Cluster, member: str, kind: str) -> list[dict[str, Any]]:
    path = c[member].data_dir / "events.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == kind:
            found.append(event)
    return found


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


class RawClient:
    """One TLS connection speaking frames directly: what an attacker's script would send."""

    def __init__(self, c: Cluster, user: str, db: str = "app", member: str = "a") -> None:
        assert c.certs is not None
        context = ssl.create_default_context(cafile=str(c.certs / "ca.crt"))
        mp = c[member]
        raw = socket.create_connection((mp.host, mp.port), timeout=30)
        self.sock = context.wrap_socket(raw, server_hostname=mp.host)
        self.decoder: FrameDecoder[Any] = FrameDecoder(m.ServerMessage)
        self.send(
            m.Hello(
                version=m.PROTOCOL_VERSION,
                database=db,
                user=user,
                password=PASSWORDS[user],
                client=m.client_name("attack"),
            )
        )
        welcome = self.recv()
        assert isinstance(welcome, m.Welcome), welcome

    def send(self, message: m.Message) -> None:
        self.send_bytes(encode(message))

    def send_bytes(self, frame: bytes) -> None:
        try:
            self.sock.sendall(frame)
        except OSError:
            pass  # refused and closed while we were still sending: read the answer

    def recv(self) -> Any:
        """The next message, or None when the member closed the connection."""
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
