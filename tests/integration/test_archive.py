"""The journal archive with real member processes: segments archived whole, the purge
waits for the archive, a read-only or full archive disk raises an event while commits
go on, and archiving resumes by itself once the disk takes writes again."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import litemirror
from litemirror.testing.cluster import Cluster, MemberProcess

SEGMENT = 65536
RETAIN = 200_000

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a read-only bind and a tmpfs")


def _write(url: str, start: int, count: int) -> None:
    conn = litemirror.connect(url)
    for i in range(start, start + count, 50):
        ids = range(i, min(i + 50, start + count))
        conn.executemany("INSERT INTO t (id, v) VALUES (?, randomblob(500))", [(x,) for x in ids])
        conn.commit()
    conn.close()


def _mirror(factory: Any, archive: Path) -> Cluster:
    c: Cluster = factory(
        members=[("a", "failover"), ("b", "failover")],
        sections={
            "journal": {"segment_bytes": SEGMENT, "max_retain_bytes": RETAIN},
            "archive": {"dir": str(archive)},
        },
    )
    c.start()
    conn = litemirror.connect(c.url("app", members=["a"]))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    conn.close()
    return c


def _numbers(d: Path) -> list[int]:
    return sorted(int(p.name[:10]) for p in d.glob("*.lmj"))


def _check_archive(mp: MemberProcess, archive: Path) -> None:
    """Every segment the journal purged is archived; what both hold is byte-identical."""
    journal, arch = mp.data_dir / "journal", archive / "test" / mp.name
    held, archived = _numbers(journal), _numbers(arch)
    assert archived == list(range(1, len(archived) + 1)), archived  # one unbroken run
    assert held[0] <= len(archived) + 1, (held, archived)  # nothing purged unarchived
    for n in set(held) & set(archived):
        name = f"{n:010d}.lmj"
        assert (arch / name).read_bytes() == (journal / name).read_bytes(), name


def _archived(mp: MemberProcess, at_least: int) -> dict[str, Any]:
    return mp.wait_until(
        lambda s: (s["archive"]["archived_lsn"] or 0) >= at_least and s["archive"]["ok"],
        30,
        f"{mp.name} archived through LSN {at_least}",
    )


@contextmanager
def _mounted(*args: str) -> Iterator[None]:
    target = args[-1]
    subprocess.run(["mount", *args], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", target], check=False)


@needs_root
def test_archive_survives_a_read_only_and_a_full_disk(cluster_factory: Any, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    c = _mirror(cluster_factory, archive)
    url = c.url("app", members=["a"])
    _write(url, 1, 1000)  # about 8 segments of 64 KiB
    for mp in (c["a"], c["b"]):
        st = mp.status()
        # Every closed segment at or below the commit point reaches the archive.
        closed_end = st["lsn"] - 1
        _archived(mp, closed_end - 25)
        mp.wait_until(lambda s: (s["journal"]["first_lsn"] or 0) > 1, 30, "journal purged")
        _check_archive(mp, archive)
    st = c["a"].status()
    assert st["archive"]["segments"] >= 5 and st["archive"]["bytes"] >= 4 * SEGMENT

    # A read-only archive disk: commits go on, the journal keeps every unarchived segment.
    a_arch = archive / "test" / "a"
    first_before = c["a"].status()["journal"]["first_lsn"]
    with _mounted("--bind", str(a_arch), str(a_arch)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(a_arch)], check=True)
        _write(url, 10_000, 1000)
        ev = c["a"].wait_until(
            lambda s: s["archive"]["ok"] is False, 30, "the archive failing on a"
        )["archive"]
        assert "Read-only file system" in ev["last_error"]
        assert "commits go on" in ev["last_error"]
        failed = c["a"].events("archive_failed")
        assert failed and failed[-1]["severity"] == "error"
        st = c["a"].status()
        # Over the journal's cap, yet nothing unarchived was purged: the archive wins.
        assert st["journal"]["bytes"] > RETAIN
        assert st["journal"]["first_lsn"] == first_before
        _check_archive(c["a"], archive)
    # Writable again: archived, then purged, without a restart.
    lsn = c["a"].status()["lsn"]
    _archived(c["a"], lsn - 25)
    c["a"].wait_until(lambda s: s["journal"]["bytes"] <= RETAIN, 30, "the journal purged")
    assert c["a"].events("archive_resumed")
    _check_archive(c["a"], archive)

    # A full archive disk (a tmpfs smaller than a segment over b's archive): the same.
    b_arch = archive / "test" / "b"
    with _mounted("-t", "tmpfs", "-o", "size=32k", "tmpfs", str(b_arch)):
        _write(url, 20_000, 1000)
        ev = c["b"].wait_until(
            lambda s: s["archive"]["ok"] is False, 30, "the archive failing on b"
        )["archive"]
        assert "No space left on device" in ev["last_error"]
        assert not list(b_arch.glob("*.tmp"))  # a failed copy leaves no temp file
        assert c["b"].status()["journal"]["bytes"] > RETAIN
    _write(url, 30_000, 100)
    lsn = c["b"].status()["lsn"]
    _archived(c["b"], lsn - 25)
    _check_archive(c["b"], archive)
    # Every row committed meanwhile is on both members.
    r = c.verify()
    assert r.returncode == 0, r.stdout + r.stderr
