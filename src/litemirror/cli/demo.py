"""``litemirror demo``: a local mirror on loopback, a workload, and what happens to it.

Today the demo runs one member: it writes rows through the DB-API driver in
one-shot and interactive transactions, kills the member with SIGKILL in the
middle of the stream, restarts it, and shows that every acknowledged row is
there — then opens the data file with Python's own ``sqlite3`` module.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster


def run_demo(rows: int = 2000, keep: bool = False) -> int:
    con = Console()
    base = Path(tempfile.mkdtemp(prefix="litemirror-demo-"))
    cluster = Cluster(base, members=[("a", "failover")], databases=["app"], name="demo")
    con.rule("[bold]litemirror demo")
    con.print(f"directory: {base}")
    try:
        cluster.start()
        a = cluster["a"]
        con.print(f"member [bold]a[/] is up at {a.address} (pid {a.proc.pid if a.proc else '?'})")
        url = cluster.url("app")
        conn = litemirror.connect(url)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, "
            "patient TEXT, at TEXT DEFAULT (datetime('now')), token BLOB)"
        )
        conn.commit()

        acked: list[int] = []
        stop = threading.Event()

        def writer() -> None:
            c = litemirror.connect(url, isolation_level=None)
            i = 0
            while not stop.is_set() and i < rows:
                i += 1
                try:
                    if i % 2:
                        c.execute(
                            "INSERT INTO visits (id, patient, token) VALUES (?, ?, randomblob(8))",
                            (i, f"patient-{i}"),
                        )
                    else:
                        c.execute("BEGIN")
                        c.execute(
                            "INSERT INTO visits (id, patient) VALUES (?, ?)", (i, f"patient-{i}")
                        )
                        c.execute("COMMIT")
                    acked.append(i)
                except errors.OperationalError:
                    break
            c.close()

        t0 = time.monotonic()
        th = threading.Thread(target=writer)
        th.start()
        while len(acked) < rows // 2 and th.is_alive():
            time.sleep(0.01)
        con.print(
            f"[yellow]kill -9[/] member a after {len(acked)} acknowledged rows "
            f"({time.monotonic() - t0:.2f}s)"
        )
        a.kill()
        stop.set()
        th.join()
        n_acked = len(acked)
        con.print(f"the writer saw the member go away; {n_acked} rows were acknowledged")
        a.start()
        con.print("member a restarted: journal recovered, databases replayed")
        conn = litemirror.connect(url)
        present = {r[0] for r in conn.execute("SELECT id FROM visits").fetchall()}
        missing = [i for i in acked if i not in present]
        extra = present - set(acked)
        con.print(
            f"rows present: {len(present)}; acknowledged but missing: "
            f"[{'red' if missing else 'green'}]{len(missing)}[/]; "
            f"present but never acknowledged (in flight at the kill): {len(extra)}"
        )
        conn.close()
        cluster.stop()
        path = a.data_dir / "databases" / "app.db"
        with sqlite3.connect(path) as plain:
            count = plain.execute("SELECT count(*) FROM visits").fetchone()[0]
        con.print(f"after stopping, Python's own sqlite3 opens {path.name}: {count} rows")
        ok = not missing and count == len(present)
        con.rule("[green]no acknowledged write lost" if ok else "[red]PROBLEM")
        return 0 if ok else 1
    finally:
        cluster.kill_all()
        if keep:
            con.print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
