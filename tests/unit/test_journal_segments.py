"""The journal on disk: append, reopen, rotation, recovery, replicas, purge, truncate, full disk."""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from litemirror.errors import DiskFullError, JournalCorruptError, JournalError
from litemirror.journal import Journal, NewRecord, Record, RecordKind, encode_record, scan
from litemirror.journal.segments import SEGMENT_HEADER_SIZE


def new(payload: bytes = b"changes", epoch: int = 1, db: str = "main") -> NewRecord:
    return NewRecord(epoch=epoch, kind=RecordKind.CHANGES, db=db, ts_ms=1000, payload=payload)


def fill(j: Journal, count: int, size: int = 100, epoch: int = 1) -> list[Record]:
    out: list[Record] = []
    for i in range(count):
        out += j.append([new(bytes([i % 256]) * size, epoch=epoch)])
    return out


def records_on_disk(path: Path) -> list[Record]:
    result = scan(path.read_bytes()[SEGMENT_HEADER_SIZE:])
    assert result.problem is None
    return result.records


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "journal"


def test_new_journal_is_empty_with_one_open_segment(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        assert (j.last_lsn, j.last_epoch, j.first_lsn) == (0, 0, None)
        assert j.recovery.records == 0 and j.recovery.problem is None
        [seg] = j.segments()
        assert seg.path == jdir / "0000000001.lmj"
        assert (seg.first_lsn, seg.last_lsn, seg.closed) == (1, 0, False)
        assert list(j.read_from(1)) == []


def test_append_reopen_and_read_from(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        a = j.append([new(b"one", db="données"), new(b"", epoch=2)])
        b = j.append([NewRecord(2, RecordKind.CREATE_DB, "sales", 5, b"x" * 70000)])
        written = a + b
        assert [r.lsn for r in written] == [1, 2, 3]
        assert list(j.read_from(1)) == written
    with Journal.open(jdir) as j:
        report = j.recovery
        assert (report.records, report.first_lsn, report.last_lsn) == (3, 1, 3)
        assert (report.last_epoch, report.truncated_bytes, report.problem) == (2, 0, None)
        assert "3 record(s)" in str(report)
        assert list(j.read_from(1)) == written
        assert list(j.read_from(3)) == written[2:]
        assert list(j.read_from(4)) == []
        with pytest.raises(JournalError, match="past the end"):
            j.read_from(5)
        assert j.append([new(epoch=2)])[0].lsn == 4


def test_group_append_gets_consecutive_lsns_in_one_contiguous_write(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        fill(j, 2)
        group = j.append([new(bytes([i]) * i, epoch=3) for i in range(10)])
        assert [r.lsn for r in group] == list(range(3, 13))
        assert j.last_epoch == 3
        path = j.segments()[0].path
        blob = b"".join(encode_record(r) for r in group)
        assert path.read_bytes().endswith(blob)
        assert j.append([]) == []


def test_append_refuses_an_older_epoch_and_changes_nothing(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        fill(j, 1, epoch=5)
        size = j.segments()[0].size_bytes
        with pytest.raises(JournalError, match="epoch 4 after epoch 5"):
            j.append([new(epoch=5), new(epoch=4)])
        with pytest.raises(JournalError, match="limit is 255"):
            j.append([new(epoch=5, db="x" * 300)])
        assert (j.last_lsn, j.segments()[0].size_bytes) == (1, size)


def test_rotation_by_size(jdir: Path) -> None:
    with Journal.open(jdir, segment_bytes=1000) as j:
        written = fill(j, 30, size=150)
        segs = j.segments()
        assert len(segs) > 3
        assert all(s.closed for s in segs[:-1]) and not segs[-1].closed
        for prev, seg in itertools.pairwise(segs):
            assert seg.number == prev.number + 1
            assert seg.first_lsn == prev.last_lsn + 1
        for seg in segs[:-1]:
            assert 1000 <= seg.size_bytes < 1000 + 250
        assert list(j.read_from(1)) == written
        assert list(j.read_from(17)) == written[16:]
    with Journal.open(jdir, segment_bytes=1000) as j:
        assert j.recovery.segments == len(segs) and j.recovery.records == 30
        assert [s.last_lsn for s in j.segments()] == [s.last_lsn for s in segs]


def test_switch_closes_only_a_non_empty_segment(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        assert j.switch() == 1
        fill(j, 2)
        assert j.switch() == 2
        assert j.switch() == 2
        fill(j, 1)
        assert j.switch() == 3
        assert [(s.first_lsn, s.last_lsn, s.closed) for s in j.segments()] == [
            (1, 2, True),
            (3, 3, True),
            (4, 3, False),
        ]
    with Journal.open(jdir) as j:
        assert j.last_lsn == 3 and j.segments()[-1].number == 3
        assert j.append([new()])[0].lsn == 4


@pytest.mark.parametrize("cut", [1, 7, 40, 41, 47, "all-but-one"])
def test_recovery_cuts_a_torn_tail_and_reports_it(jdir: Path, cut: int | str) -> None:
    with Journal.open(jdir) as j:
        written = fill(j, 5, size=80)
        path = j.segments()[0].path
    last_len = len(encode_record(written[-1]))
    n = last_len - 1 if cut == "all-but-one" else int(cut)
    full = path.stat().st_size
    os.truncate(path, full - n)
    with Journal.open(jdir) as j:
        assert j.last_lsn == 4
        assert j.recovery.truncated_bytes == last_len - n
        assert j.recovery.problem is not None and "0000000001.lmj" in j.recovery.problem
        assert path.stat().st_size == full - last_len
        assert j.append([new()])[0].lsn == 5
    with Journal.open(jdir) as j:
        assert (j.last_lsn, j.recovery.truncated_bytes) == (5, 0)


def test_cut_on_a_record_boundary_is_clean(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        written = fill(j, 3)
        path = j.segments()[0].path
    os.truncate(path, path.stat().st_size - len(encode_record(written[-1])))
    with Journal.open(jdir) as j:
        assert (j.last_lsn, j.recovery.truncated_bytes, j.recovery.problem) == (2, 0, None)


@pytest.mark.parametrize("garbage", [b"\0" * 4096, b"LMJR" + os.urandom(100), b"\xff"])
def test_garbage_after_the_last_record_is_cut(jdir: Path, garbage: bytes) -> None:
    with Journal.open(jdir) as j:
        fill(j, 3)
        path = j.segments()[0].path
    with path.open("ab") as f:
        f.write(garbage)
    with Journal.open(jdir) as j:
        assert j.last_lsn == 3
        assert j.recovery.truncated_bytes == len(garbage)


def test_corrupt_record_followed_by_valid_records_refuses_to_open(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        written = fill(j, 5, size=60)
        path = j.segments()[0].path
    offset = SEGMENT_HEADER_SIZE + len(encode_record(written[0]))
    data = bytearray(path.read_bytes())
    data[offset + 50] ^= 0x04  # inside record 2's payload
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as info:
        Journal.open(jdir)
    message = str(info.value)
    assert str(path) in message and f"offset {offset}" in message and "re-seed" in message
    assert path.read_bytes() == bytes(data)  # nothing was cut


def test_corrupt_tail_of_a_closed_segment_refuses_to_open(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        fill(j, 3)
        j.switch()
        fill(j, 2)
        first = j.segments()[0].path
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF  # the last record's checksum
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="closed segment"):
        Journal.open(jdir)


def test_missing_segment_is_a_gap(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        for _ in range(3):
            fill(j, 2)
            j.switch()
        middle = j.segments()[1].path
    middle.unlink()
    with pytest.raises(JournalCorruptError, match=r"0000000002\.lmj is missing"):
        Journal.open(jdir)


def test_lsn_gap_inside_a_segment_refuses_to_open(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        fill(j, 2)
        path = j.segments()[0].path
    stray = Record(4, 1, RecordKind.CHANGES, "main", 0, b"skips LSN 3")
    with path.open("ab") as f:
        f.write(encode_record(stray))
    with pytest.raises(JournalCorruptError, match="expected LSN 3, found 4"):
        Journal.open(jdir)


def test_replica_appends_verbatim_and_refuses_gaps_and_old_epochs(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "a") as primary, Journal.open(tmp_path / "b") as replica:
        written = primary.append([new(epoch=2) for _ in range(3)])
        replica.append_records(written[:2])
        with pytest.raises(JournalError, match="expected LSN 3"):
            replica.append_records(written[:1])
        with pytest.raises(JournalError, match="expected LSN 3"):
            replica.append_records([Record(4, 2, RecordKind.CHANGES, "main", 0, b"")])
        with pytest.raises(JournalError, match="epoch 1, older than epoch 2"):
            replica.append_records([Record(3, 1, RecordKind.CHANGES, "main", 0, b"")])
        assert replica.last_lsn == 2
        replica.append_records(written[2:])
        assert list(replica.read_from(1)) == written
        assert (replica.last_lsn, replica.last_epoch) == (3, 2)
        a, b = primary.segments()[0].path, replica.segments()[0].path
        assert a.read_bytes() == b.read_bytes()


def test_purge_keeps_the_open_segment_and_reading_purged_lsns_fails(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        for _ in range(3):
            fill(j, 4)
            j.switch()
        fill(j, 2)  # open segment 4 holds 13..14
        assert j.purge_before(4) == []  # segment 1 holds 1..4: still needed
        removed = j.purge_before(9)
        assert removed == [jdir / "0000000001.lmj", jdir / "0000000002.lmj"]
        assert not any(p.exists() for p in removed)
        assert j.first_lsn == 9
        with pytest.raises(JournalError, match="base copy"):
            j.read_from(8)
        assert [r.lsn for r in j.read_from(9)] == list(range(9, 15))
        assert len(j.purge_before(10**9)) == 1
        [seg] = j.segments()
        assert not seg.closed and (seg.first_lsn, j.first_lsn, j.last_lsn) == (13, 13, 14)
    with Journal.open(jdir) as j:
        assert (j.first_lsn, j.last_lsn, j.recovery.records) == (13, 14, 2)


def test_truncate_after_across_segments(jdir: Path) -> None:
    with Journal.open(jdir, segment_bytes=600) as j:
        written = fill(j, 12, size=100, epoch=1) + fill(j, 3, size=100, epoch=2)
        assert len(j.segments()) >= 3
        assert j.truncate_after(15) == []
        removed = j.truncate_after(5)
        assert removed == written[5:]
        assert (j.last_lsn, j.last_epoch) == (5, 1)
        assert list(j.read_from(1)) == written[:5]
        segs = j.segments()
        assert not segs[-1].closed and segs[-1].last_lsn == 5
        assert j.append([new(epoch=3)])[0].lsn == 6
    with Journal.open(jdir, segment_bytes=600) as j:
        assert (j.last_lsn, j.last_epoch, j.recovery.truncated_bytes) == (6, 3, 0)


def test_truncate_after_everything_and_before_purged_records(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        written = fill(j, 3)
        assert j.truncate_after(0) == written
        assert (j.last_lsn, j.first_lsn) == (0, None)
        fill(j, 4)
        j.switch()
        fill(j, 1)
        j.purge_before(5)
        with pytest.raises(JournalError, match="were purged"):
            j.truncate_after(3)
        assert [r.lsn for r in j.truncate_after(4)] == [5]
        assert (j.last_lsn, j.first_lsn) == (4, None)


def test_restart_at_continues_after_a_base_copy(jdir: Path) -> None:
    with Journal.open(jdir) as j:
        fill(j, 5)
        j.switch()
        j.restart_at(101, epoch=4)
        assert (j.last_lsn, j.last_epoch, j.first_lsn) == (100, 4, None)
        with pytest.raises(JournalError, match="base copy"):
            j.read_from(50)
        assert j.append([new(epoch=4)])[0].lsn == 101
        assert [s.number for s in j.segments()] == [3]
    with Journal.open(jdir) as j:
        assert (j.first_lsn, j.last_lsn, j.last_epoch) == (101, 101, 4)


def test_read_from_any_lsn_of_a_large_segment_uses_the_index_correctly(jdir: Path) -> None:
    with Journal.open(jdir, fsync=False) as j:
        written = fill(j, 1500, size=150)  # ~300 KB in one segment: several index entries
        written += j.append([new(bytes([i]) * 1000) for i in range(100)])
        assert len(j._segs[0].index) >= 4
        probes = [1, 2, 437, 438, 439, 1000, 1499, 1500, 1501, 1550, 1600, 1601]
        for lsn in probes:
            assert list(j.read_from(lsn)) == written[lsn - 1 :]
    with Journal.open(jdir) as j:
        assert len(j._segs[0].index) >= 4
        for lsn in probes:
            assert list(j.read_from(lsn)) == written[lsn - 1 :]
        j.truncate_after(700)
        assert list(j.read_from(650)) == written[649:700]
        more = j.append([new(b"after", epoch=2) for _ in range(3)])
        assert list(j.read_from(690)) == written[689:700] + more


def test_reader_thread_sees_only_complete_records_while_writer_appends(jdir: Path) -> None:
    total = 400
    errors: list[BaseException] = []
    with Journal.open(jdir, segment_bytes=4096, fsync=False) as j:

        def writer() -> None:
            try:
                for i in range(total):
                    j.append([new(bytes([i % 256]) * (i % 97))])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[int] = []
        while len(seen) < total and (thread.is_alive() or seen[-1:] != [j.last_lsn]):
            for r in j.read_from(len(seen) + 1):
                assert r.lsn == len(seen) + 1
                assert r.payload == bytes([(r.lsn - 1) % 256]) * ((r.lsn - 1) % 97)
                seen.append(r.lsn)
        thread.join()
        assert not errors
        assert seen == list(range(1, total + 1))


def test_second_open_is_refused_and_closed_journal_refuses_use(jdir: Path) -> None:
    j = Journal.open(jdir)
    with pytest.raises(JournalError, match="already open"):
        Journal.open(jdir)
    j.close()
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.append([new()])
    with pytest.raises(JournalError, match="closed"):
        j.read_from(1)
    Journal.open(jdir).close()


def test_unexpected_file_in_the_directory_is_refused(jdir: Path) -> None:
    jdir.mkdir(parents=True)
    (jdir / "notes.lmj").write_text("hello")
    with pytest.raises(JournalError, match="unexpected file"):
        Journal.open(jdir)


# -- full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small tmpfs to fill")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 256 KiB tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def fill_disk(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_full_disk_changes_nothing_and_append_works_once_space_is_freed(
    small_disk: Path,
) -> None:
    jdir = small_disk / "journal"
    filler = small_disk / "filler"
    with Journal.open(jdir) as j:
        written = j.append([new(b"a" * 1000) for _ in range(3)])
        seg = j.segments()[0].path
        before = seg.read_bytes()
        fill_disk(filler)
        with pytest.raises(DiskFullError, match="nothing was written"):
            j.append([new(b"b" * 20000)])
        assert j.last_lsn == 3
        assert seg.read_bytes() == before
    with Journal.open(jdir) as j:
        assert (j.last_lsn, j.recovery.truncated_bytes, j.recovery.problem) == (3, 0, None)
        with pytest.raises(DiskFullError):  # still full: fails the same clean way again
            j.append([new(b"c" * 20000)])
        filler.unlink()
        more = j.append([new(b"d" * 20000)])
        assert more[0].lsn == 4
    with Journal.open(jdir) as j:
        assert (j.last_lsn, j.recovery.truncated_bytes) == (4, 0)
        assert list(j.read_from(1)) == written + more
        assert records_on_disk(seg) == written + more


def test_full_disk_while_starting_a_new_segment(small_disk: Path) -> None:
    jdir = small_disk / "journal"
    filler = small_disk / "filler"
    with Journal.open(jdir, segment_bytes=4096) as j:
        written = j.append([new(b"a" * 5000)])  # the segment is now over its size
        fill_disk(filler)
        with pytest.raises(DiskFullError, match="could not create journal segment"):
            j.append([new(b"b")])
        assert [s.number for s in j.segments()] == [1]
        assert sorted(p.name for p in jdir.iterdir()) == ["0000000001.lmj", "LOCK"]
        filler.unlink()
        written += j.append([new(b"b")])
        assert [s.number for s in j.segments()] == [1, 2]
        assert list(j.read_from(1)) == written
