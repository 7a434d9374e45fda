"""HAProxy (the Debian package) in front of a mirror, across a switchover.

``docs/haproxy.cfg`` itself is run, with the members' loopback addresses put
in: its write pool checks ``GET /primary`` on each member's HTTP port and
proxies TCP to the member port. Client threads write through HAProxy's port
with retries while ``litemirror switchover`` moves the primary; they keep
committing afterwards, every acknowledged row is on the new primary, and
HAProxy's own counters show new connections reaching the new primary
through it.

The writers' URL says ``redirect=false``: the driver does not follow a
member's "the primary is X" answer, so every connection goes through HAProxy
(members count client sessions by source address: none came from anywhere
but HAProxy).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster, free_port

FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}
DOC = Path(__file__).resolve().parents[2] / "docs" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HAPROXY_SOURCE = "127.0.0.2"

pytestmark = pytest.mark.skipif(
    not Path(HAPROXY).exists(),
    reason="haproxy is not installed; run scripts/install-haproxy.sh as root (Debian package)",
)


def render(c: Cluster, write_port: int, read_port: int, sock: Path) -> str:
    """docs/haproxy.cfg with this cluster's addresses and ports put in."""
    text = DOC.read_text()
    text = text.replace("bind :7700", f"bind 127.0.0.1:{write_port}")
    text = text.replace("bind :7710", f"bind 127.0.0.1:{read_port}")
    text = text.replace("/run/haproxy/admin.sock", str(sock))
    hosts = {"a": "10.0.0.1", "b": "10.0.0.2"}
    for name, host in hosts.items():
        mp = c[name]
        text = text.replace(
            f"server {name} {host}:7701 check port 8701",
            f"server {name} {mp.address} check port {c.http[name].rsplit(':', 1)[1]}",
        )
    # HAProxy connects to the members from its own address, so the members can
    # tell its sessions from anyone else's.
    text = text.replace(
        "backend litemirror_primary\n", f"backend litemirror_primary\n    source {HAPROXY_SOURCE}\n"
    )
    config_lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in config_lines if "10.0.0." in ln], "docs/haproxy.cfg changed shape"
    return text


def haproxy_stats(sock: Path) -> dict[tuple[str, str], dict[str, str]]:
    """``show stat`` from the admin socket: (backend, server) -> row."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {(r["pxname"], r["svname"]): r for r in rows}


def wait_for(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last})")


def status_of(sock: Path, backend: str) -> dict[str, str]:
    st = haproxy_stats(sock)
    return {sv: st[(backend, sv)]["status"] for sv in ("a", "b")}


class Writer(threading.Thread):
    """Inserts rows through HAProxy, retrying on errors a failover or switchover causes."""

    def __init__(self, url: str, wid: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.wid, self.stop = url, wid, stop
        self.acked: list[tuple[int, float]] = []  # (id, time acknowledged)
        self.retried = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        conn: Any = None
        n = 0
        try:
            while not self.stop.is_set():
                rid = self.wid * 1_000_000 + n
                for _attempt in range(200):
                    try:
                        if conn is None:
                            conn = litemirror.connect(self.url, isolation_level=None)
                        conn.execute("INSERT INTO t(id, worker) VALUES (?, ?)", (rid, self.wid))
                        break
                    except errors.IntegrityError:
                        break  # an earlier attempt whose answer was lost did commit it
                    except errors.Error as exc:
                        if not (
                            exc.retryable
                            or isinstance(exc, errors.OperationalError | errors.ProtocolError)
                        ):
                            raise
                        self.retried += 1
                        if conn is not None:
                            conn.close()
                            conn = None
                        time.sleep(0.05)
                else:
                    raise AssertionError(f"writer {self.wid}: row {rid} never went through")
                self.acked.append((rid, time.monotonic()))
                n += 1
                time.sleep(0.005)
        except BaseException as exc:
            self.failure = exc
        finally:
            if conn is not None:
                conn.close()


def test_clients_through_haproxy_survive_switchover(tmp_path: Path) -> None:
    c = Cluster(
        tmp_path,
        members=(("a", "failover"), ("b", "failover")),
        mirror=FAST,
        arbiter=True,
        http=True,
    )
    write_port, read_port = free_port(), free_port()
    sock = tmp_path / "haproxy.sock"
    cfg = tmp_path / "haproxy.cfg"
    proxy: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    writers: list[Writer] = []
    try:
        c.start()
        first = c.primary().name  # with an arbiter either member may start as primary
        other = "b" if first == "a" else "a"
        c[first].wait_until(lambda st: st.get("backup_active") is True, 20, "backup active")
        cfg.write_text(render(c, write_port, read_port, sock))
        check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115 - handed to the child
        proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log, stderr=log)
        log.close()
        wait_for(
            lambda: status_of(sock, "litemirror_primary") == {first: "UP", other: "DOWN"},
            15,
            f"write pool: {first} UP, {other} DOWN",
        )
        wait_for(
            lambda: status_of(sock, "litemirror_replicas") == {first: "DOWN", other: "UP"},
            15,
            f"read pool: {first} DOWN, {other} UP",
        )

        # redirect=false: the driver never follows a member's "the primary is X"
        # answer, so every connection goes through HAProxy.
        url = f"litemirror://127.0.0.1:{write_port}/app?retry=3&connect_timeout=10&redirect=false"
        with litemirror.connect(url) as conn:
            conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, worker INTEGER)")
            conn.commit()
            assert conn.member == first

        writers = [Writer(url, w, stop) for w in range(3)]
        for w in writers:
            w.start()
        time.sleep(1.5)
        before = sum(len(w.acked) for w in writers)
        assert before > 20, "writers made no progress through haproxy before the switchover"

        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "switchover",
                "--to",
                other,
                "--config",
                str(c.config_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr + c.logs()
        assert re.search(rf"switched over from {first} to {other}", res.stdout)
        switched = time.monotonic()

        wait_for(
            lambda: status_of(sock, "litemirror_primary") == {first: "DOWN", other: "UP"},
            15,
            f"write pool: {first} DOWN, {other} UP",
        )
        wait_for(
            lambda: status_of(sock, "litemirror_replicas") == {first: "UP", other: "DOWN"},
            15,
            f"read pool: {first} UP, {other} DOWN",
        )
        # Every writer keeps committing after the switchover.
        wait_for(
            lambda: all(sum(1 for _, t in w.acked if t > switched + 1.0) >= 20 for w in writers),
            30,
            "every writer committing 20 rows after the switchover",
        )
        stop.set()
        for w in writers:
            w.join(30)
            assert w.failure is None, f"writer {w.wid}: {w.failure!r}"

        acked = {rid for w in writers for rid, _ in w.acked}
        # New connections to HAProxy's port now reach the new primary through it.
        stot0 = int(haproxy_stats(sock)[("litemirror_primary", other)]["stot"])
        for _ in range(5):
            with litemirror.connect(url) as conn:
                assert conn.member == other
                rows = {r[0] for r in conn.execute("SELECT id FROM t").fetchall()}
        stot1 = int(haproxy_stats(sock)[("litemirror_primary", other)]["stot"])
        assert stot1 - stot0 == 5, (stot0, stot1)
        lost = acked - rows
        assert not lost, f"{len(lost)} acknowledged rows lost: {sorted(lost)[:10]}"

        st = haproxy_stats(sock)
        sessions = {sv: int(st[("litemirror_primary", sv)]["stot"]) for sv in ("a", "b")}
        # Every database session either member ever opened came through HAProxy.
        by_host = {name: c[name].status()["sessions_by_host"] for name in ("a", "b")}
        assert all(set(hosts) <= {HAPROXY_SOURCE} for hosts in by_host.values()), by_host
        assert by_host[first].get(HAPROXY_SOURCE) and by_host[other].get(HAPROXY_SOURCE)
        ver = c.verify()
        assert ver.returncode == 0, ver.stdout + ver.stderr
        print(
            f"rows acknowledged: {len(acked)} ({before} before the switchover); "
            f"retries: {sum(w.retried for w in writers)}; haproxy sessions {sessions}"
        )
    finally:
        stop.set()
        if proxy is not None:
            proxy.terminate()
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
        c.kill_all()
