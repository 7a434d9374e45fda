"""``backup()`` / ``iterdump()`` beyond one member: read-only members, roles, the copy's bounds."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any

import pytest

import litemirror
from litemirror import errors
from litemirror.protocol import messages as m
from litemirror.protocol.framing import encode
from litemirror.server.storage import snapshot
from litemirror.testing.cluster import Cluster


def test_copy_from_a_reporting_member_reads_your_writes(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(members=[("a", "failover"), ("b", "failover"), ("r", "reporting")])
    c.start()
    writer = litemirror.connect(c.url("app", members=["a"]), isolation_level=None)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    c["r"].wait_applied(writer.last_lsn)  # r holds the database now
    reader = litemirror.connect(c.url("app", members=["r"], target="any", redirect=False))
    try:
        assert reader.member == "r"
        for i in range(20):
            writer.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
            # Read-your-writes: the member waits until it holds this LSN before copying.
            reader.min_lsn = writer.last_lsn
            target = sqlite3.connect(":memory:")
            reader.backup(target)
            assert target.execute("SELECT count(*) FROM t").fetchone() == (i + 1,)
        assert reader.total_changes == 0 and writer.total_changes == 20
        # The dump from the reporting member equals the one from the primary.
        assert list(reader.iterdump()) == list(writer.iterdump())
        names = {r[0] for r in target.execute("SELECT name FROM sqlite_schema")}
        assert names == {"t"}  # no litemirror bookkeeping table in the copy
    finally:
        writer.close()
        reader.close()
    for name in ("a", "r"):
        assert not any((c[name].data_dir / "snapshots").glob("*")), name


PASSWORDS = {"root": "root-secret-1", "reader": "reader-secret-3"}


def _user_add(c: Cluster, name: str, role: str, by: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITEMIRROR_")}
    if by is not None:
        env |= {"LITEMIRROR_USER": by, "LITEMIRROR_PASSWORD": PASSWORDS[by]}
    r = subprocess.run(
        [sys.executable, "-m", "litemirror.cli.main", "user", "add", name, "--role", role,
         "--password-stdin", "--config", str(c.config_path)],
        input=PASSWORDS[name], capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_read_only_user_may_take_a_copy(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(sections={"auth": {"require": True}})
    c.start()
    _user_add(c, "root", "admin", by=None)  # bootstrap from loopback: no admin yet
    _user_add(c, "reader", "read", by="root")
    base = c.url("app")
    admin = litemirror.connect(base.replace("//", f"//root:{PASSWORDS['root']}@", 1))
    reader = litemirror.connect(base.replace("//", f"//reader:{PASSWORDS['reader']}@", 1))
    try:
        admin.execute("CREATE TABLE t (x)")
        admin.execute("INSERT INTO t VALUES (1)")
        admin.commit()
        with pytest.raises(errors.PermissionDeniedError):
            reader.execute("INSERT INTO t VALUES (2)")
        target = sqlite3.connect(":memory:")
        reader.backup(target)
        assert target.execute("SELECT x FROM t").fetchall() == [(1,)]
        # The users' database holds password hashes: only an admin may even open it.
        with pytest.raises(errors.Error, match="only admin users"):
            litemirror.connect(
                c.url("_system").replace("//", f"//reader:{PASSWORDS['reader']}@", 1)
            )
    finally:
        admin.close()
        reader.close()


@pytest.mark.slow
def test_a_client_that_stops_reading_its_copy_is_disconnected(member: Any) -> None:
    """The member does not keep a copy (and a worker's file) for a client that went silent."""
    conn = litemirror.connect(member.url())
    conn.execute("CREATE TABLE big (b BLOB)")
    conn.executemany("INSERT INTO big VALUES (randomblob(?))", [(1_000_000,)] * 32)
    conn.commit()
    host, port = member.proc.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(encode(m.Hello(version=1, database="app", client=m.client_name("test"))))
        sock.sendall(encode(m.Snapshot(id=1)))
        folder = member.data_dir / "snapshots"
        time.sleep(snapshot.STALL_S + 5)  # never reading
        assert list(folder.iterdir()) == []  # the copy and its place are gone...
        received = 0
        while chunk := sock.recv(1 << 20):  # ...and the connection ends after what was sent
            received += len(chunk)
        assert received < 32_000_000
    finally:
        sock.close()
    # The member serves everyone else as before.
    target = sqlite3.connect(":memory:")
    conn.backup(target)
    assert target.execute("SELECT count(*) FROM big").fetchone() == (32,)
    conn.close()
