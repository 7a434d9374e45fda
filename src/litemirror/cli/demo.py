"""``litemirror demo``: a local mirror on loopback, a workload, and what happens to it.

Three members and an arbiter on loopback — two failover members (one
primary, one synchronous ``durable`` backup) and a reporting member ``r`` —
and a writer that keeps inserting through the DB-API driver with the host
list of both failover members. The demo shows rows arriving on the other
members, kills the backup (the primary goes on alone), brings it back (it
catches up), kills the *primary* with SIGKILL (the backup takes over and the
writer carries on), restarts the old primary (it rejoins as backup), does a
planned switchover back, runs ``verify``, and finally opens a data file with
Python's own ``sqlite3`` module.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster


class Writer:
    """Inserts rows until stopped; remembers which were acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[int] = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if conn is None:
                    conn = litemirror.connect(self.url, isolation_level=None)
                conn.execute(
                    "INSERT INTO visits (id, patient, token) VALUES (?, ?, randomblob(8))",
                    (i, f"patient-{i}"),
                )
                self.acked.append(i)
            except errors.IntegrityError:
                # A retried insert whose first attempt committed just before the
                # member died: it is there, though it was never acknowledged.
                pass
            except errors.OperationalError:
                self.failed += 1
                conn = None
                time.sleep(0.05)
            time.sleep(0.002)


def _count(cluster: Cluster, member: str) -> int:
    try:
        c = litemirror.connect(
            cluster.url("app", members=[member], read_only=True), connect_timeout=1
        )
        try:
            return int(c.execute("SELECT count(*) FROM visits").fetchone()[0])
        finally:
            c.close()
    except errors.Error:
        return -1


def _show(con: Console, cluster: Cluster, label: str) -> None:
    counts = {n: _count(cluster, n) for n in ("a", "b", "r")}
    parts = [f"{n}={'down' if v < 0 else v}" for n, v in counts.items()]
    con.print(f"  [dim]{label:<28}[/] rows: " + "  ".join(parts))


def _other(name: str) -> str:
    return "b" if name == "a" else "a"


def run_demo(rows: int = 2000, keep: bool = False) -> int:
    con = Console()
    base = Path(tempfile.mkdtemp(prefix="litemirror-demo-"))
    cluster = Cluster(
        base,
        members=[("a", "failover"), ("b", "failover"), ("r", "reporting")],
        databases=["app"],
        name="demo",
        arbiter=True,
        mirror={"qos_timeout_ms": 2000, "heartbeat_ms": 250},
    )
    con.rule("[bold]litemirror demo")
    con.print(f"directory: {base}")
    writer: Writer | None = None
    try:
        cluster.start()
        p = cluster.primary().name
        b = _other(p)
        cluster[b].wait_until(lambda s: s["failover"]["state"] == "backup active", 30)
        for n, mp in cluster.members.items():
            st = mp.status()
            con.print(f"member [bold]{n}[/] ({mp.kind}) is [bold]{st['role']}[/] at {mp.address}")
        assert cluster.arbiter is not None
        con.print(f"arbiter at {cluster.arbiter.address}; {cluster[p].status()['reason']}")
        conn = litemirror.connect(cluster.url("app", members=[p]))
        conn.execute(
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, patient TEXT, "
            "at TEXT DEFAULT (datetime('now')), token BLOB)"
        )
        conn.commit()
        conn.close()

        url = cluster.url("app", members=["a", "b"], retry=3, timeout=3)
        writer = Writer(url)
        writer.thread.start()
        con.print("\n[bold]1. writes on the primary arrive on the backup and the reporting member")
        for _ in range(3):
            time.sleep(0.5)
            _show(con, cluster, "writing")

        con.print(f"\n[bold]2. kill -9 the backup {b}: the primary goes on alone")
        cluster[b].kill()
        st = cluster[p].wait_until(lambda s: s["failover"]["state"] == "primary alone", 15)
        con.print(f"  {p}: {st['reason']}")
        _show(con, cluster, "backup down")
        cluster[b].start()
        cluster[b].wait_until(lambda s: s["failover"]["state"] == "backup active", 30)
        con.print(f"  {b} restarted: it caught up and is active again")

        con.print(f"\n[bold]3. kill -9 the primary {p}: automatic failover")
        before = len(writer.acked)
        t_kill = time.monotonic()
        cluster[p].kill()
        st = cluster[b].wait_until(lambda s: s.get("role") == "primary" and s.get("writable"), 20)
        while len(writer.acked) == before and time.monotonic() - t_kill < 20:
            time.sleep(0.005)
        con.print(f"  {b}: {st['reason']}")
        con.print(
            f"  the writer carried on: first acknowledged write "
            f"{time.monotonic() - t_kill:.2f}s after the kill"
        )
        _show(con, cluster, "after failover")

        con.print(f"\n[bold]4. restart {p}: it rejoins as backup of {b}")
        cluster[p].start()
        cluster[p].wait_until(lambda s: s["failover"]["state"] == "backup active", 30)
        con.print(f"  {p}: {cluster[p].status()['reason']}")

        con.print(f"\n[bold]5. planned switchover back to {p}")
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "litemirror.cli.main",
                "switchover",
                "--to",
                p,
                "--config",
                str(cluster.config_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        con.print("  " + (r.stdout.strip() or r.stderr.strip()))
        while len(writer.acked) < rows:
            time.sleep(0.1)
        writer.stop.set()
        writer.thread.join(10)
        prim = cluster.primary()
        lsn = prim.status()["lsn"]
        for n in cluster.members:
            if n != prim.name:
                cluster[n].wait_applied(lsn)
        _show(con, cluster, "writer stopped")

        c = litemirror.connect(cluster.url("app", members=[prim.name]))
        present = {r[0] for r in c.execute("SELECT id FROM visits")}
        c.close()
        missing = [i for i in writer.acked if i not in present]
        con.print(
            f"\n[bold]6. checks[/]: {len(writer.acked)} rows acknowledged, "
            f"[{'red' if missing else 'green'}]{len(missing)} missing[/]"
        )
        v = cluster.verify()
        con.print(v.stdout.rstrip())
        cluster.stop()
        path = cluster["r"].data_dir / "databases" / "app.db"
        with sqlite3.connect(path) as plain:
            count = plain.execute("SELECT count(*) FROM visits").fetchone()[0]
        con.print(
            f"members stopped; Python's own sqlite3 opens the reporting member's "
            f"{path.name}: {count} rows"
        )
        ok = not missing and v.returncode == 0
        con.rule(
            "[green]no acknowledged write lost; all members identical" if ok else "[red]PROBLEM"
        )
        return 0 if ok else 1
    finally:
        if writer is not None:
            writer.stop.set()
        cluster.kill_all()
        if keep:
            con.print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
