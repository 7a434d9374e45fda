"""The virtual IP moves between hosts, for real, in network namespaces.

Topology (each box a network namespace made for this test, names with a
random suffix so parallel runs do not collide)::

    host-a 10.77.0.1 ─┐
    host-b 10.77.0.2 ─┼── bridge br0 (in its own namespace)
    client 10.77.0.3 ─┘        VIP 10.77.0.100/24 on host-a, then host-b

Each host runs a TCP server answering its own name; the client connects only
to the VIP. The acquire/release code runs inside the host's namespace with
``ip netns exec`` and the project's Python.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from litemirror.errors import OperationalError
from litemirror.server.ha.vip import VirtualIP

pytestmark = [
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="network namespaces need root: run this test as root to exercise the virtual IP",
    ),
    pytest.mark.skipif(
        shutil.which("ip") is None or shutil.which("arping") is None,
        reason="ip or arping missing: run scripts/install-netns-tools.sh (as root) first",
    ),
]

SUBNET = "10.77.0"
VIP = f"{SUBNET}.100/24"
VIP_IP = f"{SUBNET}.100"
PORT = 7701

SERVER = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.sendall(sys.argv[1].encode())
        c.close()
    """
)

CLIENT = textwrap.dedent(
    """
    import socket, sys
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
        print(c.recv(64).decode())
    except OSError as exc:
        print("unreachable:", exc)
    """
)

VIP_CALL = textwrap.dedent(
    """
    import asyncio, sys
    from litemirror.errors import OperationalError
    from litemirror.server.ha.vip import VirtualIP
    vip = VirtualIP(sys.argv[2], sys.argv[3])
    try:
        asyncio.run(getattr(vip, sys.argv[1])())
    except OperationalError as exc:
        print("error:", exc)
    try:
        print("held:", asyncio.run(vip.held()))
    except OperationalError as exc:
        print("held: unknown:", exc)
    """
)


def _sh(*argv: str, timeout: float = 10.0) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class Lan:
    """Three hosts on one bridge, each in its own network namespace."""

    def __init__(self) -> None:
        suffix = secrets.token_hex(3)
        self.bridge = f"lmbr-{suffix}"
        self.ns = {h: f"lm{h}-{suffix}" for h in ("a", "b", "c")}
        self.ip = {"a": f"{SUBNET}.1", "b": f"{SUBNET}.2", "c": f"{SUBNET}.3"}
        self.servers: list[subprocess.Popen[str]] = []
        self.made: list[str] = []

    def up(self) -> None:
        _sh("ip", "netns", "add", self.bridge)
        self.made.append(self.bridge)
        _sh("ip", "-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", self.bridge, "link", "set", "br0", "up")
        for host, ns in self.ns.items():
            _sh("ip", "netns", "add", ns)
            self.made.append(ns)
            # The bridge side keeps a short name; the host side is "eth0" in every host.
            _sh("ip", "-n", self.bridge, "link", "add", f"v{host}", "type", "veth",
                "peer", "name", "eth0", "netns", ns)  # fmt: skip
            _sh("ip", "-n", self.bridge, "link", "set", f"v{host}", "master", "br0", "up")
            _sh("ip", "-n", ns, "addr", "add", f"{self.ip[host]}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for p in self.servers:
            p.kill()
            p.wait()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def serve(self, host: str) -> None:
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[host], sys.executable, "-c", SERVER, host, str(PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.servers.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def connect_vip(self, timeout: float = 2.0) -> str:
        return _sh(
            "ip", "netns", "exec", self.ns["c"], sys.executable, "-c", CLIENT,
            VIP_IP, str(PORT), str(timeout), timeout=timeout + 10,
        ).strip()  # fmt: skip

    def vip(self, host: str, op: str, interface: str = "eth0", path: str | None = None) -> str:
        env = {**os.environ, "PATH": path} if path is not None else None
        argv = ["ip", "netns", "exec", self.ns[host], sys.executable, "-c", VIP_CALL]
        r = subprocess.run(
            [*argv, op, VIP, interface], capture_output=True, text=True, timeout=30, env=env
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def mac(self, host: str) -> str:
        out = _sh("ip", "-n", self.ns[host], "-br", "link", "show", "eth0")
        return out.split()[2]

    def client_neighbour(self) -> str:
        """What the client's ARP cache says the VIP's MAC address is now ("" if none)."""
        out = _sh("ip", "-n", self.ns["c"], "neigh", "show", VIP_IP, "dev", "eth0")
        words = out.split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else ""


@pytest.fixture
def lan() -> Iterator[Lan]:
    net = Lan()
    try:
        net.up()
        yield net
    finally:
        net.down()


def test_vip_follows_the_primary_and_the_client_follows_the_vip(lan: Lan) -> None:
    lan.serve("a")
    lan.serve("b")
    # Nobody holds the VIP yet: the client cannot reach it.
    assert lan.connect_vip(timeout=1.0).startswith("unreachable")

    assert lan.vip("a", "acquire") == "held: True"
    assert lan.client_neighbour() == lan.mac("a")  # learnt from the gratuitous ARP
    assert lan.connect_vip() == "a"
    # Acquiring again where it is already held is fine.
    assert lan.vip("a", "acquire") == "held: True"

    # Failover: the old primary lets go, the new one takes it and announces it.
    assert lan.vip("a", "release") == "held: False"
    assert lan.vip("a", "release") == "held: False"  # absent is fine
    assert lan.client_neighbour() == lan.mac("a")  # the client still remembers host-a
    assert lan.vip("b", "acquire") == "held: True"
    # The gratuitous ARP from host-b replaced the client's cached entry at once.
    assert lan.client_neighbour() == lan.mac("b")
    assert lan.connect_vip() == "b"


def test_acquire_failures_are_clear_and_leave_nothing_behind(lan: Lan, tmp_path: object) -> None:
    out = lan.vip("a", "acquire", interface="nosuch0")
    assert out.startswith("error: cannot take virtual IP 10.77.0.100/24 on nosuch0")
    assert "Cannot find device" in out

    # A PATH with ip but without arping: the error says so, and no address was added.
    bindir = os.path.join(str(tmp_path), "bin")
    os.mkdir(bindir)
    os.symlink(shutil.which("ip") or "ip", os.path.join(bindir, "ip"))
    out = lan.vip("a", "acquire", path=bindir)
    assert "the arping command was not found" in out
    assert out.endswith("held: False")


def test_failure_raises_operational_error_in_process() -> None:
    vip = VirtualIP(VIP, f"lmx{secrets.token_hex(4)}")
    with pytest.raises(OperationalError, match="Cannot find device"):
        asyncio.run(vip.acquire())
    with pytest.raises(OperationalError, match="cannot tell whether"):
        asyncio.run(vip.held())
    asyncio.run(vip.release())  # an interface that does not exist holds nothing
