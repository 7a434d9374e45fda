"""Client workloads that record a history, and a status monitor.

Every operation is recorded as an ``invoke`` and then exactly one of ``ok``
(acknowledged), ``fail`` (definitely not applied: the member said no, or the
transaction never reached COMMIT) or ``info`` (unknown: the connection was lost
while COMMIT, or an autocommit statement, was in flight). Checkers treat
``info`` as "may or may not be present" — never as lost, never as phantom.

Workers use the real DB-API driver with a URL listing every member (through
the fault proxy) and ``retry`` on, exactly as an application would.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import litemirror
from litemirror import errors
from litemirror.client.dbapi import Connection

#: Errors after which the outcome of a COMMIT (or an autocommit write) is unknown.
INDEFINITE: tuple[type[BaseException], ...] = (
    errors.ConnectionLostError,
    errors.TransactionAbortedError,
    # The primary was deposed while the commit waited for the backup: the new
    # primary may hold it.
    errors.CommitUnknownError,
    errors.ProtocolError,
    errors.InterfaceError,
    # Raised by a retry's reconnect: the first attempt may have been applied.
    errors.UnavailableError,
    OSError,
    TimeoutError,
)

ACCOUNTS = 8
INITIAL_BALANCE = 100
SCHEMA = (
    "CREATE TABLE appends (id INTEGER PRIMARY KEY, proc INTEGER NOT NULL, mode TEXT NOT NULL)",
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
    # One row per transfer, written in its transaction: readers note the newest
    # they see, and every row seen anywhere must exist at the end.
    "CREATE TABLE transfers (id INTEGER PRIMARY KEY, proc INTEGER NOT NULL, "
    "src INTEGER NOT NULL, dst INTEGER NOT NULL, amount INTEGER NOT NULL)",
)
#: Tables whose newest row per client process the readers note.
SEEN_TABLES = ("appends", "transfers")


class History:
    """Thread-safe, append-only list of events, mirrored to a JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file = open(path, "w", buffering=1)  # noqa: SIM115 - closed by close()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 4)

    def add(self, **event: Any) -> dict[str, Any]:
        event["t"] = self.now()
        with self._lock:
            self.events.append(event)
            self._file.write(json.dumps(event, default=str) + "\n")
        return event

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class Worker(threading.Thread):
    """One client process: appends and bank transfers in a loop until stopped."""

    def __init__(
        self,
        proc: int,
        url: str,
        auto_url: str,
        history: History,
        stop: threading.Event,
        seed: int,
    ) -> None:
        super().__init__(name=f"worker-{proc}", daemon=True)
        self.proc = proc
        self.url = url
        self.auto_url = auto_url
        self.auto: Connection | None = None
        self.h = history
        self.stop = stop
        self.rng = random.Random(seed)
        self.seq = 0
        self.conn: Connection | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            if self.rng.random() < 0.6:
                self.append(autocommit=self.rng.random() < 0.3)
            else:
                self.transfer()

    def _connection(self, autocommit: bool) -> Connection:
        if autocommit:
            if self.auto is None:
                self.auto = litemirror.connect(self.auto_url, isolation_level=None)
            return self.auto
        if self.conn is None:
            self.conn = litemirror.connect(self.url)
        return self.conn

    def _drop(self) -> None:
        for conn in (self.conn, self.auto):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # the connection is gone either way
                    pass
        self.conn = self.auto = None
        time.sleep(self.rng.uniform(0.02, 0.2))

    def _ack(self, op: dict[str, Any], conn: Connection) -> None:
        self.h.add(
            type="ok",
            f=op["f"],
            proc=self.proc,
            value=op["value"],
            member=conn.member,
            lsn=conn.last_lsn,
        )

    def append(self, *, autocommit: bool) -> None:
        self.seq += 1
        key = self.proc * 1_000_000 + self.seq
        mode = "auto" if autocommit else "txn"
        op = self.h.add(type="invoke", f="append", proc=self.proc, value=key, mode=mode)
        committing = autocommit
        try:
            conn = self._connection(autocommit)
            conn.execute(
                "INSERT INTO appends (id, proc, mode) VALUES (?, ?, ?)", (key, self.proc, mode)
            )
            committing = True
            if not autocommit:
                conn.commit()
            self._ack(op, conn)
        except Exception as exc:  # every outcome is recorded
            kind = "info" if committing and isinstance(exc, INDEFINITE) else "fail"
            if not isinstance(exc, errors.Error) and not isinstance(exc, INDEFINITE):
                kind = "info"
            self.h.add(
                type=kind,
                f="append",
                proc=self.proc,
                value=key,
                error=_error(exc),
                stage="commit" if committing else "statement",
            )
            self._drop()

    def transfer(self) -> None:
        a, b = self.rng.sample(range(1, ACCOUNTS + 1), 2)
        amount = self.rng.randint(1, 30)
        self.seq += 1
        key = self.proc * 1_000_000 + self.seq
        value = [a, b, amount, key]
        op = self.h.add(type="invoke", f="transfer", proc=self.proc, value=value)
        committing = False
        try:
            conn = self._connection(autocommit=False)
            conn.execute("BEGIN")
            (bal,) = conn.execute("SELECT balance FROM accounts WHERE id = ?", (a,)).fetchone()
            if bal < amount:
                conn.rollback()
                self.h.add(
                    type="fail",
                    f="transfer",
                    proc=self.proc,
                    value=value,
                    error="insufficient funds",
                )
                return
            conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, a))
            conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))
            conn.execute(
                "INSERT INTO transfers (id, proc, src, dst, amount) VALUES (?, ?, ?, ?, ?)",
                (key, self.proc, a, b, amount),
            )
            committing = True
            conn.commit()
            self._ack(op, conn)
        except Exception as exc:  # every outcome is recorded
            kind = "info" if committing and isinstance(exc, INDEFINITE) else "fail"
            self.h.add(type=kind, f="transfer", proc=self.proc, value=value, error=_error(exc))
            self._drop()


class Reader(threading.Thread):
    """Snapshot reads of the bank on every member in turn, during the whole trial."""

    def __init__(self, urls: dict[str, str], history: History, stop: threading.Event) -> None:
        super().__init__(name="reader", daemon=True)
        self.urls = urls
        self.h = history
        self.stop = stop

    def run(self) -> None:
        while not self.stop.is_set():
            for member, url in self.urls.items():
                self.h.add(**read_bank(member, url))
            time.sleep(0.05)


def read_bank(member: str, url: str) -> dict[str, Any]:
    """One snapshot read of the accounts on one member, as a history event.

    It also notes the newest row of each client process in ``appends`` and
    ``transfers`` that this member shows (``seen``): those must all exist at
    the end, or a reader saw a change that a failover took back.
    """
    try:
        conn = litemirror.connect(url)
        try:
            n, total, low = conn.execute(
                "SELECT count(*), sum(balance), min(balance) FROM accounts"
            ).fetchone()
            seen = {
                table: [
                    i
                    for (i,) in conn.execute(
                        f"SELECT max(id) FROM {table} WHERE proc > 0 GROUP BY proc"
                    )
                ]
                for table in SEEN_TABLES
            }
        finally:
            conn.close()
    except Exception as exc:  # a member that cannot answer is not checked
        return {"type": "read-fail", "f": "bank-read", "member": member, "error": _error(exc)}
    return {
        "type": "read",
        "f": "bank-read",
        "member": member,
        "n": n,
        "total": total,
        "min": low,
        "seen": seen,
    }


class Monitor(threading.Thread):
    """Polls one member's status directly (never through the proxy).

    Each observation is ``(t_sent, t_answered, role, epoch, lsn)``; the
    split-brain checker labels an acknowledgement with an epoch only when the
    member's observations just before and just after it agree.
    """

    def __init__(
        self, name: str, host: str, port: int, history: History, stop: threading.Event
    ) -> None:
        super().__init__(name=f"monitor-{name}", daemon=True)
        self.member = name
        self.host, self.port = host, port
        self.h = history
        self.stop = stop
        self.observations: list[tuple[float, float, str, int, int]] = []

    def run(self) -> None:
        from litemirror.client.control import call
        from litemirror.protocol import messages as m

        last: tuple[str, int] | None = None
        while not self.stop.is_set():
            sent = self.h.now()
            try:
                st = call(self.host, self.port, m.StatusRequest(id=1), timeout=0.5)
            except Exception:  # down, paused or busy: no observation
                time.sleep(0.1)
                continue
            obs = (
                sent,
                self.h.now(),
                str(st.get("role")),
                int(st.get("epoch") or 0),
                int(st.get("lsn") or 0),
            )
            self.observations.append(obs)
            if (obs[2], obs[3]) != last:
                last = (obs[2], obs[3])
                self.h.add(type="status", member=self.member, role=obs[2], epoch=obs[3])
            time.sleep(0.1)
