"""Start, stop and kill real member processes on loopback.

Everything here drives the real ``litemirror serve`` command in a child
process, with its own log file, so tests kill real processes and read real
files. Ports are picked free by binding to port 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from litemirror import errors
from litemirror.client.credentials import ClientTls, use_tls
from litemirror.security.certs import Role, create_ca, issue

T = TypeVar("T")

_ports = random.Random()
#: Ports given out by this process: a member not yet started does not hold its
#: port, so binding alone would hand it out twice.
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on, below the kernel's ephemeral range.

    Ports handed out by binding to port 0 come from the ephemeral range, which
    outgoing connections also draw from; under load one of them can take the
    port before the member binds it. Picking below that range avoids it.
    """
    for _ in range(200):
        # Its own generator: a test that seeds ``random`` must not make two
        # clusters (or a member and the arbiter) draw the same ports.
        port = _ports.randint(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def run_verify(config_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``litemirror verify`` on a mirror's config; the caller checks the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "verify", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def read_events(data_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The events a member or the arbiter wrote to ``data_dir/events.jsonl``, oldest first.

    Only those of ``kind`` when given; none while the file does not exist yet.
    """
    path = data_dir / "events.jsonl"
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [ev for ev in found if kind is None or ev.get("kind") == kind]


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``predicate()`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


def _signal(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)


def _limit_descriptors(nofile: int | None) -> Any:
    """A ``preexec_fn`` that gives the child at most ``nofile`` descriptors (None: as we have)."""
    if nofile is None:
        return None

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return limit


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


class _Child:
    """What a member and the arbiter have in common: a child process, its log, its event log."""

    proc: subprocess.Popen[bytes] | None
    data_dir: Path
    log_path: Path

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        _signal(self.proc, signal.SIGSTOP)

    def resume(self) -> None:
        _signal(self.proc, signal.SIGCONT)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """What this process wrote to its event log (of ``kind``), oldest first."""
        return read_events(self.data_dir, kind)


@dataclass
class MemberProcess(_Child):
    name: str
    kind: str
    port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    #: Loopback address the member listens on (and connects from).
    host: str = "127.0.0.1"
    #: HOST:PORT of the member's HTTP API, written to the config when set.
    http: str | None = None
    #: (user, password) the status calls log in with (a mirror with auth.require shows
    #: callers without a login only role and state); see Cluster.log_in_as.
    login: tuple[str, str] | None = None
    #: RLIMIT_NOFILE (soft and hard) of the process; None: this process's own.
    nofile: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, wait: bool = True, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"member {self.name} is already running")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "serve",
                "--config",
                str(self.config_path),
                "--member",
                self.name,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_limit_descriptors(self.nofile),
        )
        log.close()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        from litemirror.client.control import call
        from litemirror.protocol import messages as m

        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"member {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                st = call(
                    self.host, self.port, m.StatusRequest(id=1), timeout=1.0, credentials=self.login
                )
                role = st.get("role")
                if role not in (None, "starting", "waiting") and (
                    role != "primary" or st.get("writable")
                ):
                    return
            except errors.Error:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"member {self.name} not ready after {timeout}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait_until(self, predicate: Any, timeout: float = 30.0, what: str = "") -> dict[str, Any]:
        """Poll this member's status until ``predicate(status)`` holds; return that status."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = self.status()
                if predicate(last):
                    return last
            except errors.Error:
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"member {self.name}: {what or 'condition'} not reached within "
            f"{timeout}s; last status {last}\n{self.log_tail()}"
        )

    def wait_applied(self, lsn: int, timeout: float = 30.0) -> dict[str, Any]:
        def ok(st: dict[str, Any]) -> bool:
            if st.get("role") == "primary":
                return int(st.get("lsn") or 0) >= lsn
            return int((st.get("replication") or {}).get("applied_lsn") or 0) >= lsn

        return self.wait_until(ok, timeout, f"applied LSN {lsn}")

    def status(self) -> dict[str, Any]:
        from litemirror.client.control import call
        from litemirror.protocol import messages as m

        deadline = time.monotonic() + 30.0
        while True:
            try:
                return call(
                    self.host, self.port, m.StatusRequest(id=1), timeout=5.0, credentials=self.login
                )
            except errors.AuthenticationError as exc:
                # The login back-off holds this host (a test failed logins from it): the
                # harness waits it out like any client told to retry.
                if "not checked" not in exc.message or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait for a clean exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@dataclass
class ArbiterProcess(_Child):
    """A real ``litemirror arbiter`` process."""

    port: int
    data_dir: Path
    log_path: Path
    mirror: str
    host: str = "127.0.0.1"
    qos_timeout_ms: int = 2000
    proc: subprocess.Popen[bytes] | None = None
    #: Start with ``--config`` (the mirror's [tls] and members apply).
    config_path: Path | None = None
    #: RLIMIT_NOFILE (soft and hard) of the process; None: this process's own.
    nofile: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "arbiter",
                "--listen",
                self.address,
                "--data-dir",
                str(self.data_dir),
                "--mirror",
                self.mirror,
                "--qos-timeout-ms",
                str(self.qos_timeout_ms),
                *(["--config", str(self.config_path)] if self.config_path else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_limit_descriptors(self.nofile),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"arbiter exited:\n{self.log_tail()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"arbiter not listening after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Cluster:
    """A mirror of real member processes described by a generated config file."""

    def __init__(
        self,
        base: Path,
        members: Sequence[tuple[str, str]] = (("a", "failover"),),
        databases: Sequence[str] = ("app",),
        sections: dict[str, dict[str, Any]] | None = None,
        mirror: dict[str, Any] | None = None,
        name: str = "test",
        distinct_hosts: bool = False,
        arbiter: bool = False,
        tls: bool = False,
        tls_require: bool = False,
        http: bool = False,
    ) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.config_path = self.base / "mirror.toml"
        self.name = name
        self.databases = list(databases)
        self.sections = sections or {}
        self.mirror_extra = mirror or {}
        self.members: dict[str, MemberProcess] = {}
        self.arbiter: ArbiterProcess | None = None
        self.login: tuple[str, str] | None = None
        #: Give each member its own loopback address (127.0.0.10, .11, ...), so a
        #: proxy or firewall can tell members apart by source address.
        self.distinct_hosts = distinct_hosts
        for mname, kind in members:
            host = self._next_host()
            self.members[mname] = MemberProcess(
                name=mname,
                kind=kind,
                host=host,
                port=free_port(host),
                data_dir=self.base / "data" / mname,
                config_path=self.config_path,
                log_path=self.base / f"{mname}.log",
            )
        if arbiter:
            host = "127.0.0.9" if distinct_hosts else "127.0.0.1"
            qos = int((mirror or {}).get("qos_timeout_ms", 2000))
            self.arbiter = ArbiterProcess(
                port=free_port(host),
                host=host,
                data_dir=self.base / "data" / "arbiter",
                log_path=self.base / "arbiter.log",
                mirror=name,
                qos_timeout_ms=qos,
                config_path=self.config_path if tls or tls_require else None,
            )
        #: With ``http``: every member serves the HTTP API; member name -> HOST:PORT.
        self.serve_http = http
        self.http: dict[str, str] = {}
        for mp in self.members.values():
            self._give_http(mp)
        #: With ``tls``: a private CA and a certificate per member (SAN = its
        #: loopback address) and for the arbiter, under ``base/certs``.
        self.certs: Path | None = None
        if tls or tls_require:
            self.certs = self.base / "certs"
            create_ca(self.certs)
            for mp in self.members.values():
                self.issue_member(mp.name, mp.host)
            if self.arbiter is not None:
                self.issue_member("arbiter", self.arbiter.host)
            self.sections.setdefault(
                "tls",
                {
                    "ca": str(self.certs / "ca.crt"),
                    "cert": str(self.certs / "members" / "{name}.crt"),
                    "key": str(self.certs / "members" / "{name}.key"),
                    "require": tls_require,
                },
            )
            # Status calls and the CLI of this process reach the members over TLS.
            use_tls(ClientTls(str(self.certs / "ca.crt")))
        self.write_config()

    def _give_http(self, mp: MemberProcess) -> None:
        if self.serve_http and mp.http is None:
            mp.http = f"{mp.host}:{free_port(mp.host)}"
            self.http[mp.name] = mp.http

    def issue_member(self, name: str, host: str, **kwargs: Any) -> Path:
        """(Re)issue member ``name``'s certificate from the cluster's CA; its path."""
        assert self.certs is not None, "the cluster was made without tls"
        return issue(self.certs, name, Role.MEMBER, hosts=[host], force=True, **kwargs).cert

    def log_in_as(self, user: str, password: str) -> None:
        """Make this harness's status calls log in as ``user`` (auth.require mirrors)."""
        self.login = (user, password)
        for mp in self.members.values():
            mp.login = self.login

    def client_tls(self) -> dict[str, str]:
        """URL query options a driver needs to reach this cluster (empty without TLS)."""
        return {"tls_ca": str(self.certs / "ca.crt")} if self.certs is not None else {}

    def _next_host(self) -> str:
        if not getattr(self, "distinct_hosts", False):
            return "127.0.0.1"
        return f"127.0.0.{10 + len(self.members)}"

    def write_config(self) -> None:
        lines = [
            "[mirror]",
            f"name = {toml_value(self.name)}",
            f"databases = {toml_value(self.databases)}",
        ]
        lines += [f"{k} = {toml_value(v)}" for k, v in self.mirror_extra.items()]
        if self.arbiter is not None:
            lines.append(f"arbiter = {toml_value(self.arbiter.address)}")
        for sec, values in self.sections.items():
            lines += ["", f"[{sec}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()]
        for mp in self.members.values():
            lines += [
                "",
                "[[members]]",
                f"name = {toml_value(mp.name)}",
                f"address = {toml_value(mp.address)}",
                f"data_dir = {toml_value(str(mp.data_dir))}",
                f"kind = {toml_value(mp.kind)}",
            ]
            if mp.http is not None:
                lines.append(f"http = {toml_value(mp.http)}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def __getitem__(self, name: str) -> MemberProcess:
        return self.members[name]

    def start(self, *names: str) -> None:
        if not names and self.arbiter is not None and not self.arbiter.running:
            self.arbiter.start()
        for n in names or tuple(self.members):
            self.members[n].start(wait=False)
        for n in names or tuple(self.members):
            self.members[n].wait_ready()

    def add_member(self, name: str, kind: str) -> MemberProcess:
        host = self._next_host()
        mp = MemberProcess(
            name=name,
            kind=kind,
            host=host,
            port=free_port(host),
            data_dir=self.base / "data" / name,
            config_path=self.config_path,
            log_path=self.base / f"{name}.log",
            login=self.login,
        )
        self.members[name] = mp
        self._give_http(mp)
        if self.certs is not None:
            self.issue_member(name, host)
        self.write_config()
        return mp

    def primary(self) -> MemberProcess:
        for mp in self.members.values():
            if mp.running:
                try:
                    if mp.status().get("role") == "primary":
                        return mp
                except errors.Error:
                    continue
        raise AssertionError("no member is primary")

    def run_cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``litemirror ARGS --config <this mirror's config>``."""
        return subprocess.run(
            [sys.executable, "-m", "litemirror.cli.main", *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def verify(self) -> subprocess.CompletedProcess[str]:
        return run_verify(self.config_path)

    def url(self, db: str = "app", *, members: Sequence[str] | None = None, **query: Any) -> str:
        query = {**self.client_tls(), **query}
        hosts = ",".join(self.members[n].address for n in (members or list(self.members)))
        q = (
            (
                "?"
                + urlencode(
                    {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
                )
            )
            if query
            else ""
        )
        return f"litemirror://{hosts}/{db}{q}"

    def stop(self) -> None:
        for mp in self.members.values():
            with contextlib.suppress(Exception):
                mp.stop()
        if self.arbiter is not None:
            with contextlib.suppress(Exception):
                self.arbiter.stop()

    def kill_all(self) -> None:
        if self.certs is not None:
            use_tls(None)
        for mp in self.members.values():
            with contextlib.suppress(Exception):
                mp.resume()
                mp.kill()
        if self.arbiter is not None:
            with contextlib.suppress(Exception):
                self.arbiter.resume()
                self.arbiter.kill()

    def logs(self) -> str:
        out = "\n".join(f"--- {n} ---\n{mp.log_tail()}" for n, mp in self.members.items())
        if self.arbiter is not None:
            out += f"\n--- arbiter ---\n{self.arbiter.log_tail()}"
        return out


@contextlib.contextmanager
def running_cluster(base: Path, **kwargs: Any) -> Iterator[Cluster]:
    c = Cluster(base, **kwargs)
    try:
        c.start()
        yield c
    finally:
        c.stop()
