"""Bad replication input is refused with a clear logged error, and nothing of it is applied.

The member under test is real; the peer it talks to is a small scripted
primary (or replica) in this test, which is the only way to send it frames
a correct member would never send.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

import litemirror
from litemirror.engine.ops import SqlOp, encode_ops
from litemirror.journal import Journal, Record, RecordKind, encode_record
from litemirror.protocol import messages as m
from litemirror.protocol import replication as r
from litemirror.protocol.framing import FrameDecoder, encode
from litemirror.testing.cluster import Cluster


def _recv(sock: socket.socket, dec: FrameDecoder[Any]) -> Any:
    while True:
        msg = dec.next_message()
        if msg is not None:
            return msg
        data = sock.recv(65536)
        if not data:
            return None
        dec.feed(data)


class FakePrimary:
    """Answers status as a primary and plays a script of frames to each replica connection."""

    def __init__(self, port: int, scripts: list[list[bytes]]) -> None:
        self.port = port
        self.scripts = scripts
        self.hellos: list[r.ReplHello] = []
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            dec: FrameDecoder[Any] = FrameDecoder(m.OpeningMessage)
            first = _recv(conn, dec)
            if isinstance(first, m.Hello):
                conn.sendall(
                    encode(
                        m.Welcome(
                            version=1, mirror="test", member="a", role="primary", epoch=1, lsn=1
                        )
                    )
                )
                dec.set_kind(m.ClientMessage)
                req = _recv(conn, dec)
                if isinstance(req, m.StatusRequest):
                    info = {"role": "primary", "epoch": 1, "member": "a"}
                    conn.sendall(encode(m.Ok(id=req.id, info=info)))
                return
            if not isinstance(first, r.ReplHello) or not self.scripts:
                return
            self.hellos.append(first)
            script = self.scripts.pop(0)
            conn.sendall(
                encode(
                    r.ReplWelcome(
                        mirror="test",
                        primary="a",
                        epoch=1,
                        first_lsn=1,
                        last_lsn=9,
                        mode="stream",
                        start_lsn=first.last_lsn + 1,
                    )
                )
            )
            for frame in script:
                conn.sendall(frame)
            time.sleep(1.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _rec(lsn: int, epoch: int, kind: RecordKind, db: str, payload: bytes = b"") -> bytes:
    return encode_record(Record(lsn=lsn, epoch=epoch, kind=kind, db=db, ts_ms=0, payload=payload))


def _frame(seq: int, first: int, last: int, data: bytes) -> bytes:
    return encode(r.ReplRecords(seq=seq, first_lsn=first, last_lsn=last, data=data))


def test_replica_refuses_damaged_gapped_and_stale_frames(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(members=[("a", "failover"), ("r", "reporting")])
    create = _rec(1, 1, RecordKind.CREATE_DB, "app")
    good = _rec(2, 1, RecordKind.CHANGES, "app", encode_ops([SqlOp("CREATE TABLE x (a)")]))
    bad_checksum = bytearray(good)
    bad_checksum[-3] ^= 0xFF
    gap = _rec(3, 1, RecordKind.CHANGES, "app", encode_ops([SqlOp("CREATE TABLE gap (a)")]))
    stale = _rec(2, 0, RecordKind.CHANGES, "app", encode_ops([SqlOp("CREATE TABLE old (a)")]))
    scripts = [
        [_frame(1, 1, 1, create), _frame(2, 2, 2, bytes(bad_checksum))],
        [_frame(1, 3, 3, gap)],
        [_frame(1, 2, 2, stale)],
        [_frame(2, 2, 2, good)],  # a sequence gap: frame 1 never came
        [
            encode(
                r.ReplRecords(
                    seq=1, first_lsn=2, last_lsn=2, data=b"\x28\xb5\x2f\xfd junk", compressed=True
                )
            )
        ],
        # A reporting member applies only what the primary says is committed.
        [_frame(1, 2, 2, good), encode(r.ReplCommitted(lsn=2))],
    ]
    fake = FakePrimary(c["a"].port, scripts)
    try:
        c["r"].start()
        st = c["r"].wait_until(
            lambda s: (s.get("replication") or {}).get("applied_lsn") == 2, 60, "good record"
        )
        assert st["replication"]["frames_refused"] == 5
    finally:
        fake.close()
    c["r"].stop()
    log = c["r"].log_path.read_text()
    assert "holds a damaged record" in log
    assert "LSN gap: record 3 arrived where 2 was expected" in log
    assert "is from epoch 0, older than epoch 1" in log
    assert "frame 2 arrived where 1 was expected" in log
    assert "does not decompress" in log
    # Nothing of the refused frames is anywhere: journal holds 1 and 2 only.
    with Journal.open(c["r"].data_dir / "journal") as j:
        assert [x.lsn for x in j.read_from(1)] == [1, 2]
    import sqlite3

    with sqlite3.connect(c["r"].data_dir / "databases" / "app.db") as db:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert "x" in names and not names & {"gap", "old"}
    # Each reconnect said where the member really was.
    assert [h.last_lsn for h in fake.hellos] == [0, 1, 1, 1, 1, 1]


def _repl_hello(port: int, **kw: Any) -> Any:
    fields = {
        "version": r.REPL_VERSION,
        "mirror": "test",
        "member": "b",
        "kind": "failover",
        "last_lsn": 0,
        "last_epoch": 0,
        **kw,
    }
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(encode(r.ReplHello(**fields)))
        return _recv(s, FrameDecoder(r.FromPrimary | m.Error))


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"mirror": "other"}, "belongs to mirror 'other'"),
        ({"member": "zz"}, "no member named 'zz'"),
        ({"member": "a"}, "is this member itself"),
        ({"kind": "dr"}, "is configured as failover, not dr"),
        ({"last_epoch": 7}, "has seen epoch 7, newer than this primary's 1"),
        ({"version": 99}, "replication protocol version 99"),
    ],
)
def test_primary_refuses_members_that_do_not_belong(
    cluster_factory: Any, fields: dict[str, Any], needle: str
) -> None:
    c: Cluster = cluster_factory(members=[("a", "failover"), ("b", "failover")])
    c.start("a")
    ans = _repl_hello(c["a"].port, **fields)
    assert isinstance(ans, m.Error) and needle in ans.message
    assert needle in c["a"].log_path.read_text()
    assert c["a"].status()["replicas"] == []


def test_primary_refuses_a_duplicate_member(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(members=[("a", "failover"), ("b", "failover")])
    c.start()
    c["a"].wait_until(lambda s: s.get("backup_active") is True, 30, "backup active")
    w = litemirror.connect(c.url("app", members=["a"]))
    w.execute("CREATE TABLE t (a)")
    w.commit()
    ans = _repl_hello(c["a"].port, last_lsn=0)
    assert isinstance(ans, m.Error) and "already connected" in ans.message
    # The real backup is still the one connected, and still active.
    st = c["a"].status()
    assert st["backup_active"] is True and [x["member"] for x in st["replicas"]] == ["b"]
