"""The fault proxy against a real echo server on loopback."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from litemirror.testing.cluster import free_port
from litemirror.testing.proxy import ANY, FaultProxy, Rule


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, tuple[str, int]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = FaultProxy()
    listen = ("127.0.0.20", free_port("127.0.0.20"))
    p.add_route("m", listen, server.server_address)  # type: ignore[arg-type]
    yield p, listen
    p.close()
    server.shutdown()


def _dial(addr: tuple[str, int], source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(addr, timeout=2, source_address=(source, 0))
    return s


def _echo(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        got += s.recv(65536)
    return got


def test_pass_forwards_both_ways_intact(proxy: tuple[FaultProxy, tuple[str, int]]) -> None:
    _, addr = proxy
    s = _dial(addr)
    payload = bytes(range(256)) * 400
    assert _echo(s, payload) == payload


def test_drop_resets_new_connections_from_one_source_only(
    proxy: tuple[FaultProxy, tuple[str, int]],
) -> None:
    p, addr = proxy
    p.set_rule("m", "127.0.0.30", Rule(mode="drop"))
    with pytest.raises(OSError):
        _echo(_dial(addr, "127.0.0.30"), b"x")
    assert _echo(_dial(addr, "127.0.0.31"), b"ok") == b"ok"


def test_blackhole_stalls_without_losing_bytes_and_heal_resumes(
    proxy: tuple[FaultProxy, tuple[str, int]],
) -> None:
    p, addr = proxy
    s = _dial(addr)
    assert _echo(s, b"before") == b"before"
    p.set_rule("m", ANY, Rule(mode="blackhole"))
    s.sendall(b"during")
    s.settimeout(0.5)
    with pytest.raises(TimeoutError):
        s.recv(10)
    p.heal()
    s.settimeout(2)
    got = b""
    while len(got) < 6:
        got += s.recv(10)
    assert got == b"during"


def test_cut_resets_existing_connections(proxy: tuple[FaultProxy, tuple[str, int]]) -> None:
    p, addr = proxy
    s = _dial(addr, "127.0.0.32")
    assert _echo(s, b"a") == b"a"
    assert p.cut(source="127.0.0.32") == 1
    with pytest.raises(OSError):
        for _ in range(3):
            _echo(s, b"b")
            time.sleep(0.05)


def test_delay_is_added_per_direction(proxy: tuple[FaultProxy, tuple[str, int]]) -> None:
    p, addr = proxy
    p.set_rule("m", ANY, Rule(delay_up_s=0.15, delay_down_s=0.1))
    s = _dial(addr)
    t = time.monotonic()
    assert _echo(s, b"slow") == b"slow"
    assert time.monotonic() - t >= 0.25
