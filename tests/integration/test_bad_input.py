"""Bad input gets a clear error, the member stays up, and nothing changes."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import litemirror
from litemirror import errors
from litemirror.protocol import messages as m
from litemirror.protocol.framing import FrameDecoder, encode


def _raw(member: Any) -> socket.socket:
    proc = member.proc
    return socket.create_connection(("127.0.0.1", proc.port), timeout=5)


def _answer(sock: socket.socket, read: int = 65536) -> m.ServerMessage | None:
    """The next frame from ``sock``; ``read=1`` leaves what follows it unread."""
    dec: FrameDecoder[m.ServerMessage] = FrameDecoder(m.ServerMessage)
    while True:
        msg = dec.next_message()
        if msg is not None:
            return msg
        data = sock.recv(read)
        if not data:
            return None
        dec.feed(data)


def _count(member: Any) -> int:
    c = litemirror.connect(member.url())
    try:
        return int(c.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        c.close()


@pytest.fixture
def seeded(member: Any) -> Any:
    c = litemirror.connect(member.url())
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    c.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(10)])
    c.commit()
    c.close()
    return member


def test_garbage_frame_is_refused_and_member_stays_up(seeded: Any) -> None:
    with _raw(seeded) as s:
        body = b"\xc1\xc1\xc1 not msgpack"
        s.sendall(struct.pack(">I", len(body)) + body)
        ans = _answer(s)
        assert isinstance(ans, m.Error) and ans.kind == "ProtocolError"
        assert "malformed frame" in ans.message
    assert _count(seeded) == 10


def test_oversized_frame_is_refused_before_reading_it(seeded: Any) -> None:
    with _raw(seeded) as s:
        s.sendall(struct.pack(">I", 2**31))
        ans = _answer(s)
        assert isinstance(ans, m.Error) and ans.kind == "FrameTooLargeError"
        assert "exceeds the limit" in ans.message
    assert _count(seeded) == 10


def test_opening_frame_is_held_to_64_kib_until_the_client_says_hello(seeded: Any) -> None:
    with _raw(seeded) as s:
        s.sendall(struct.pack(">I", 100 * 1024))  # a 100 KiB first frame: refused unread
        ans = _answer(s)
        assert isinstance(ans, m.Error) and ans.kind == "FrameTooLargeError"
    # After Hello the configured limit applies: a 200 KiB statement goes through.
    c = litemirror.connect(seeded.url())
    c.execute("INSERT INTO t VALUES (?, ?)", (100, "x" * 200_000))
    c.commit()
    c.close()
    assert _count(seeded) == 11


def test_idle_connections_are_closed_and_the_driver_reconnects(cluster_factory: Any) -> None:
    c = cluster_factory(sections={"limits": {"idle_timeout_s": 0.5}})
    c.start()
    conn = litemirror.connect(c.url(), isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    with socket.create_connection(("127.0.0.1", c["a"].port), timeout=5) as s:
        s.sendall(encode(m.Hello(version=m.PROTOCOL_VERSION, database="app")))
        assert isinstance(_answer(s, read=1), m.Welcome)
        s.settimeout(5)
        assert s.recv(1) == b"", "the member closes an idle connection without a word"
    # The driver's idle connection was closed too; it notices before sending.
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    # A transaction waiting on its client is not cut by the idle timeout (it has
    # its own, server.transaction_idle_timeout_s).
    tx = litemirror.connect(c.url())
    tx.execute("INSERT INTO t VALUES (2)")
    time.sleep(1.0)
    tx.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_unknown_message_type(seeded: Any) -> None:
    with _raw(seeded) as s:
        body = msgspec.msgpack.encode({"t": "drop_everything", "id": 1})
        s.sendall(struct.pack(">I", len(body)) + body)
        ans = _answer(s)
        assert isinstance(ans, m.Error) and ans.kind == "ProtocolError"
    assert _count(seeded) == 10


def test_wrong_first_message_and_wrong_version(seeded: Any) -> None:
    with _raw(seeded) as s:
        s.sendall(encode(m.Ping(id=1)))
        ans = _answer(s)
        assert isinstance(ans, m.Error) and "must open with Hello" in ans.message
    with _raw(seeded) as s:
        s.sendall(encode(m.Hello(version=99, database="app")))
        ans = _answer(s)
        assert isinstance(ans, m.Error) and "version 99" in ans.message


def test_frames_after_handshake_malformed(seeded: Any) -> None:
    with _raw(seeded) as s:
        s.sendall(encode(m.Hello(version=m.PROTOCOL_VERSION, database="app")))
        assert isinstance(_answer(s), m.Welcome)
        # An Execute with a parameter of a type SQLite does not have.
        body = msgspec.msgpack.encode(
            {
                "t": "exec",
                "id": 5,
                "sql": "INSERT INTO t VALUES (?, ?)",
                "params": [99, {"nested": "map"}],
            }
        )
        s.sendall(struct.pack(">I", len(body)) + body)
        ans = _answer(s)
        assert isinstance(ans, m.Error) and ans.kind == "ProtocolError"
    assert _count(seeded) == 10


def test_unknown_database(seeded: Any) -> None:
    with pytest.raises(errors.Error, match="no database named 'nope'"):
        litemirror.connect(seeded.url("nope"))


def test_bad_sql_changes_nothing(seeded: Any) -> None:
    c = litemirror.connect(seeded.url())
    # The same classes as the stdlib sqlite3 module raises.
    with pytest.raises(litemirror.OperationalError, match="syntax error"):
        c.execute("INSRT INTO t VALUES (1)")
    with pytest.raises(litemirror.OperationalError, match="no such table"):
        c.execute("INSERT INTO missing VALUES (1)")
    with pytest.raises(litemirror.IntegrityError, match="UNIQUE constraint failed") as ei:
        c.execute("INSERT INTO t VALUES (1, 'dup')")
    assert ei.value.sqlite_code is not None
    c.rollback()
    c.close()
    assert _count(seeded) == 10


BAD_CONFIGS = [
    (
        "[mirror]\nname = 'has space'\n[[members]]\nname='a'\naddress='127.0.0.1:1'\n"
        "data_dir='d'\n",
        "mirror.name",
    ),
    (
        "[mirror]\nname = 'x'\n[[members]]\nname='a'\naddress='127.0.0.1:99999'\ndata_dir='d'\n",
        "members[0].address",
    ),
    (
        "[mirror]\nname = 'x'\n[[members]]\nname='a'\naddress='127.0.0.1:7701'\n"
        "data_dir='d'\nkind='primary'\n",
        "members",
    ),
    (
        "[mirror]\nname = 'x'\n[server]\nthreads = 'many'\n[[members]]\nname='a'\n"
        "address='127.0.0.1:7701'\ndata_dir='d'\n",
        "server.threads",
    ),
    ("[mirror\nname = 'x'\n", "not valid TOML"),
    (
        "[mirror]\nname = 'x'\n[[members]]\nname='a'\naddress='127.0.0.1:7701'\ndata_dir='d'\n"
        "[[members]]\nname='a'\naddress='127.0.0.1:7702'\ndata_dir='e'\n",
        "duplicate member",
    ),
    (
        "[mirror]\nname = 'x'\n[tls]\nca='missing-ca.crt'\ncert='{name}.crt'\nkey='{name}.key'\n"
        "[[members]]\nname='a'\naddress='127.0.0.1:7701'\ndata_dir='d'\n",
        "missing-ca.crt",
    ),
    (
        "[mirror]\nname = 'x'\n[tls]\nrequire=true\n"
        "[[members]]\nname='a'\naddress='127.0.0.1:7701'\ndata_dir='d'\n",
        "tls.require",
    ),
]


@pytest.mark.parametrize(("text", "needle"), BAD_CONFIGS)
def test_bad_config_exits_nonzero_with_message(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "litemirror.cli.main",
            "serve",
            "--config",
            str(cfg),
            "--member",
            "a",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert needle in r.stderr, r.stderr
    assert not (tmp_path / "d").exists(), "a bad config must not create anything"


def test_corrupt_journal_tail_is_truncated_and_reported(seeded: Any) -> None:
    seeded.stop()
    seg = sorted((seeded.data_dir / "journal").glob("*.lmj"))[-1]
    with open(seg, "ab") as f:
        f.write(os.urandom(37))  # a torn, half-written record
    seeded.start()
    assert _count(seeded) == 10
    log = seeded.proc.log_path.read_text()
    assert "truncated a torn tail of 37 bytes" in log
    c = litemirror.connect(seeded.url())
    c.execute("INSERT INTO t VALUES (100, 'after')")
    c.commit()
    assert _count(seeded) == 11


def test_full_disk_gets_clear_error_and_changes_nothing(
    cluster_factory: Any, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    try:
        cl = cluster_factory()
        cl["a"].data_dir = mnt / "a"
        cl.write_config()
        cl.start()
        c = litemirror.connect(cl.url(), isolation_level=None)
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        c.execute("INSERT INTO t VALUES (1, zeroblob(1000))")
        # Fill the disk with a file outside the database.
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        failures = 0
        for i in range(2, 40):
            try:
                c.execute("INSERT INTO t VALUES (?, randomblob(200000))", (i,))
            except errors.OperationalError as exc:
                failures += 1
                assert isinstance(exc, errors.DiskFullError), repr(exc)
                assert "full" in str(exc).lower()
        assert failures > 0
        # The member is up; what was refused is not there; what was acked is.
        ids = [r[0] for r in c.execute("SELECT id FROM t ORDER BY id")]
        c.close()
        filler.unlink()
        c = litemirror.connect(cl.url(), isolation_level=None)
        c.execute("INSERT INTO t VALUES (1000, 'after')")
        ids_after = [r[0] for r in c.execute("SELECT id FROM t ORDER BY id")]
        assert ids_after == [*ids, 1000]
        c.close()
        # A restart replays nothing unexpected: same rows.
        cl["a"].stop()
        cl["a"].start()
        c = litemirror.connect(cl.url())
        assert [r[0] for r in c.execute("SELECT id FROM t ORDER BY id")] == ids_after
        c.close()
        cl.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
