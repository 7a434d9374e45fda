"""A thousand databases in one member: bounded threads and open files."""

from __future__ import annotations

import os
from typing import Any

import litemirror


def _proc_stats(pid: int) -> tuple[int, int]:
    threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def test_thousand_databases_with_bounded_threads_and_files(cluster_factory: Any) -> None:
    names = [f"tenant{i:04d}" for i in range(1000)]
    c = cluster_factory(
        databases=names,
        sections={"server": {"threads": 4, "max_open_databases": 32, "readers_per_database": 1}},
    )
    c.start()
    proc = c["a"].proc
    assert proc is not None
    for name in names:
        conn = litemirror.connect(c.url(name), isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES (?)", (f"hello {name}",))
        conn.close()
    threads, files = _proc_stats(proc.pid)
    st = c["a"].status()
    assert st["databases"] == 1000
    # Open databases stay within the limit (plus the ones in use right now).
    assert st["open_databases"] <= 32
    # Threads: 4 SQLite workers + journal writer + a few asyncio helpers, not one per database.
    assert threads <= 16, threads
    # Files: journal, listening socket, and at most ~32 databases' handles.
    assert files <= 32 * 6 + 50, files
    # Every database holds its row, read back through reopened connections.
    for name in names[::97]:
        conn = litemirror.connect(c.url(name))
        assert conn.execute("SELECT body FROM notes").fetchall() == [(f"hello {name}",)]
        conn.close()
