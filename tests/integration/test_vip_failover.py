"""Failover with a virtual IP, end to end: real members in network namespaces.

Topology (each box a network namespace made for this test; names carry a
random suffix so parallel runs do not collide, and all are removed after)::

    host-a    .1  member a  ─┐
    host-b    .2  member b  ─┤
    host-arb  .3  arbiter   ─┼── bridge (in its own namespace)
    client    .4  workload  ─┘        VIP .100/24, held by the primary

Member and arbiter processes are the real ``litemirror`` commands started
inside their namespace with ``ip netns exec``; the client namespace knows
only the VIP. The test process itself sits in no namespace of the mirror, so
it asks for status and runs queries through small scripts run in ``client``.
A kill -9 of the primary's process leaves its host's kernel (and so the VIP on
its interface) alive, like a crashed service on a live host.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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

PORT = 7701
ARBITER_PORT = 7790
MIRROR = "vipmirror"
FAST = {"qos_timeout_ms": 1000, "heartbeat_ms": 200}

# Asks one member for its status; "down" when it does not answer.
STATUS = textwrap.dedent(
    """
    import json, sys
    from litemirror import errors
    from litemirror.client.control import call
    from litemirror.protocol import messages as m
    try:
        print(json.dumps(call(sys.argv[1], int(sys.argv[2]), m.StatusRequest(id=1), timeout=2.0)))
    except errors.Error as exc:
        print(json.dumps({"role": "down", "error": exc.message}))
    """
)

# Runs SQL through a URL and prints the rows as JSON (or the error).
SQL = textwrap.dedent(
    """
    import json, sys, litemirror
    from litemirror import errors
    try:
        conn = litemirror.connect(sys.argv[1], isolation_level=None, connect_timeout=5)
        rows = [list(r) for r in conn.execute(sys.argv[2]).fetchall()]
        conn.close()
        print(json.dumps({"rows": rows}))
    except errors.Error as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    """
)

# The workload: inserts ids 1, 2, ... through the VIP only, one line per outcome.
# A line is written only after the outcome is known, so "ack N" means acknowledged.
WRITER = textwrap.dedent(
    """
    import os, sys, time, litemirror
    from litemirror import errors
    url, out_path, stop_path = sys.argv[1:4]
    out = open(out_path, "a", buffering=1)
    conn = None
    i = 0
    while not os.path.exists(stop_path):
        i += 1
        try:
            if conn is None:
                conn = litemirror.connect(url, isolation_level=None, connect_timeout=5)
            conn.execute("INSERT INTO t (id) VALUES (?)", (i,))
            out.write(f"ack {i} {time.time():.3f}\\n")
        except errors.IntegrityError:
            out.write(f"dup {i}\\n")  # a resent insert whose first try committed
        except errors.Error as exc:
            out.write(f"err {i} {type(exc).__name__}: {str(exc)[:200]}\\n")
            conn = None
            time.sleep(0.05)
        time.sleep(0.005)
    out.write("stopped\\n")
    """
)


def _sh(*argv: str, timeout: float = 10.0) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def _wait(what: str, check: Callable[[], Any], timeout: float, detail: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s\n{detail()}")
        time.sleep(0.1)


@dataclass
class Proc:
    """A litemirror command running inside one namespace, with its own log."""

    name: str
    ns: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        # `ip netns exec` enters the namespace and execs the command, so the pid
        # is the member's own process and kill -9 reaches it directly.
        cmd = ["ip", "netns", "exec", self.ns, sys.executable, "-m", "litemirror.cli.main"]
        self.proc = subprocess.Popen(
            [*cmd, *self.argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"--- {self.name}: no log ---"
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Site:
    """Four hosts on one bridge, a mirror config, and the processes running in them."""

    base: Path
    bad_interface_for: str | None = None
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    made: list[str] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A random /24 so a leftover of an aborted run is never mistaken for ours.
        self.subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}"
        self.bridge = f"lmvbr-{self.suffix}"
        self.ns = {h: f"{h}-{self.suffix}" for h in ("host-a", "host-b", "host-arb", "client")}
        last = {"host-a": 1, "host-b": 2, "host-arb": 3, "client": 4}
        self.ip = {h: f"{self.subnet}.{n}" for h, n in last.items()}
        self.vip_ip = f"{self.subnet}.100"
        self.vip = f"{self.vip_ip}/24"
        self.config_path = self.base / "mirror.toml"
        self.host_of = {"a": "host-a", "b": "host-b"}

    # ---------------------------------------------------------------- network

    def up(self) -> None:
        _sh("ip", "netns", "add", self.bridge)
        self.made.append(self.bridge)
        _sh("ip", "-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", self.bridge, "link", "set", "br0", "up")
        for i, (host, ns) in enumerate(self.ns.items()):
            _sh("ip", "netns", "add", ns)
            self.made.append(ns)
            # The bridge side gets a short name; inside every host the veth is "eth0".
            _sh("ip", "-n", self.bridge, "link", "add", f"v{i}", "type", "veth",
                "peer", "name", "eth0", "netns", ns)  # fmt: skip
            _sh("ip", "-n", self.bridge, "link", "set", f"v{i}", "master", "br0", "up")
            _sh("ip", "-n", ns, "addr", "add", f"{self.ip[host]}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(Exception):
                p.kill()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def mac(self, member: str) -> str:
        out = _sh("ip", "-n", self.ns[self.host_of[member]], "-br", "link", "show", "eth0")
        return out.split()[2]

    def holds_vip(self, member: str) -> bool:
        out = _sh("ip", "-n", self.ns[self.host_of[member]], "-4", "addr", "show", "dev", "eth0")
        return f" {self.vip} " in out

    # ----------------------------------------------------------------- mirror

    def write_config(self) -> None:
        lines = [
            "[mirror]",
            f'name = "{MIRROR}"',
            'databases = ["app"]',
            f'arbiter = "{self.ip["host-arb"]}:{ARBITER_PORT}"',
            f'vip = "{self.vip}"',
            *(f"{k} = {v}" for k, v in FAST.items()),
        ]
        for name, host in self.host_of.items():
            iface = "nosuch0" if name == self.bad_interface_for else "eth0"
            lines += [
                "",
                "[[members]]",
                f'name = "{name}"',
                f'address = "{self.ip[host]}:{PORT}"',
                f'data_dir = "{self.data_dir(name)}"',
                'kind = "failover"',
                f'vip_interface = "{iface}"',
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def data_dir(self, name: str) -> Path:
        return self.base / "data" / name

    def start_arbiter(self) -> None:
        listen, qos = f"{self.ip['host-arb']}:{ARBITER_PORT}", FAST["qos_timeout_ms"]
        args = f"arbiter --listen {listen} --mirror {MIRROR} --qos-timeout-ms {qos}".split()
        args += ["--data-dir", str(self.data_dir("arbiter"))]
        p = Proc("arbiter", self.ns["host-arb"], args, self.base / "arbiter.log")
        self.procs["arbiter"] = p
        p.start()

    def start_member(self, name: str) -> None:
        p = Proc(
            name,
            self.ns[self.host_of[name]],
            ["serve", "--config", str(self.config_path), "--member", name],
            self.base / f"{name}.log",
        )
        self.procs[name] = p
        p.start()

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in self.procs.values())

    # ------------------------------------------------- talking from the client

    def in_client(self, script: str, *args: str, timeout: float = 30.0) -> Any:
        argv = ["ip", "netns", "exec", self.ns["client"], sys.executable, "-c", script, *args]
        return json.loads(_sh(*argv, timeout=timeout))

    def status(self, member: str) -> dict[str, Any]:
        st: dict[str, Any] = self.in_client(STATUS, self.ip[self.host_of[member]], str(PORT))
        return st

    def wait_status(
        self, member: str, pred: Callable[[dict[str, Any]], object], what: str, timeout: float = 20
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            last = self.status(member)
            return last if pred(last) else None

        got: dict[str, Any] = _wait(
            f"member {member}: {what}", check, timeout, lambda: f"last {last}\n{self.logs()}"
        )
        return got

    def sql(self, sql: str, url: str | None = None) -> list[list[Any]]:
        url = url or f"litemirror://{self.vip_ip}:{PORT}/app"
        out = self.in_client(SQL, url, sql)
        assert "rows" in out, f"{sql} through {url}: {out.get('error')}\n{self.logs()}"
        rows: list[list[Any]] = out["rows"]
        return rows

    def sql_error(self, sql: str, url: str) -> str:
        out = self.in_client(SQL, url, sql)
        assert "error" in out, f"{sql} through {url} succeeded: {out}"
        err: str = out["error"]
        return err

    def events(self, member: str) -> list[dict[str, Any]]:
        path = self.data_dir(member) / "events.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _start_mirror(site: Site) -> None:
    """Arbiter, then a until it leads, then b until it is the active backup; table t."""
    site.write_config()
    site.start_arbiter()
    site.start_member("a")
    # a is started alone so it is the one to lead: the other member's interface
    # may be deliberately wrong, and only the takeover should meet it.
    site.wait_status("a", lambda s: s.get("role") == "primary" and s.get("writable"), "leads")
    site.start_member("b")
    site.wait_status("a", lambda s: s.get("backup_active") is True, "b active backup")
    assert site.holds_vip("a") and not site.holds_vip("b")
    site.sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(**kw: Any) -> Site:
        s = Site(tmp_path / f"s{len(made)}", **kw)
        s.base.mkdir(parents=True)
        made.append(s)
        try:
            s.up()
        except AssertionError as exc:
            if "Operation not permitted" in str(exc):
                pytest.skip(f"root, but not allowed to make network namespaces here: {exc}")
            raise
        return s

    try:
        yield make
    finally:
        for s in made:
            s.down()


@dataclass
class Writer:
    """The workload process in the client namespace and what it has reported."""

    site: Site
    out: Path
    stop_file: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"litemirror://{self.site.vip_ip}:{PORT}/app?retry=5"
        argv = [sys.executable, "-c", WRITER, url, str(self.out), str(self.stop_file)]
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.site.ns["client"], *argv],
            stderr=subprocess.PIPE,
        )
        self.site.procs["writer"] = Proc("writer", self.site.ns["client"], [], self.out, self.proc)

    def lines(self) -> list[str]:
        try:
            text = self.out.read_text()
        except FileNotFoundError:
            return []
        # Only whole lines: the last one may be half written.
        return text.split("\n")[:-1]

    def acked(self) -> list[int]:
        return [int(x.split()[1]) for x in self.lines() if x.startswith("ack ")]

    def ack_times(self) -> list[float]:
        return [float(x.split()[2]) for x in self.lines() if x.startswith("ack ")]

    def wait_acks(self, n: int, timeout: float = 20) -> None:
        _wait(
            f"{n} acknowledged inserts",
            lambda: len(self.acked()) >= n,
            timeout,
            lambda: "\n".join(self.lines()[-5:]) + "\n" + self.site.logs(),
        )

    def stop(self) -> None:
        self.stop_file.touch()
        assert self.proc is not None
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err.decode(errors="replace")


def test_vip_moves_to_the_backup_and_the_client_follows_it(
    site_factory: Callable[..., Site], tmp_path: Path
) -> None:
    site = site_factory()
    _start_mirror(site)
    w = Writer(site, tmp_path / "writer.out", tmp_path / "writer.stop")
    w.start()
    w.wait_acks(200)

    t_kill = time.time()
    site.procs["a"].kill()
    st = site.wait_status(
        "b", lambda s: s.get("role") == "primary" and s.get("writable"), "takes over"
    )
    assert st["epoch"] >= 2
    # The client knows only the VIP: writes go on once b has taken it.
    before = len(w.acked())
    w.wait_acks(before + 200)
    w.stop()
    first = min(t for t in w.ack_times() if t > t_kill)
    print(f"kill -9 to the first insert acknowledged through the VIP: {first - t_kill:.2f} s")

    acked = w.acked()
    present = {r[0] for r in site.sql("SELECT id FROM t")}
    lost = [i for i in acked if i not in present]
    assert not lost, f"acknowledged inserts missing after the failover: {lost[:20]}"
    assert site.holds_vip("b"), _sh("ip", "-n", site.ns["host-b"], "addr")
    assert any(
        e["kind"] == "vip" and "took the virtual IP" in e["message"] for e in site.events("b")
    )

    # a comes back in its namespace: it follows b and must not answer for the VIP.
    site.start_member("a")
    site.wait_status("b", lambda s: s.get("backup_active") is True, "a rejoined as active backup")
    assert site.status("a")["role"] == "backup"
    assert site.holds_vip("b")
    # The VIP still reaches the primary, which has everything.
    assert {r[0] for r in site.sql("SELECT id FROM t")} >= set(acked)
    # The address its killed predecessor added is still on host-a's interface (the
    # kernel outlived the process): rejoining as backup removes it, so only b
    # answers ARP for the VIP.
    assert not site.holds_vip("a"), _two_holders(site)


def _two_holders(site: Site) -> str:
    """What the hosts say when member a still holds the VIP beside b."""
    arping = ["arping", "-c", "2", "-I", "eth0", site.vip_ip]
    who = subprocess.run(
        ["ip", "netns", "exec", site.ns["client"], *arping],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return (
        "the restarted member a rejoined as backup but its interface still holds the "
        "VIP left by its killed predecessor:\n"
        + _sh("ip", "-n", site.ns["host-a"], "-4", "addr", "show", "dev", "eth0")
        + f"who answers ARP for the VIP (a {site.mac('a')}, b {site.mac('b')}):\n{who}"
    )


def test_takeover_is_aborted_when_the_vip_cannot_be_taken(
    site_factory: Callable[..., Site],
) -> None:
    site = site_factory(bad_interface_for="b")
    _start_mirror(site)
    for i in range(1, 21):
        site.sql(f"INSERT INTO t (id) VALUES ({i})")

    site.procs["a"].kill()
    # b would take over about a QoS timeout after the kill; it must try, fail on the
    # VIP and stay unwritable. Wait until the attempt is on record, then a while longer.
    _wait(
        "b's takeover attempt failing on the VIP",
        lambda: any("cannot take virtual IP" in e["message"] for e in site.events("b")),
        15,
        site.logs,
    )
    deadline = time.monotonic() + 3
    seen = set()
    while time.monotonic() < deadline:
        st = site.status("b")
        assert not st.get("writable"), f"b opened writes without the VIP: {st}"
        seen.add((st.get("role"), st.get("state")))
        time.sleep(0.1)
    print(f"b's (role, state) while its takeover keeps failing: {sorted(map(str, seen))}")

    events = site.events("b")
    failed = [e for e in events if "cannot take virtual IP" in e["message"]]
    assert "nosuch0" in failed[0]["message"]
    assert not any(e["kind"] == "writes_open" for e in events), events
    # The status says why b is not primary (the abort, or the retry that follows it).
    st = site.status("b")
    said = " ".join([st.get("reason", ""), *st.get("failover", {}).get("decisions", [])])
    assert "cannot take virtual IP" in said, st
    assert not site.holds_vip("b")
    # A write sent straight to b is refused.
    b_url = f"litemirror://{site.ip['host-b']}:{PORT}/app"
    err = site.sql_error("INSERT INTO t (id) VALUES (1000)", b_url)
    print(f"a write sent to b: {err}")
    assert err.startswith(("NotPrimaryError", "UnavailableError", "OperationalError")), err
