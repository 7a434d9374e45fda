"""A member killed with SIGKILL mid-stream loses no acknowledged transaction."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import litemirror
from litemirror import errors


def _writer(
    url: str, start: int, count: int, acked: list[int], attempted: list[int], stop: threading.Event
) -> None:
    conn = litemirror.connect(url, isolation_level=None)
    i = start
    while i < start + count and not stop.is_set():
        try:
            attempted.append(i)
            if i % 3 == 0:
                # interactive transaction of two rows over several round trips
                conn.execute("BEGIN")
                conn.execute("INSERT INTO t (id, grp, v) VALUES (?, ?, randomblob(16))", (i, i))
                conn.execute("INSERT INTO t (id, grp, v) VALUES (?, ?, randomblob(16))", (-i, i))
                conn.execute("COMMIT")
            else:
                conn.execute("INSERT INTO t (id, grp, v) VALUES (?, ?, randomblob(16))", (i, i))
            acked.append(i)
        except errors.OperationalError:
            return
        i += 1


def test_kill_9_mid_stream_keeps_every_acknowledged_row(member: Any) -> None:
    url = member.url()
    conn = litemirror.connect(url)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, v BLOB)")
    conn.commit()
    conn.close()

    acked: list[int] = []
    attempted: list[int] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(url, 1 + k * 100_000, 2500, acked, attempted, stop))
        for k in range(4)
    ]
    for t in threads:
        t.start()
    # Kill once a good part of the 10,000 transactions have been acknowledged.
    deadline = time.monotonic() + 120
    while len(acked) < 4000 and time.monotonic() < deadline:
        time.sleep(0.005)
    member.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 4000

    member.start()
    conn = litemirror.connect(url)
    rows = conn.execute("SELECT id, grp FROM t").fetchall()
    ids = {r[0] for r in rows}
    for i in acked:
        assert i in ids, f"acknowledged transaction {i} lost"
        if i % 3 == 0:
            assert -i in ids, f"half of acknowledged transaction {i} lost"
    # No partial transaction: both rows of an interactive transaction or none.
    groups: dict[int, int] = {}
    for _, grp in rows:
        groups[grp] = groups.get(grp, 0) + 1
    for grp, n in groups.items():
        assert n == (2 if grp % 3 == 0 else 1), f"transaction {grp} is partial"
    # Anything present was at least attempted (in flight at the kill).
    assert {g for g in groups} <= set(attempted)

    # Finish the stream after the restart: the member takes writes again.
    conn.execute("INSERT INTO t (id, grp) VALUES (?, ?)", (10**9, 10**9))
    conn.commit()
    conn.close()
    member.stop()

    # The data file is plain SQLite: the stdlib module reads the same rows.
    path = member.data_dir / "databases" / "app.db"
    with sqlite3.connect(path) as plain:
        plain_ids = {r[0] for r in plain.execute("SELECT id FROM t")}
        assert plain.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert plain_ids == ids | {10**9}


def test_ten_thousand_rows_mixed_transactions(member: Any) -> None:
    url = member.url()
    conn = litemirror.connect(url)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, v BLOB)")
    conn.commit()
    acked: list[int] = []
    attempted: list[int] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(url, 1 + k * 100_000, 2500, acked, attempted, stop))
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(acked) == 10_000
    n = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    assert n == 10_000 + sum(1 for i in acked if i % 3 == 0)
