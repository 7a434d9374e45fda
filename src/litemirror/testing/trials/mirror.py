"""A mirror of real member processes with a fault proxy in front of every member.

Layout (no firewall needed): each member listens on its own loopback IP and a
private port; a :class:`~litemirror.testing.proxy.FaultProxy` route listens on
the same IP and a *public* port. Every member gets its own config file in which
its own entry is its private address (where it listens) and every other entry
is a public (proxy) address — so all member-to-member and client-to-member
traffic crosses the proxy, while each member still connects from its own IP.
``mirror.toml`` lists only public addresses; clients, ``status`` and ``verify``
use it. The harness talks to members directly (private address) for status, so
its own view is never partitioned.

One member may have its data directory on a small tmpfs, so the harness can
fill the disk (a ballast file) and empty it again.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litemirror.testing.cluster import (
    Cluster,
    MemberProcess,
    free_port,
    run_verify,
    toml_value,
)
from litemirror.testing.proxy import FaultProxy

CLIENT_IP = "127.0.0.1"


def arbiter_command() -> list[str] | None:
    """The arbiter's command line when this build has ``litemirror arbiter``, else None."""
    out = subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    if "arbiter" not in out.split("positional arguments")[0]:
        return None
    return [sys.executable, "-m", "litemirror.cli.main", "arbiter"]


class TrialMirror:
    """Members, their proxy routes, an optional arbiter and an optional tmpfs."""

    def __init__(
        self,
        base: Path,
        members: Sequence[tuple[str, str]] = (
            ("a", "failover"),
            ("b", "failover"),
            ("r", "reporting"),
        ),
        *,
        mirror: dict[str, Any] | None = None,
        sections: dict[str, dict[str, Any]] | None = None,
        tmpfs_member: str | None = None,
        tmpfs_bytes: int = 64 * 1024 * 1024,
        with_arbiter: bool = True,
    ) -> None:
        self.base = base
        self.cluster = Cluster(base, members=members, distinct_hosts=True)
        self.mirror = dict(mirror or {})
        self.sections = sections or {}
        self.proxy = FaultProxy()
        #: Public (proxy) port of each member, on the member's own IP.
        self.public: dict[str, int] = {}
        for name, mp in self.cluster.members.items():
            self.public[name] = free_port(mp.host)
            self.proxy.add_route(name, (mp.host, self.public[name]), (mp.host, mp.port))
        self.arbiter_cmd = arbiter_command() if with_arbiter else None
        self.arbiter_proc: subprocess.Popen[bytes] | None = None
        self.arbiter_log = base / "arbiter.log"
        if self.arbiter_cmd is not None:
            host = "127.0.0.9"
            port = free_port(host)
            public = free_port(host)
            self.proxy.add_route("arbiter", (host, public), (host, port))
            self.arbiter_private = f"{host}:{port}"
            self.mirror["arbiter"] = f"{host}:{public}"
        self.tmpfs: Path | None = None
        if tmpfs_member is not None:
            self.tmpfs = self._mount_tmpfs(self.cluster[tmpfs_member].data_dir, tmpfs_bytes)
        self.config_path = base / "mirror.toml"
        self._write_configs()

    # -------------------------------------------------------------- set-up

    @staticmethod
    def _mount_tmpfs(path: Path, size: int) -> Path | None:
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        return path if r.returncode == 0 else None

    def host_of(self, name: str) -> str:
        return self.cluster[name].host

    def public_address(self, name: str) -> str:
        return f"{self.cluster[name].host}:{self.public[name]}"

    def _config_text(self, own: str | None) -> str:
        lines = ["[mirror]", f"name = {toml_value(self.cluster.name)}"]
        lines.append(f"databases = {toml_value(self.cluster.databases)}")
        lines += [f"{k} = {toml_value(v)}" for k, v in self.mirror.items()]
        for sec, values in self.sections.items():
            lines += ["", f"[{sec}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()]
        for name, mp in self.cluster.members.items():
            address = mp.address if name == own else self.public_address(name)
            lines += [
                "",
                "[[members]]",
                f"name = {toml_value(name)}",
                f"address = {toml_value(address)}",
                f"data_dir = {toml_value(str(mp.data_dir))}",
                f"kind = {toml_value(mp.kind)}",
            ]
        return "\n".join(lines) + "\n"

    def _write_configs(self) -> None:
        self.config_path.write_text(self._config_text(None))
        for name, mp in self.cluster.members.items():
            mp.config_path = self.base / f"member-{name}.toml"
            mp.config_path.write_text(self._config_text(name))

    # ------------------------------------------------------------- control

    def __getitem__(self, name: str) -> MemberProcess:
        return self.cluster[name]

    @property
    def names(self) -> list[str]:
        return list(self.cluster.members)

    def start(self) -> None:
        self.start_arbiter()
        self.cluster.start()

    def start_arbiter(self) -> None:
        if self.arbiter_cmd is not None:
            log = open(self.arbiter_log, "ab")  # noqa: SIM115 - handed to the child
            self.arbiter_proc = subprocess.Popen(
                [
                    *self.arbiter_cmd,
                    "--listen",
                    self.arbiter_private,
                    "--data-dir",
                    str(self.base / "data" / "arbiter"),
                    "--mirror",
                    self.cluster.name,
                    "--qos-timeout-ms",
                    str(self.mirror.get("qos_timeout_ms", 2000)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def url(self, db: str = "app", *, members: Sequence[str] | None = None, **query: Any) -> str:
        hosts = ",".join(self.public_address(n) for n in (members or self.names))
        q = "&".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in query.items()
        )
        return f"litemirror://{hosts}/{db}" + (f"?{q}" if q else "")

    def verify(self) -> subprocess.CompletedProcess[str]:
        return run_verify(self.config_path)

    def close(self) -> None:
        """Kill everything, stop the proxy, unmount the tmpfs. Safe to call twice."""
        for mp in self.cluster.members.values():
            with contextlib.suppress(Exception):
                mp.resume()
                mp.kill()
        if self.arbiter_proc is not None and self.arbiter_proc.poll() is None:
            self.arbiter_proc.kill()
            self.arbiter_proc.wait(10)
        self.proxy.close()
        if self.tmpfs is not None:
            subprocess.run(["umount", "-l", str(self.tmpfs)], capture_output=True)
            self.tmpfs = None
