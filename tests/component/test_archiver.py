"""The journal archiver over a real journal and real directories (no member, no loop)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from litemirror.config import Archive
from litemirror.journal import Journal, NewRecord, RecordKind
from litemirror.server.storage.archiver import Archiver


def rec(i: int) -> NewRecord:
    return NewRecord(epoch=1, kind=RecordKind.CHANGES, db="app", ts_ms=1000 + i, payload=b"x" * 500)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """Four closed segments of 10 records (LSN 1-10, 11-20, 21-30, 31-40), one open (41-45)."""
    with Journal.open(tmp_path / "journal", fsync=False) as j:
        for seg in range(4):
            j.append([rec(seg * 10 + i) for i in range(10)])
            j.switch()
        j.append([rec(40 + i) for i in range(5)])
        yield j


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.failures: list[str] = []

    def __call__(self, kind: str, message: str, severity: str = "info", **data: Any) -> None:
        self.seen.append((kind, message))

    def failed(self, message: str) -> None:
        self.failures.append(message)


def archiver(
    directory: Path, j: Journal, events: Events, keep_days: float = 0, max_bytes: int = 0
) -> Archiver:
    return Archiver(
        settings=Archive(dir=directory, keep_days=keep_days, max_bytes=max_bytes),
        directory=directory / "m" / "a",
        segments=j.segments,
        confirmed_lsn=lambda: j.last_lsn,
        executor=ThreadPoolExecutor(1),
        event=events,
        failed=events.failed,
        clock=lambda: 1e9,
    )


def test_closed_segments_up_to_the_commit_point_are_copied_whole(
    tmp_path: Path, journal: Journal
) -> None:
    a = archiver(tmp_path / "arch", journal, Events())
    p = a.run_pass(journal.segments(), 25, 1e9)
    assert (p.copied, p.archived_lsn, p.error) == (2, 20, None)
    assert p.waiting == "segment 3 ends at LSN 30, after the commit point 25"
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.archived_lsn, p.segments) == (2, 40, 4)
    for seg in journal.segments()[:4]:
        assert (a.directory / seg.path.name).read_bytes() == seg.path.read_bytes()
    assert not (a.directory / journal.segments()[4].path.name).exists()  # the open one


def test_a_new_archiver_knows_the_archive_by_its_files(tmp_path: Path, journal: Journal) -> None:
    a = archiver(tmp_path / "arch", journal, Events())
    a.run_pass(journal.segments(), 45, 1e9)
    (a.directory / "0000000009.lmj.tmp").write_bytes(b"torn")
    b = archiver(tmp_path / "arch", journal, Events())
    p = b.run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.archived_lsn, p.segments) == (0, 40, 4)
    assert not (a.directory / "0000000009.lmj.tmp").exists()


def test_a_failing_archive_changes_nothing_and_recovers(tmp_path: Path, journal: Journal) -> None:
    root = tmp_path / "arch"
    root.write_bytes(b"a file where the archive's directory should be")
    a = archiver(root, journal, Events())
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert p.error is not None and "could not archive the journal" in p.error
    assert "commits go on" in p.error
    assert (p.copied, p.archived_lsn) == (0, 0)  # the purge keeps everything
    root.unlink()
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert (p.error, p.copied, p.archived_lsn) == (None, 4, 40)


def test_a_different_file_of_the_same_name_stops_archiving(
    tmp_path: Path, journal: Journal
) -> None:
    a = archiver(tmp_path / "arch", journal, Events())
    a.directory.mkdir(parents=True)
    other = journal.segments()[1].path.read_bytes()[:-10]  # same header, other size
    (a.directory / journal.segments()[1].path.name).write_bytes(other)
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert p.copied == 1 and p.archived_lsn == 10
    assert p.error is not None and "different segment 2" in p.error
    assert (a.directory / journal.segments()[1].path.name).read_bytes() == other  # untouched


def test_retention_deletes_only_what_the_journal_no_longer_holds(
    tmp_path: Path, journal: Journal
) -> None:
    a = archiver(tmp_path / "arch", journal, Events(), max_bytes=1)
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.deleted, p.segments) == (4, 0, 4)  # all still in the journal
    journal.purge_before(21)
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert (p.deleted, p.segments) == (2, 2)
    assert sorted(os.listdir(a.directory)) == ["0000000003.lmj", "0000000004.lmj"]
    assert p.archived_lsn == 40


def test_poke_runs_a_pass_off_the_loop_and_reports(tmp_path: Path, journal: Journal) -> None:
    asyncio.run(_poke_runs_a_pass_off_the_loop_and_reports(tmp_path, journal))


async def _poke_runs_a_pass_off_the_loop_and_reports(tmp_path: Path, journal: Journal) -> None:
    events = Events()
    root = tmp_path / "arch"
    root.write_bytes(b"")
    a = archiver(root, journal, events)
    a.poke()
    await a.wait()
    assert a.status()["ok"] is False and len(events.failures) == 1
    assert a.archived_lsn() == 0
    root.unlink()
    a.poke()
    await a.wait()
    st = a.status()
    assert (st["ok"], st["archived_lsn"], st["segments"]) == (True, 40, 4)
    assert st["last_error"] is not None  # the last error stays visible
    assert [k for k, _ in events.seen] == ["archive_resumed"]


def test_a_file_the_archive_lost_stops_counting(tmp_path: Path, journal: Journal) -> None:
    a = archiver(tmp_path / "arch", journal, Events())
    assert a.run_pass(journal.segments(), 45, 1e9).archived_lsn == 40
    (a.directory / journal.segments()[2].path.name).unlink()
    p = a.run_pass(journal.segments(), 25, 1e9)  # segment 3 is now past the commit point
    assert (p.copied, p.archived_lsn) == (0, 20)
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.archived_lsn) == (1, 40)


def test_the_gauges_show_the_archived_lsn_and_bytes(tmp_path: Path, journal: Journal) -> None:
    from litemirror.server.storage.archiver import ArchiveCollector

    a = archiver(tmp_path / "arch", journal, Events())
    gauges = {m.name: m.samples for m in ArchiveCollector("a", a).collect()}
    assert gauges == {"litemirror_archive_lsn": [], "litemirror_archive_bytes": []}

    async def one_pass() -> None:
        a.poke()
        await a.wait()

    asyncio.run(one_pass())
    got = {
        m.name: [(s.labels, s.value) for s in m.samples] for m in ArchiveCollector("a", a).collect()
    }
    size = sum(s.size_bytes for s in journal.segments()[:4])
    assert got == {
        "litemirror_archive_lsn": [({"member": "a"}, 40)],
        "litemirror_archive_bytes": [({"member": "a"}, size)],
    }


def _sealing(directory: Path, j: Journal, key: Any) -> Archiver:
    return Archiver(
        settings=Archive(dir=directory, keep_days=0, max_bytes=0),
        directory=directory / "m" / "a",
        segments=j.segments,
        confirmed_lsn=lambda: j.last_lsn,
        executor=ThreadPoolExecutor(1),
        event=Events(),
        failed=Events().failed,
        key=key,
        clock=lambda: 1e9,
    )


def test_with_a_key_segments_are_sealed_and_known_again_by_a_new_archiver(
    tmp_path: Path, journal: Journal
) -> None:
    from litemirror.backup.archive import scan
    from litemirror.backup.sealed import Key

    key, other = Key(b"k" * 32), Key(b"o" * 32)
    a = _sealing(tmp_path / "arch", journal, key)
    p = a.run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.archived_lsn, p.error) == (4, 40, None)
    for seg in journal.segments()[:4]:
        stored = (a.directory / seg.path.name).read_bytes()
        assert stored.startswith(b"LMSEALED") and b"LMJS" not in stored
    # A new archiver (a restart) opens the headers: nothing is copied again.
    p = _sealing(tmp_path / "arch", journal, key).run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.archived_lsn, p.segments) == (0, 40, 4)
    # Under another key the files cannot be read: they do not count, and are copied anew.
    p = _sealing(tmp_path / "arch", journal, other).run_pass(journal.segments(), 45, 1e9)
    assert (p.copied, p.archived_lsn) == (4, 40)
    # Restore's reader opens them with the key and checks every record.
    index = scan(tmp_path / "arch", "m", "app", 0, {other.id: other})
    assert [(s.first_lsn, s.last_lsn) for s in index.segments] == [
        (1, 10),
        (11, 20),
        (21, 30),
        (31, 40),
    ]
