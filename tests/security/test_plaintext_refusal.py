"""Issue 12, item 12: a plaintext peer on a port that requires TLS reads why it was refused.

The listener answers a plaintext peer with one message in its protocol. It
used to close the socket with the peer's request still unread, and the
kernel then answers with a reset: a client still sending (its request in
two writes, a POST body after the headers) got "connection reset" on its
next write and never read the message, and one that reads until the end
got a reset instead of an end. Now the listener half-closes after the
message and reads what the peer still sends (bounded) until the peer
closes. Every attempt here is a real plaintext client against real
processes, repeated: all of them must read the reason and a clean end.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import litemirror
from litemirror import errors
from litemirror.protocol import messages as m
from litemirror.protocol.framing import encode
from litemirror.testing.cluster import Cluster

ATTEMPTS = 50


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        Path(tmp_path_factory.mktemp("plaintext")),
        members=[("a", "failover")],
        arbiter=True,
        tls_require=True,
        http=True,
        sections={"auth": {"require": True}},
    )
    c.start()
    try:
        yield c
    finally:
        c.kill_all()


def exchange(host: str, port: int, first: bytes, then: bytes) -> tuple[bytes, str]:
    """Send a request in two writes, read until the server closes: (bytes read, how it ended)."""
    with socket.create_connection((host, port), timeout=5) as s:
        try:
            s.sendall(first)
            time.sleep(0.01)  # the server has seen the first bytes and decided
            s.sendall(then)
        except OSError as exc:
            return b"", f"write failed: {exc!r}"
        got = b""
        while True:
            try:
                data = s.recv(65536)
            except OSError as exc:
                return got, f"read failed: {exc!r}"
            if not data:
                return got, "closed"
            got += data


def attempts(host: str, port: int, first: bytes, then: bytes, expected: bytes) -> list[str]:
    """What went wrong in ATTEMPTS tries (empty: every client read ``expected``, then the end)."""
    wrong = []
    for _ in range(ATTEMPTS):
        got, end = exchange(host, port, first, then)
        if expected not in got or end != "closed":
            wrong.append(f"{end}; read {got[:60]!r}")
    return wrong


def test_member_port(mirror: Cluster) -> None:
    a = mirror["a"]
    hello = encode(m.Hello(version=m.PROTOCOL_VERSION, database="app", user="u", password="p"))
    wrong = attempts(a.host, a.port, hello[:4], hello[4:], b"accepts only TLS")
    assert not wrong, f"{len(wrong)} of {ATTEMPTS} clients missed the refusal: {wrong[:3]}"


def test_http_port(mirror: Cluster) -> None:
    http = mirror["a"].http
    assert http is not None
    host, port = http.rsplit(":", 1)
    body = b'{"to": "b"}'
    head = (
        b"POST /admin/switchover HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    wrong = attempts(host, int(port), head, body, b"HTTPS only")
    assert not wrong, f"{len(wrong)} of {ATTEMPTS} clients missed the 400: {wrong[:3]}"


def test_arbiter_port(mirror: Cluster) -> None:
    assert mirror.arbiter is not None
    hello = encode(m.Hello(version=m.PROTOCOL_VERSION, database=""))
    wrong = attempts(mirror.arbiter.host, mirror.arbiter.port, hello[:4], hello[4:], b"only TLS")
    assert not wrong, f"{len(wrong)} of {ATTEMPTS} clients missed the refusal: {wrong[:3]}"


def test_the_driver_says_to_use_tls(mirror: Cluster) -> None:
    url = f"litemirror://reader:secret@{mirror['a'].address}/app?connect_timeout=5"
    for _ in range(10):
        with pytest.raises(errors.Error, match="accepts only TLS"):
            litemirror.connect(url)
