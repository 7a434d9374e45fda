"""PostgreSQL primary + one synchronous standby, started by the bench on loopback.

Theory of operation:

1. ``initdb`` a primary in ``<base>/pg-<variant>/primary`` with sync-rep
   settings appended to its postgresql.conf (later lines win), start it.
   ``synchronous_standby_names`` names the standby from the start, so any
   commit made before the standby streams would hang: nothing is written
   until step 4.
2. ``pg_basebackup -R -X stream`` copies it into ``.../standby``; the
   standby's postgresql.auto.conf gets its own port and a
   ``primary_conninfo`` carrying ``application_name=standby1``, the name the
   primary waits for.
3. Start the standby and poll ``pg_stat_replication`` on the primary until it
   shows ``standby1`` streaming with ``sync_state = 'sync'``.
4. Create the schema and prefill through the primary (so the standby has it
   too, synchronously).

PostgreSQL refuses to run as root, so when the bench is root every server
command runs as the ``postgres`` user (``runuser``), which owns the data
dirs; the bench's temp dir gets o+x so that user can reach them. Clients
connect over TCP to 127.0.0.1 like litemirror's. ``stop()`` (also run when
``start()`` fails part way) stops both servers, ``-m fast`` then
``-m immediate``; the bench removes the temp dir.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from litemirror.testing.cluster import free_port

from .harness import Factory
from .systems import POSTGRES, make_step

INSTALL_SCRIPT = Path(__file__).resolve().parent / "install_postgres.sh"
STANDBY_NAME = "standby1"
USER = "bench"


class PostgresError(RuntimeError):
    """PostgreSQL could not be installed, started or stopped for the bench."""


def find_bindir(install: bool = True) -> Path:
    """The newest /usr/lib/postgresql/<ver>/bin, installing Debian's package if missing."""
    found = _bindirs()
    if not found and install:
        proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False)
        if proc.returncode != 0:
            raise PostgresError(
                f"{INSTALL_SCRIPT} failed with exit code {proc.returncode}; PostgreSQL is "
                "needed for the comparison: install Debian's 'postgresql' package, or run "
                "the bench with --no-postgres"
            )
        found = _bindirs()
    if not found:
        raise PostgresError(
            "no PostgreSQL server under /usr/lib/postgresql/*/bin: install Debian's "
            "'postgresql' package (bench/install_postgres.sh does it as root)"
        )
    return found[-1]


def _bindirs() -> list[Path]:
    dirs = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    return sorted((d for d in dirs if (d / "pg_basebackup").exists()), key=version)


class PostgresSyncRep:
    """A primary and one synchronous standby (``synchronous_commit`` on or remote_apply)."""

    def __init__(self, base: Path, synchronous_commit: str = "on", *, prefill: bool = True) -> None:
        if synchronous_commit not in ("on", "remote_apply"):
            raise ValueError(
                f"synchronous_commit must be 'on' or 'remote_apply', not {synchronous_commit!r}"
            )
        self.synchronous_commit = synchronous_commit
        self.prefill = prefill
        self.name = (
            "postgresql (sync on)"
            if synchronous_commit == "on"
            else "postgresql (sync remote_apply)"
        )
        self.base = Path(base)
        self.root = self.base / f"pg-{synchronous_commit.replace('_', '-')}"
        self.primary = self.root / "primary"
        self.standby = self.root / "standby"
        self.port = 0
        self.standby_port = 0
        self.version = ""
        self._bindir: Path | None = None
        self._run_as: str | None = None
        self._started: list[Path] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> PostgresSyncRep:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        self._bindir = find_bindir()
        self._prepare_dirs()
        self.port, self.standby_port = free_port(), free_port()
        self._run(
            "initdb", "-D", str(self.primary), "-U", USER, "--auth=trust",
            "--encoding=UTF8", "--no-locale",
            # Only initdb's own flush of the template files: the running
            # servers keep fsync=on.
            "--no-sync",
        )  # fmt: skip
        self._append_conf(
            self.primary / "postgresql.conf",
            {
                "listen_addresses": "127.0.0.1",
                "port": self.port,
                "unix_socket_directories": str(self.root),
                "max_connections": 200,
                "fsync": "on",
                "wal_level": "replica",
                "synchronous_commit": self.synchronous_commit,
                "synchronous_standby_names": STANDBY_NAME,
            },
        )
        self._pg_ctl_start(self.primary)
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
            "-D", str(self.standby), "-X", "stream", "--checkpoint=fast", "-R",
        )  # fmt: skip
        self._append_conf(
            self.standby / "postgresql.auto.conf",
            {
                "port": self.standby_port,
                "primary_conninfo": (
                    f"host=127.0.0.1 port={self.port} user={USER} application_name={STANDBY_NAME}"
                ),
                **self.standby_settings(),
            },
        )
        self._pg_ctl_start(self.standby)
        self._wait_sync()
        with psycopg.connect(self.dsn, autocommit=True) as c:
            self.version = str(c.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            for stmt in POSTGRES.schema + (POSTGRES.prefill if self.prefill else ()):
                c.execute(stmt)

    def standby_settings(self) -> dict[str, object]:
        """Extra settings for the standby's postgresql.auto.conf (none here)."""
        return {}

    def stop(self) -> None:
        for datadir in reversed(self._started):
            for mode in ("fast", "immediate"):
                proc = self._run(
                    "pg_ctl", "-D", str(datadir), "-m", mode, "-w", "-t", "30", "stop",
                    check=False,
                )  # fmt: skip
                if proc.returncode == 0 or not (datadir / "postmaster.pid").exists():
                    break
            else:
                self._kill_postmaster(datadir)
        self._started.clear()

    def empty_blobs(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            for stmt in POSTGRES.empty_blobs:
                c.execute(stmt)

    # -- clients -----------------------------------------------------------

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={USER}"

    def insert_factory(self) -> Factory:
        return self.factory("insert")

    def factory(self, workload: str) -> Factory:
        dsn = self.dsn

        def make(index: int) -> Callable[[int], None]:
            # autocommit for the one-statement workloads (litemirror's
            # isolation_level=None); tpcb lets the first statement open the
            # transaction and ends it with commit(), like litemirror's default.
            conn = psycopg.connect(dsn, autocommit=workload != "tpcb")
            return make_step(workload, conn, index, POSTGRES)

        return make

    def replication_state(self) -> dict[str, Any]:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            row = c.execute(
                "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,),
            ).fetchone()
        return {"state": row[0], "sync_state": row[1]} if row else {}

    # -- helpers -----------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresError(
                "running as root but there is no 'postgres' user to run PostgreSQL as "
                "(PostgreSQL refuses root); reinstall Debian's 'postgresql' package"
            ) from exc
        self._run_as = "postgres"
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        # mkdtemp makes the bench dir 0700: let the postgres user traverse it.
        os.chmod(self.base, os.stat(self.base).st_mode | 0o001)
        probe = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-w", str(self.root)], check=False
        )
        if probe.returncode != 0:
            raise PostgresError(
                f"the postgres user cannot write {self.root}; give 'others' search (x) "
                "permission on its parent directories or set BENCH_DIR to a directory it can reach"
            )

    def _cmd(self, tool: str, *args: str) -> list[str]:
        assert self._bindir is not None
        cmd = [str(self._bindir / tool), *args]
        return ["runuser", "-u", self._run_as, "--", *cmd] if self._run_as else cmd

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._bindir is None:
            return subprocess.CompletedProcess([tool], 1, "", "")
        proc = subprocess.run(
            self._cmd(tool, *args), capture_output=True, text=True, check=False, timeout=300
        )
        if check and proc.returncode != 0:
            raise PostgresError(
                f"{tool} failed with exit code {proc.returncode} for {self.name} "
                f"in {self.root}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def _append_conf(self, path: Path, settings: dict[str, object]) -> None:
        lines = ["", "# litemirror bench: synchronous replication"]
        for key, value in settings.items():
            text = str(value).replace("'", "''")
            lines.append(f"{key} = '{text}'")
        with open(path, "a") as f:
            f.write("\n".join(lines) + "\n")

    def _pg_ctl_start(self, datadir: Path) -> None:
        log = datadir.parent / f"{datadir.name}.log"
        if datadir not in self._started:
            self._started.append(datadir)
        proc = self._run(
            "pg_ctl", "-D", str(datadir), "-l", str(log), "-w", "-t", "60", "start", check=False
        )
        if proc.returncode != 0:
            raise PostgresError(
                f"{datadir.name} of {self.name} did not start (pg_ctl exit {proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{_tail(log)}"
            )

    def _wait_sync(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.replication_state()
            if state == {"state": "streaming", "sync_state": "sync"}:
                return
            time.sleep(0.1)
        raise PostgresError(
            f"{STANDBY_NAME} of {self.name} is not a streaming synchronous standby after "
            f"{timeout:g}s (pg_stat_replication: {state or 'no row'}); standby log:\n"
            f"{_tail(self.root / 'standby.log')}"
        )

    def _kill_postmaster(self, datadir: Path) -> None:
        # Last resort when pg_ctl could not stop it: the pid file names the
        # postmaster this bench started; its backends exit when it is gone.
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 9)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
