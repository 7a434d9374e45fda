"""A write workload for fault tests: inserts rows and records which were acknowledged."""

from __future__ import annotations

import threading
import time

import litemirror
from litemirror import errors
from litemirror.testing.cluster import Cluster

#: The table a Workload inserts into.
TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"


class Workload:
    """Inserts rows through a host-list URL, recording what was acknowledged and by whom."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[tuple[int, float, str | None]] = []  # (id, time, member)
        self.attempted: list[int] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            self.attempted.append(i)
            try:
                if conn is None:
                    conn = litemirror.connect(self.url, isolation_level=None, connect_timeout=15)
                conn.execute("INSERT INTO t (id, v) VALUES (?, randomblob(16))", (i,))
                self.acked.append((i, time.monotonic(), conn.member))
            except errors.IntegrityError:
                pass  # a retried insert whose first try committed: present, never acked
            except errors.Error as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                conn = None
            time.sleep(0.003)

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def wait_acks(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acks: {self.errors[-3:]}"
            time.sleep(0.01)


def other(name: str) -> str:
    """The other failover member of a two-member test mirror (a <-> b)."""
    return "b" if name == "a" else "a"


def settle_backup(c: Cluster) -> str:
    """Wait until the primary commits with an active backup that knows it; return its name."""
    p = c.primary()
    p.wait_until(lambda s: s.get("backup_active") is True and s.get("writable"), 30, "backup")
    c[other(p.name)].wait_until(
        lambda s: s["failover"]["state"] == "backup active", 30, "backup knows it is active"
    )
    return p.name


def ids_on(c: Cluster, member: str, table: str = "t") -> set[int]:
    """The ``id`` column of ``table`` as one member holds it (read on that member)."""
    conn = litemirror.connect(c.url("app", members=[member], read_only=True))
    try:
        return {r[0] for r in conn.execute(f"SELECT id FROM {table}")}
    finally:
        conn.close()
